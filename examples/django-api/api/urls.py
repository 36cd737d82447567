from django.urls import path
from rest_framework_simplejwt.views import (
    TokenBlacklistView,
    TokenObtainPairView,
    TokenRefreshView,
    TokenVerifyView,
)

from .views import whoami, whoami_stateless

urlpatterns = [
    path("whoami/", whoami),
    path("whoami-stateless/", whoami_stateless),
    # simplejwt's own endpoints, only so that check.py can compare their answers with ours.
    path("api/token/", TokenObtainPairView.as_view()),
    path("api/token/refresh/", TokenRefreshView.as_view()),
    path("api/token/verify/", TokenVerifyView.as_view()),
    path("api/token/blacklist/", TokenBlacklistView.as_view()),
]
