"""ASGI entry point: HTTP through Django, WebSockets through Channels."""

import os

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "liveplatform.settings.dev")
# Set up Django before importing anything that touches models (what get_asgi_application() does).
django.setup(set_prefix=False)

from channels.routing import ProtocolTypeRouter  # noqa: E402
from django.conf import settings  # noqa: E402

from liveplatform.cpu_affinity import place_process  # noqa: E402
from liveplatform.handlers import PooledASGIHandler  # noqa: E402
from liveplatform.shutdown import GracefulShutdownMiddleware, install_daphne_drain  # noqa: E402
from realtime.memory import freeze_loaded_application  # noqa: E402
from realtime.routing import websocket_application  # noqa: E402

# Django's ASGIHandler with reused request threads and connections (liveplatform/handlers.py).
django_asgi_app = PooledASGIHandler()

# On SIGTERM every socket is closed with 1012 before the process exits (see shutdown.py).
application = GracefulShutdownMiddleware(
    ProtocolTypeRouter(
        {
            "http": django_asgi_app,
            "websocket": websocket_application,
        }
    )
)
install_daphne_drain(settings.SHUTDOWN_DRAIN_SECONDS)
# The process's threads share one CPU: they hand the GIL to each other dozens of times a
# request, and across cores each hand-over costs more (liveplatform/cpu_affinity.py).
place_process(settings.CPU_AFFINITY, settings.CPU_AFFINITY_CHECK_SECONDS)
# What is loaded now lives as long as the process: never walked by the cyclic collector.
freeze_loaded_application()
