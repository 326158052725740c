"""WebSocket routes: the browser socket (cookie + Origin check) and the app socket (ticket)."""

from channels.routing import URLRouter
from channels.security.websocket import AllowedHostsOriginValidator, OriginValidator
from django.conf import settings
from django.urls import path

from .auth import SessionAuthMiddleware
from .consumers import AppConsumer, RealtimeConsumer
from .outage import RedisOutageGuard


class ForeignOriginRefused(OriginValidator):
    """Let clients without an Origin header in (apps), but refuse a browser on a foreign site."""

    def valid_origin(self, parsed_origin) -> bool:
        if parsed_origin is None:
            return True
        return super().valid_origin(parsed_origin)


websocket_urlpatterns = [
    # The Origin first (no database work for a foreign page), then the session in one hop.
    path("ws/", AllowedHostsOriginValidator(SessionAuthMiddleware(RealtimeConsumer.as_asgi()))),
    path("ws/app/", ForeignOriginRefused(AppConsumer.as_asgi(), settings.ALLOWED_HOSTS)),
]

# Outermost: a socket that Redis failed ends with a clean refusal or 1013, never a 500.
websocket_application = RedisOutageGuard(URLRouter(websocket_urlpatterns))
