"""Baseline: the Channels tutorial design (one group, json.dumps per socket, no auth, no storage).

Served by daphne exactly like the platform (``daphne bench.baselines.plain_channels:application``),
over the same channel-layer settings, so the only difference is our consumer and layer.
"""

import json
import os

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "liveplatform.settings.test")
django.setup()

from channels.generic.websocket import AsyncWebsocketConsumer  # noqa: E402
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from django.urls import path  # noqa: E402

GROUP = "bench_plain"


class ChatConsumer(AsyncWebsocketConsumer):
    """The tutorial's chat consumer, minus the chat: join one group, forward what arrives."""

    async def connect(self) -> None:
        await self.channel_layer.group_add(GROUP, self.channel_name)
        await self.accept()

    async def disconnect(self, code: int) -> None:
        await self.channel_layer.group_discard(GROUP, self.channel_name)

    async def chat_message(self, event: dict) -> None:
        await self.send(text_data=json.dumps({"type": "bench.ping", "data": event["data"]}))


application = ProtocolTypeRouter({"websocket": URLRouter([path("ws/", ChatConsumer.as_asgi())])})
