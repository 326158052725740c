"""Test settings: fast password hashing, in-memory email, DEBUG off as in production."""

import os
import uuid

# Each test run keeps its streams under keys of its own, which the processes it starts
# inherit: a run on a Redis that outlives it (CI's) reuses the user ids of the previous
# run's fresh test database, and must not replay that run's history.
os.environ.setdefault("REALTIME_STREAM_KEY_PREFIX", f"test-{uuid.uuid4().hex[:8]}:streams")

from .base import *  # noqa: F403

DEBUG = False
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    # The manifest storage needs collectstatic; tests serve the source files.
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}
ACCOUNT_RATE_LIMITS = False
# daphne started by tests serves static files from the source folders.
WHITENOISE_USE_FINDERS = True
WHITENOISE_AUTOREFRESH = True
# Jobs (workers/conf.py): a fast heartbeat and a short crash bound, so the kill -9 test is quick.
JOBS = {"HEARTBEAT_SECONDS": 0.5, "STALE_AFTER_SECONDS": 5.0, "REAP_INTERVAL_SECONDS": 1.0}
# Tests reconnect the same user ids (reused after each flush) far more often than a
# person would; the security tests start their own daphne with a low limit.
REALTIME = {**REALTIME, "CONNECTS_PER_MINUTE": env_int("REALTIME_CONNECTS_PER_MINUTE", 1000)}
# The tests' push service runs on 127.0.0.1, and retries come quickly.
WEBPUSH = {**WEBPUSH, "ALLOW_PRIVATE_ENDPOINTS": True, "RETRY_BASE_SECONDS": 0.5, "TIMEOUT_SECONDS": 5.0}
