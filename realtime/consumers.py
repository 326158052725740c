"""The socket. Consumers parse, check and delegate; the database work is in services.

Two routes share one consumer class:

* ``/ws/`` for browsers: session cookie plus Origin check (see ``routing``);
* ``/ws/app/`` for services and apps: no cookie, no Origin; the first frame
  carries a single-use ticket from ``POST /api/v1/realtime/tickets``
  (``realtime.app_consumer.AppConsumer``, a subclass that authenticates first).

Close codes are listed in ``docs/protocol.md`` and in ``realtime.closing.CloseCode``.
"""

from __future__ import annotations

import json
import logging
from typing import Any
from urllib.parse import parse_qs

from django.conf import settings
from django.utils import timezone

from . import metrics, services
from .audience import user_group
from .closing import ClientGone, CloseCode
from .consumer_loop import AttachedWebsocketConsumer
from .dbthreads import db_call
from .delivery import SentWindow, resubscription
from .delivery_tally import delivery_tally
from .events import envelope
from .hub import hub
from .layers import join_groups, leave_groups
from .token_bucket import TokenBucket
from .transport import text_frame

logger = logging.getLogger(__name__)


class RealtimeConsumer(AttachedWebsocketConsumer):
    """One user's socket: joins their groups, replays what they missed, then forwards events."""

    route = "browser"
    # Refused frames beyond the bucket before the socket is closed.
    MAX_STRIKES = 20
    AUTH_TIMEOUT_SECONDS = 10

    async def connect(self) -> None:
        self.prepare_session()
        user = self.scope.get("user")
        if user is None or not user.is_authenticated or not user.is_active:
            metrics.REFUSED.labels(reason="anonymous").inc()
            await self.close()  # before accept: the handshake is refused with HTTP 403
            return
        await self.start_session(user, after=self._cursor_from_query())

    def prepare_session(self) -> None:
        """The state every socket starts with, before it knows its user."""
        self.user = None
        self.groups_joined: set[str] = set()
        # Per group: the cursor through which the socket was served on joining it.
        self.group_since: dict[str, int] = {}
        self.reset_delivery(0)
        self.announce = 0
        self.bucket = TokenBucket(
            settings.REALTIME["CLIENT_FRAMES_PER_SECOND"], settings.REALTIME["CLIENT_FRAMES_BURST"]
        )
        self.strikes = 0

    def _cursor_from_query(self) -> int | None:
        query = parse_qs(self.scope.get("query_string", b"").decode("latin-1"))
        value = (query.get("after") or [None])[0]
        return int(value) if value and value.isdigit() else None

    async def start_session(self, user: Any, *, after: int | None, accept: bool = True) -> None:
        """Join the user's groups, greet, replay from ``after``, then send current state."""
        # Browser sockets were admitted before the consumer ran (realtime.auth: session, user,
        # rate limit and memberships in one trip); the app route's ticket user is admitted here.
        subs = self.scope.get("subscriptions")
        if subs is None:
            subs = await db_call(services.admit_socket)(user)
        if subs is None:
            metrics.REFUSED.labels(reason="too_many_connects").inc()
            # Browser route: refused handshake (HTTP 403); app route: already accepted, so 4429.
            await self.close(code=None if accept else CloseCode.RATE_LIMITED)
            return
        self.user = user
        self.use_subscriptions(subs)
        # Groups first, then replay: an event committed after the replay query is
        # already on its way to this socket's channel, so nothing falls in between.
        await self._join(self.subs.groups)
        if accept:
            await self.accept()
        metrics.CONNECTS.labels(route=self.route).inc()
        metrics.OPEN_SOCKETS.labels(route=self.route).inc()
        self._log_socket("connect")
        opening = await db_call(services.open_session)(user, self.subs, after)
        await self.send_texts(opening.hello)
        if opening.replay is not None:
            await self.send_replay(opening.replay)
        if not (opening.replay and opening.replay.resync):
            # Every event it may see up to the opening cursor is in the replay, or predates the page.
            self.verified_cursor = max(self.verified_cursor, opening.cursor)
        self.group_since = dict.fromkeys(self.groups_joined, self.verified_cursor)
        await self.send_texts(*opening.snapshots)
        # From here on, events the layer hands over go straight to the socket (see deliver).
        self.live = True
        hub().add(self)

    def use_subscriptions(self, subs: services.Subscriptions) -> None:
        """Adopt the user's memberships (on connect, and when they change while connected)."""
        self.subs = subs
        self.tenant_ids = {tenant.id for tenant in subs.tenants}
        self.own_group = user_group(subs.user_id)

    async def replay(self, after: int) -> None:
        """Send every durable event after ``after`` (or a resync order), then go live."""
        await self.send_replay(await db_call(services.replay_after)(self.subs, after))

    async def send_replay(self, result: services.Replay) -> None:
        """Send a replay's frames, or its resync order, and note how far delivery is verified."""
        if result.resync:
            metrics.RESYNCS.inc()
            await self.send_frame("resync", {"reason": result.reason, "cursor": result.cursor})
            self.reset_delivery(result.cursor)
            return
        await self.send_texts(*result.frames)
        metrics.EVENTS_REPLAYED.inc(len(result.frames))
        if result.cursor >= self.last_cursor and result.cursor > self.verified_cursor:
            # Everything visible up to the replay's cursor has now been sent.
            self.reset_delivery(result.cursor)

    def reset_delivery(self, cursor: int) -> None:
        """Every durable event up to ``cursor`` has reached this socket; track what comes after."""
        self.verified_cursor = cursor
        self.last_cursor = cursor
        self.delivered: set[int] = set()

    # --------------------------------------------------------------------------
    # The heartbeat (realtime.hub beats for every socket of the process at once)
    # --------------------------------------------------------------------------
    def owed(self, window: SentWindow) -> list[int]:
        """The window's events this socket was owed and never got; noted as delivered now.

        Owed: sent to one of its groups, newer than what the socket was given on
        joining that group (opening cursor, replay, an earlier beat), and, for the
        user's own events, not from a tenant they have left. Noting them now makes the
        consumer drop a late live copy while the hub reads the frames to resend.
        """
        missing = []
        newest = self.announce
        tenant_ids = self.tenant_ids
        own_group = self.own_group
        for group in self.groups_joined:
            rows = window.by_group.get(group)
            if not rows:
                continue
            since = max(self.verified_cursor, self.group_since.get(group, 0))
            for event_id, tenant_id in rows:
                if event_id <= since:
                    continue
                if group == own_group and tenant_id is not None and tenant_id not in tenant_ids:
                    continue
                newest = max(newest, event_id)
                if event_id not in self.delivered:
                    missing.append(event_id)
        self.delivered.update(missing)
        self.announce = newest
        return missing

    def checked(self, window: SentWindow) -> int:
        """Everything up to the window's end has now been delivered or resent: forget it; the ping's cursor."""
        if window.through > self.verified_cursor:
            self.verified_cursor = window.through
            self.delivered = {event_id for event_id in self.delivered if event_id > window.through}
        return self.announce

    def send_beat(self, repairs: list[str], ping: str, ping_frame: bytes) -> Any:
        """Send a beat's resent frames and its ping: at once with prepared frames, else a coroutine to await."""
        if self.write_frame is None:
            return self._send_beat(repairs, ping)
        for frame in repairs:
            self.write_frame(text_frame(frame))
        self.write_frame(ping_frame)
        return None

    async def _send_beat(self, repairs: list[str], ping: str) -> None:
        try:
            for frame in repairs:
                await self.send(text_data=frame)
            await self.send(text_data=ping)
        except ClientGone:
            pass  # the consumer's own loop ends the socket

    async def disconnect(self, code: int) -> None:
        await self.release()
        if self.user is not None:
            metrics.DISCONNECTS.labels(route=self.route).inc()
            metrics.OPEN_SOCKETS.labels(route=self.route).dec()
            self._log_socket("disconnect", code=code)

    def _log_socket(self, what: str, **more: Any) -> None:
        """One line per connect and disconnect, its fields also as structured extras."""
        tenants = ",".join(t.slug for t in self.subs.tenants)
        logger.info(
            f"socket {what} route=%s user=%s tenants=%s" + "".join(f" {name}=%s" for name in more),
            self.route,
            self.user.pk,
            tenants,
            *more.values(),
            extra={"socket": what, "route": self.route, "user_id": self.user.pk, "tenants": tenants, **more},
        )

    async def release(self) -> None:
        """Leave the heartbeat and every group; safe to call more than once."""
        self.live = False
        hub().discard(self)
        groups, self.groups_joined = getattr(self, "groups_joined", set()), set()
        if groups:
            await leave_groups(self.channel_layer, groups, self.channel_name)

    # --------------------------------------------------------------------------
    # Client frames
    # --------------------------------------------------------------------------
    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        size = len(text_data.encode()) if text_data is not None else len(bytes_data or b"")
        if size > settings.REALTIME["MAX_FRAME_BYTES"]:
            await self.send_error(
                "frame_too_big", f"Frames are limited to {settings.REALTIME['MAX_FRAME_BYTES']} bytes"
            )
            await self.close(code=CloseCode.MESSAGE_TOO_BIG)
            return
        if not self.bucket.take():
            self.strikes += 1
            if self.strikes > self.MAX_STRIKES:
                await self.close(code=CloseCode.RATE_LIMITED)
            elif self.strikes == 1 or self.strikes % 10 == 0:
                await self.send_error("rate_limited", "Too many frames; slow down")
            return
        if text_data is None:
            await self.send_error("binary_not_supported", "Send JSON text frames")
            return
        try:
            frame = json.loads(text_data)
        except (ValueError, RecursionError):  # deeply nested arrays exhaust the parser's stack
            await self.send_error("invalid_json", "Frames must be JSON objects")
            return
        if not isinstance(frame, dict) or not isinstance(frame.get("type"), str):
            await self.send_error("invalid_frame", "A frame is an object with a string 'type'")
            return
        await self.handle_frame(frame)

    async def handle_frame(self, frame: dict[str, Any]) -> None:
        """Dispatch one client frame by its type."""
        if self.user is None:  # app route before auth
            await self.send_error("not_authenticated", "Send an 'auth' frame first")
            return
        frame_type = frame["type"]
        if frame_type == "ping":
            await self.send_frame("pong", {"cursor": self.last_cursor})
        elif frame_type == "resume":
            after = frame.get("after")
            if not isinstance(after, int) or isinstance(after, bool) or after < 0:
                await self.send_error("invalid_frame", "'resume' needs a non-negative integer 'after'")
                return
            await self.replay(after)
        else:
            await self.send_error("unknown_type", f"Unknown frame type {frame_type[:40]!r}")

    # --------------------------------------------------------------------------
    # Channel-layer handlers (the loop that calls them: realtime.consumer_loop)
    # --------------------------------------------------------------------------
    async def realtime_event(self, message: dict[str, Any]) -> None:
        """Forward a published event; drop durable ones this socket already got by replay."""
        if self.write_frame is not None:
            self.forward(message)
        elif self.take(message):
            await self.send(text_data=message["text"])
            delivery_tally(message).count()

    def forward(self, message: dict[str, Any]) -> None:
        """Write a published event to the socket as a prepared frame (the server has them)."""
        if self.take(message):
            tally = delivery_tally(message)
            if self.write_frame(tally.frame):
                tally.count()

    def take(self, message: dict[str, Any]) -> bool:
        """Note a published event as this socket's; False if it already has it (replay, resend)."""
        event_id = message.get("id")
        if event_id is not None:
            if event_id <= self.verified_cursor or event_id in self.delivered:
                return False
            self.delivered.add(event_id)
            if event_id > self.last_cursor:
                self.last_cursor = event_id
        return True

    async def realtime_control(self, message: dict[str, Any]) -> None:
        """React to a server-side change of who this user is or what they belong to."""
        action = message.get("action")
        if action == "resubscribe":
            subs, cursor = await db_call(resubscription)(self.user)
            self.use_subscriptions(subs)
            wanted = self.subs.groups
            await leave_groups(self.channel_layer, self.groups_joined - wanted, self.channel_name)
            joining = wanted - self.groups_joined
            await self._join(joining)
            self.groups_joined = wanted
            # A group joined now owes the socket only what is sent from now on.
            self.group_since = {group: self.group_since.get(group, cursor) for group in wanted}
            await self.send_frame("membership.changed", {"tenants": self.subs.hello_tenants()})
        elif action == "close":
            session_key = message.get("session_key")
            if session_key and session_key != self._session_key():
                return
            await self.close(code=int(message.get("code", CloseCode.SESSION_ENDED)))

    # --------------------------------------------------------------------------
    def _session_key(self) -> str | None:
        session = self.scope.get("session")
        return getattr(session, "session_key", None)

    async def _join(self, groups: set[str]) -> None:
        await join_groups(self.channel_layer, groups, self.channel_name)
        self.groups_joined |= groups

    async def send_frame(self, frame_type: str, data: dict[str, Any]) -> None:
        """Send a server frame that is not a stored event (no cursor)."""
        await self.send_texts(envelope(None, frame_type, None, timezone.now(), data))

    async def send_error(self, code: str, message: str) -> None:
        """Tell the client what was wrong with its frame; the socket stays open."""
        await self.send_frame("error", {"code": code, "message": message})
