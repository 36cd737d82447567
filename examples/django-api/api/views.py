from rest_framework.decorators import api_view
from rest_framework.response import Response


@api_view(["GET"])
def whoami(request):
    """Who the access token says the caller is, as Django sees them."""
    return Response({"username": request.user.username, "id": request.user.pk})
