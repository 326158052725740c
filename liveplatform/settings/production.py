"""Production settings: secrets and services from the environment only, HTTPS everywhere.

Start-up is refused (``ImproperlyConfigured``, listing every problem at once) unless
``SECRET_KEY`` is a long random value and ``DATABASE_URL``, ``REDIS_URL`` and
``ALLOWED_HOSTS`` are set: the development defaults (a known key, an embedded Redis
that forgets everything on restart, a SQLite file under ``var/``, localhost only) must
never be what a production process quietly runs on. The checks run before ``base``
is imported, because importing it is what starts an embedded Redis when ``REDIS_URL``
is unset.
"""

import os
from collections.abc import Mapping

from django.core.exceptions import ImproperlyConfigured

# Django's own check (security.W009) wants 50+ characters and 5+ distinct ones; a key of
# fewer than this many distinct characters is a pattern, not a random value.
SECRET_KEY_MIN_LENGTH = 50
SECRET_KEY_MIN_DISTINCT = 10
# Markers of keys that are published somewhere: Django's and this project's development
# keys, deploy/env.example's placeholder.
SECRET_KEY_PLACEHOLDERS = ("insecure", "change-me", "changeme")
REQUIRED_SERVICES = {
    "DATABASE_URL": "no SQLite file under var/ in production",
    "REDIS_URL": "no embedded Redis in production",
    "ALLOWED_HOSTS": "the host names the platform answers to",
}


def production_problems(environ: Mapping[str, str]) -> list[str]:
    """Why these environment variables cannot run production; empty if they can."""
    problems = []
    secret = environ.get("SECRET_KEY", "")
    if not secret:
        problems.append("SECRET_KEY must be set in production")
    elif (
        len(secret) < SECRET_KEY_MIN_LENGTH
        or len(set(secret)) < SECRET_KEY_MIN_DISTINCT
        or any(marker in secret.lower() for marker in SECRET_KEY_PLACEHOLDERS)
    ):
        problems.append(
            "SECRET_KEY must be a long random value in production (50+ characters, not a development key "
            "or a placeholder): python -c 'import secrets; print(secrets.token_urlsafe(64))'"
        )
    for name, why in REQUIRED_SERVICES.items():
        if not environ.get(name, "").strip():
            problems.append(f"{name} must be set in production ({why})")
    return problems


if _problems := production_problems(os.environ):
    raise ImproperlyConfigured("Production settings refuse to start: " + "; ".join(_problems))

from liveplatform.logs import logging_config  # noqa: E402

from .base import *  # noqa: E402, F403
from .base import env_bool, env_int  # noqa: E402

DEBUG = False
SECRET_KEY = os.environ["SECRET_KEY"]

# ------------------------------------------------------------------------------
# HTTPS: the platform runs behind a TLS-terminating proxy (deploy/nginx.conf).
# ------------------------------------------------------------------------------
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", True)
# /healthz and /readyz are probed over plain HTTP from inside the network.
SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^readyz$", r"^metrics$"]
SESSION_COOKIE_SECURE = True
CSRF_COOKIE_SECURE = True
SESSION_COOKIE_HTTPONLY = True
SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 31536000)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", True)
SECURE_HSTS_PRELOAD = env_bool("SECURE_HSTS_PRELOAD", True)

STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"},
}

EMAIL_BACKEND = os.environ.get("EMAIL_BACKEND", "django.core.mail.backends.smtp.EmailBackend")
ACCOUNT_EMAIL_VERIFICATION = os.environ.get("ACCOUNT_EMAIL_VERIFICATION", "mandatory")

# One JSON object per log line unless told otherwise (LOG_FORMAT=plain).
LOG_FORMAT = os.environ.get("LOG_FORMAT", "json")
LOGGING = logging_config(LOG_FORMAT, LOG_LEVEL)

# Web Push signs with the keys from the environment only: production never makes a pair
# of its own (another process, or the next deploy, would sign with a different one).
# Without them push is off and `manage.py check` says so (push.W001).
WEBPUSH = {**WEBPUSH, "GENERATE_KEYS": False}
