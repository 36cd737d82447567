from rest_framework.decorators import api_view, authentication_classes
from rest_framework.response import Response
from rest_framework_simplejwt.authentication import JWTStatelessUserAuthentication


@api_view(["GET"])
def whoami(request):
    """Who the access token says the caller is, as Django sees them (JWTAuthentication, the
    default of api/settings.py: the user is looked up in Django's user table)."""
    return Response({"username": request.user.username, "id": request.user.pk})


@api_view(["GET"])
@authentication_classes([JWTStatelessUserAuthentication])
def whoami_stateless(request):
    """The same with JWTStatelessUserAuthentication: no user table, the token's user id claim."""
    return Response({"username": request.user.id})
