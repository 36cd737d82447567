"""A minimal Django + DRF API whose only authentication is simplejwt's `JWTAuthentication`,
verifying jwt-issuer's access tokens with the public keys of its JWKS. `check.py` sets
JWT_ISSUER_URL and JWT_ISSUER_ALG before Django starts.

The SIMPLE_JWT block is all a Django back-end needs (README, "Django back-ends"). simplejwt's
ALGORITHM takes one value: when the issuer's algorithm changes, tell the back-end.
"""
import os

ISSUER = os.environ["JWT_ISSUER_URL"]

SECRET_KEY = "example-only"
DEBUG = False
ALLOWED_HOSTS = ["*"]
INSTALLED_APPS = [
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "rest_framework",
    "rest_framework_simplejwt",
    "rest_framework_simplejwt.token_blacklist",
]
MIDDLEWARE = []
ROOT_URLCONF = "api.urls"
DATABASES = {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": os.environ["DJANGO_DB"]}}
USE_TZ = True
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]  # test users only

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": ["rest_framework_simplejwt.authentication.JWTAuthentication"],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
}

SIMPLE_JWT = {
    "ALGORITHM": os.environ.get("JWT_ISSUER_ALG", "RS256"),
    "JWK_URL": ISSUER + "/.well-known/jwks.json",
    "ISSUER": ISSUER,
    "AUDIENCE": ISSUER,
    "USER_ID_FIELD": "username",
    "USER_ID_CLAIM": "username",
    # For the comparison with simplejwt's own endpoints (check.py), which sign with this key.
    "SIGNING_KEY": os.environ.get("SIMPLEJWT_SIGNING_KEY", ""),
    "VERIFYING_KEY": os.environ.get("SIMPLEJWT_VERIFYING_KEY", ""),
    "ROTATE_REFRESH_TOKENS": True,
    "BLACKLIST_AFTER_ROTATION": True,
}
