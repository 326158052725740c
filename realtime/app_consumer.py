"""The socket of services and apps (``/ws/app/``): authenticated by a single-use ticket in its first frame.

No cookie and no Origin: the ticket comes from ``POST /api/v1/realtime/tickets``
(``realtime.tickets``). Once authenticated, it is the browser's socket
(``realtime.consumers.RealtimeConsumer``) in every respect.
"""

from __future__ import annotations

import asyncio
from typing import Any

from . import metrics, tickets
from .closing import CloseCode
from .consumers import RealtimeConsumer
from .dbthreads import db_call
from .streams import BadPositions, decode_positions


class AppConsumer(RealtimeConsumer):
    """The socket for non-browser clients: authenticated by a ticket in the first frame."""

    route = "app"

    async def connect(self) -> None:
        self.prepare_session()
        await self.accept()
        self.auth_deadline = asyncio.get_running_loop().call_later(
            self.AUTH_TIMEOUT_SECONDS, lambda: asyncio.ensure_future(self._auth_timeout())
        )

    async def _auth_timeout(self) -> None:
        if self.user is None:
            await self.close(code=CloseCode.AUTH_TIMEOUT)

    async def handle_frame(self, frame: dict[str, Any]) -> None:
        if self.user is not None:
            await super().handle_frame(frame)
            return
        if frame["type"] != "auth":
            await self.send_error("not_authenticated", "Send an 'auth' frame with your ticket first")
            return
        user = await db_call(tickets.redeem_ticket)(frame.get("ticket"))
        if user is None:
            metrics.REFUSED.labels(reason="bad_ticket").inc()
            await self.send_error("auth_failed", "The ticket is unknown, expired or already used")
            await self.close(code=CloseCode.AUTH_FAILED)
            return
        self.auth_deadline.cancel()
        positions = frame.get("positions")
        try:
            since = decode_positions(positions) if isinstance(positions, str) else {}
        except BadPositions:
            since = {}
        await self.start_session(user, since=since, accept=False)

    async def disconnect(self, code: int) -> None:
        deadline = getattr(self, "auth_deadline", None)
        if deadline:
            deadline.cancel()
        await super().disconnect(code)
