"""WebSocket routes: the browser socket (cookie + Origin check) and the app socket (ticket)."""

from channels.routing import URLRouter
from django.urls import path

from .app_consumer import AppConsumer
from .auth import SessionAuthMiddleware
from .consumers import RealtimeConsumer
from .origins import SameOriginOnly
from .outage import RedisOutageGuard

websocket_urlpatterns = [
    # The Origin first (scheme, host and port; no database work for a foreign page), then the session in one hop.
    path("ws/", SameOriginOnly(SessionAuthMiddleware(RealtimeConsumer.as_asgi()))),
    # Apps send no Origin and authenticate by ticket; a browser page on another site is still refused.
    path("ws/app/", SameOriginOnly(AppConsumer.as_asgi(), allow_missing=True)),
]

# Outermost: a socket that Redis failed ends with a clean refusal or 1013, never a 500.
websocket_application = RedisOutageGuard(URLRouter(websocket_urlpatterns))
