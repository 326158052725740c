"""How a socket ends: the close codes the server sends, and the error of a client that has gone."""

from __future__ import annotations

from enum import IntEnum


class CloseCode(IntEnum):
    """Close codes the server uses; the browser client acts on each (docs/protocol.md)."""

    GOING_AWAY = 1001
    MESSAGE_TOO_BIG = 1009
    SERVICE_RESTART = 1012  # reconnect soon, possibly to another server
    SESSION_ENDED = 4001  # logged out: do not reconnect, reload the page
    ACCOUNT_DISABLED = 4003  # deactivated: do not reconnect
    AUTH_FAILED = 4401  # app route: missing, bad, expired or reused ticket
    AUTH_TIMEOUT = 4408  # app route: no auth frame in time
    RATE_LIMITED = 4429  # too many frames: reconnect after a pause


class ClientGone(Exception):
    """The ASGI server refused a send: the client has gone (its disconnect may not have arrived yet).

    uvicorn raises ``ClientDisconnected`` (an OSError) or a RuntimeError on a send after
    the close, by protocol implementation; daphne drops the message. Either way the
    socket is over, and its consumer must still leave its groups and stop its heartbeat.
    """
