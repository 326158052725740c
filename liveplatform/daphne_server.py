"""daphne as ``make run`` serves the platform, with oversized frames refused by a close 1009.

daphne's WebSocket protocol is autobahn's, which by default *drops* the TCP connection
when a frame breaks a limit ("fail by drop"): a client that sent a frame over the
limit saw a reset, not why (issue 15). This server sets autobahn's limits to
``REALTIME_MAX_FRAME_BYTES`` and fails a connection with a closing handshake instead,
so the client reads close 1009 whatever the frame's size; the frame is refused from
its header, never buffered. It also stamps each WebSocket's arrival on its scope
(``realtime.arrival``), so a handshake's queue limit counts from where daphne's
handshake timeout does. Start it as ``python -m liveplatform.daphne_server`` with
daphne's own arguments.
"""

from __future__ import annotations

import time
from typing import Any

from daphne.cli import CommandLineInterface
from daphne.server import Server
from daphne.ws_protocol import WebSocketProtocol

from realtime.arrival import stamp_arrival


class FrameLimitProtocol(WebSocketProtocol):
    """daphne's WebSocket protocol whose close frames reach the client.

    Once it refused a frame as too big, it reads and discards the rest: the refused
    frame's payload keeps arriving after the close 1009 is sent, and left unread in
    the kernel's buffer when the connection closes, it makes the kernel answer with a
    reset, and the client may lose the close frame with it; read and dropped, the
    connection ends with a FIN after the close.

    A client that has not answered a close within autobahn's closing handshake timeout
    (1 s) is left with a FIN too, not a reset. A reset makes the client's kernel throw
    away what it has received and not yet read: a busy or distant client that had not
    read its handshake's answer and the close 1013 of a storm's "try again later" lost
    both and saw a connection that failed with nothing received (the handshake storm
    test failed in CI this way, 89 of 600).
    """

    discarding = False
    # When the upgrade reached this protocol: autobahn's handshake timeout counts from here.
    arrived: float | None = None

    def connectionMade(self) -> None:
        self.arrived = time.monotonic()
        super().connectionMade()

    def _fail_connection(self, code: int = 1001, reason: str = "going away") -> None:
        if code == self.CLOSE_STATUS_CODE_MESSAGE_TOO_BIG:
            self.discarding = True
        super()._fail_connection(code, reason)

    def _dataReceived(self, data: bytes) -> None:
        if not self.discarding:
            super()._dataReceived(data)

    def dropConnection(self, abort: bool = False) -> None:
        # The closing handshake's timeout drops the connection with an abort (a reset). After
        # a close 1009 everything the client sent has been read; after any close, the client
        # may not have read our close yet. A plain close (FIN) keeps it for the client.
        super().dropConnection(abort=abort and not (self.discarding or self.wasCloseHandshakeTimeout))


class FrameLimitServer(Server):
    """daphne's server whose WebSocket factory closes with 1009 over the platform's frame limit."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        # daphne's command line has loaded the application, so settings are configured.
        from django.conf import settings

        limit = settings.REALTIME["MAX_FRAME_BYTES"]
        kwargs.update(websocket_max_message_size=limit, websocket_max_frame_size=limit)
        super().__init__(*args, **kwargs)

    def create_application(self, protocol: Any, scope: dict[str, Any]) -> Any:
        """daphne's, with a WebSocket's arrival stamped on its scope (``realtime.arrival``)."""
        arrived = getattr(protocol, "arrived", None)
        if arrived is not None:
            stamp_arrival(scope, arrived)
        return super().create_application(protocol, scope)

    @property
    def ws_factory(self) -> Any:
        """The WebSocket factory ``run()`` builds (set below)."""
        return self._ws_factory

    @ws_factory.setter
    def ws_factory(self, factory: Any) -> None:
        # run() sets the factory's options right after building it; an option it does not
        # name (failByDrop) keeps the value set here.
        factory.setProtocolOptions(failByDrop=False)
        factory.protocol = FrameLimitProtocol
        self._ws_factory = factory


class FrameLimitCommandLine(CommandLineInterface):
    """daphne's command line, serving with ``FrameLimitServer``."""

    server_class = FrameLimitServer


def main() -> None:
    """``python -m liveplatform.daphne_server`` takes daphne's command line."""
    FrameLimitCommandLine.entrypoint()


if __name__ == "__main__":
    main()
