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

from django.conf import settings
from django.utils import timezone

from . import metrics, services
from .auth import positions_in_query
from .closing import ClientGone, CloseCode
from .consumer_loop import AttachedWebsocketConsumer
from .dbthreads import db_call
from .delivery_tally import delivery_tally
from .events import envelope
from .hub import hub
from .layers import join_groups, leave_groups
from .presence import services as presence
from .presence.tracker import tracker
from .streams import BadPositions, Position, decode_positions, encode_positions
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
        # realtime.auth read the client's positions, and the tops of the streams it named
        # none in, with the handshake's admission; a scope built without it starts here.
        since = self.scope.get("positions")
        await self.start_session(user, since=positions_in_query(self.scope) if since is None else dict(since))

    def prepare_session(self) -> None:
        """The state every socket starts with, before it knows its user."""
        self.user = None
        self.groups_joined: set[str] = set()
        # Per stream: the offset through which this socket has been sent its events, and its
        # epoch. Two plain dicts, not Position objects: take() runs once per socket and event.
        self.offsets: dict[str, int] = {}
        self.epochs: dict[str, str] = {}
        self.repairing: set[str] = set()
        self.watching: dict[int, str] = {}  # tenant id -> its presence group, for `presence.watch`
        self.bucket = TokenBucket(
            settings.REALTIME["CLIENT_FRAMES_PER_SECOND"], settings.REALTIME["CLIENT_FRAMES_BURST"]
        )
        self.strikes = 0

    async def start_session(self, user: Any, *, since: dict[str, Position], accept: bool = True) -> None:
        """Join the user's groups, greet, replay each stream from ``since``, then send current state."""
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
        since = {stream: position for stream, position in since.items() if stream in self.streams}
        unknown = self.streams - since.keys()
        if unknown:
            # Streams the client has no position in start at their top, read *before* joining:
            # whatever is published in between comes back in the replay below.
            since.update(await db_call(services.stream_tops)(unknown))
        # Groups first, then replay: an event published after the replay's read is already
        # on its way to this socket's channel, so nothing falls in between.
        await self._join(self.streams)
        if accept:
            await self.accept()
        metrics.CONNECTS.labels(route=self.route).inc()
        metrics.OPEN_SOCKETS.labels(route=self.route).inc()
        self._log_socket("connect")
        opening = await db_call(services.open_session)(user, self.subs, since)
        await self.send_texts(opening.hello)
        await self.send_replay(opening.replay)
        await self.send_texts(*opening.snapshots)
        # From here on, events the layer hands over go straight to the socket (see deliver).
        self.live = True
        hub().add(self)
        tracker().add(self)

    def use_subscriptions(self, subs: services.Subscriptions) -> None:
        """Adopt the user's memberships (on connect, and when they change while connected)."""
        self.subs = subs
        self.streams = subs.groups

    async def replay(self, since: dict[str, Position]) -> None:
        """Send every durable event after each position (or a resync for a stream that cannot be replayed)."""
        await self.send_replay(await db_call(services.replay)(self.subs, since))

    async def send_replay(self, result: services.Replay) -> None:
        """Send a replay's frames and resync orders, and note how far each stream has been sent."""
        await self.send_texts(*result.frames, *result.resyncs)
        metrics.EVENTS_REPLAYED.inc(len(result.frames))
        if result.resyncs:
            metrics.RESYNCS.inc(len(result.resyncs))
        for stream, top in result.positions.items():
            if self.epochs.get(stream) != top.epoch or top.offset > self.offsets[stream]:
                self.offsets[stream], self.epochs[stream] = top.offset, top.epoch

    @property
    def positions(self) -> dict[str, Position]:
        """Where this socket stands in each stream it follows."""
        return {stream: Position(offset, self.epochs[stream]) for stream, offset in self.offsets.items()}

    # --------------------------------------------------------------------------
    # The heartbeat (realtime.hub beats for every socket of the process at once)
    # --------------------------------------------------------------------------
    def send_beat(self, ping: str) -> Any:
        """Send a ping: at once with prepared frames, else a coroutine to await."""
        if self.write_frame is None:
            return self._send_beat(ping)
        self.write_frame(text_frame(ping))
        return None

    async def _send_beat(self, ping: str) -> None:
        try:
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
        tracker().discard(self)
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
            await self.send_frame("pong", {"positions": encode_positions(self.positions)})
        elif frame_type == "resume":
            positions = frame.get("positions")
            try:
                since = decode_positions(positions if isinstance(positions, str) else "", self.streams)
            except BadPositions as error:
                await self.send_error("invalid_frame", f"'resume' needs 'positions' (stream:offset:epoch,...): {error}")
                return
            await self.replay(since)
        elif frame_type == "snapshot":  # a tab joined the browser's shared socket: state for it
            await self.send_texts(*await db_call(services.snapshot_frames)(self.user, self.subs))
        elif frame_type == "presence.watch":
            await self.watch_presence(frame.get("tenant"))
        else:
            await self.send_error("unknown_type", f"Unknown frame type {frame_type[:40]!r}")

    async def watch_presence(self, slug: Any) -> None:
        """Join one of the user's tenants' presence group, then send who is online now; diffs follow."""
        tenant = next((t for t in self.subs.tenants if t.slug == slug), None)
        if tenant is None:
            await self.send_error("invalid_frame", "'presence.watch' needs 'tenant': the slug of one of your tenants")
            return
        group = presence.watch_group(tenant.id)
        if group not in self.groups_joined:
            await self._join({group})
        self.watching[tenant.id] = group
        await self.send_texts(await db_call(presence.full_frame)(tenant.id, tenant.slug))

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
        """Note a published event as this socket's; False if it already has it, or if one before it went missing.

        Per stream, offsets come one after another. An offset at or below the socket's
        position was already sent (replay). One past the next means the layer dropped
        something (a queue over capacity, a lost connection): the event is not sent now,
        and a repair replays the stream from the socket's position, this event included.
        An event of another epoch means the stream's history was lost: it is sent, and
        the client resyncs that stream when it sees the new epoch.
        """
        stream = message.get("stream")
        if stream is None:
            return True  # ephemeral: no position
        known = self.offsets.get(stream)
        offset = message["offset"]
        if known is not None and offset == known + 1 and not self.repairing and message["epoch"] == self.epochs[stream]:
            self.offsets[stream] = offset  # the next one, as nearly always
            return True
        return self._take_unusual(stream, known, offset, message["epoch"])

    def _take_unusual(self, stream: str, known: int | None, offset: int, epoch: str) -> bool:
        """``take`` for anything but the next offset of a stream: a repeat, a gap, a new epoch, a stream left."""
        if known is None:
            if stream not in self.streams:
                return False  # in flight when the user left the tenant: no longer theirs
        elif epoch == self.epochs[stream]:
            if offset <= known or stream in self.repairing:
                return False
            if offset > known + 1:
                self.repairing.add(stream)
                self.queued += 1
                self.enqueue({"type": "realtime.repair", "stream": stream})
                return False
        self.offsets[stream], self.epochs[stream] = offset, epoch
        return True

    async def realtime_repair(self, message: dict[str, Any]) -> None:
        """Replay a stream from this socket's position: the layer dropped one of its events."""
        stream = message["stream"]
        try:
            metrics.EVENTS_REPAIRED.inc()
            await self.replay({stream: Position(self.offsets[stream], self.epochs[stream])})
        finally:
            self.repairing.discard(stream)

    async def realtime_control(self, message: dict[str, Any]) -> None:
        """React to a server-side change of who this user is or what they belong to."""
        action = message.get("action")
        if action == "resubscribe":
            subs = await db_call(services.subscriptions_for)(self.user)
            self.use_subscriptions(subs)
            present = tracker()
            present.discard(self)  # a tenant left, or presence hidden: gone after the grace period
            present.add(self)
            tenant_ids = {tenant.id for tenant in subs.tenants}
            self.watching = {tenant_id: g for tenant_id, g in self.watching.items() if tenant_id in tenant_ids}
            wanted = self.streams | set(self.watching.values())
            # Before any await: an event of a stream just left, still in flight, must not pass take().
            for stream in self.groups_joined - wanted:
                self.offsets.pop(stream, None)
                self.epochs.pop(stream, None)
            await leave_groups(self.channel_layer, self.groups_joined - wanted, self.channel_name)
            joining = self.streams - self.groups_joined
            # A stream joined now owes the socket only what is published from now on: its
            # top read before joining, then a replay of anything that came in between.
            since = await db_call(services.stream_tops)(joining) if joining else {}
            await self._join(joining)
            self.groups_joined = wanted
            if since:
                await self.replay(since)
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
        """Send a server frame that is not a durable event (no stream position)."""
        await self.send_texts(envelope(None, frame_type, None, timezone.now(), data))

    async def send_error(self, code: str, message: str) -> None:
        """Tell the client what was wrong with its frame; the socket stays open."""
        await self.send_frame("error", {"code": code, "message": message})
