"""WebSocket routes: the browser socket (cookie + Origin check) and the app socket (ticket)."""

from channels.auth import AuthMiddlewareStack
from channels.routing import URLRouter
from channels.security.websocket import AllowedHostsOriginValidator, OriginValidator
from django.conf import settings
from django.urls import path

from .consumers import AppConsumer, RealtimeConsumer


class ForeignOriginRefused(OriginValidator):
    """Let clients without an Origin header in (apps), but refuse a browser on a foreign site."""

    def valid_origin(self, parsed_origin) -> bool:
        if parsed_origin is None:
            return True
        return super().valid_origin(parsed_origin)


websocket_urlpatterns = [
    path("ws/", AllowedHostsOriginValidator(AuthMiddlewareStack(RealtimeConsumer.as_asgi()))),
    path("ws/app/", ForeignOriginRefused(AppConsumer.as_asgi(), settings.ALLOWED_HOSTS)),
]

websocket_application = URLRouter(websocket_urlpatterns)
