"""realtime.outage.RedisOutageGuard in isolation: what a socket that Redis failed is told, and what is logged."""

from __future__ import annotations

import asyncio
import traceback

import pytest
import redis.exceptions

from realtime.outage import Outage, RedisOutageGuard


class Recorder:
    """An ASGI server's side of one socket: the handshake comes in, what the app sends is kept."""

    def __init__(self, extensions: dict | None = None) -> None:
        self.scope = {"type": "websocket", "path": "/ws/", "extensions": extensions or {}}
        self.sent: list[dict] = []

    async def receive(self) -> dict:
        return {"type": "websocket.connect"}

    async def send(self, message: dict) -> None:
        self.sent.append(message)


def consumer_failing_with(error: BaseException, *, accept_first: bool):
    async def app(scope, receive, send):
        await receive()
        if accept_first:
            await send({"type": "websocket.accept"})
        raise error

    return app


def run(guard: RedisOutageGuard, recorder: Recorder) -> None:
    asyncio.run(guard(recorder.scope, recorder.receive, recorder.send))


def test_one_error_object_raised_by_many_consumers_keeps_a_short_traceback_and_logs_once(caplog):
    """Tests the growing traceback: the layer hands every open socket's consumer the same exception object."""
    shared = redis.exceptions.ConnectionError("Error 111 connecting to 127.0.0.1:6379. Connection refused.")
    outage = Outage()
    caplog.set_level("WARNING", logger="realtime.outage")
    recorders = [Recorder() for _ in range(50)]

    async def main() -> None:
        redis_died = asyncio.Event()

        async def consumer(scope, receive, send):
            await receive()
            await send({"type": "websocket.accept"})
            await redis_died.wait()
            raise shared

        guard = RedisOutageGuard(consumer, outage)
        sockets = [asyncio.ensure_future(guard(r.scope, r.receive, r.send)) for r in recorders]
        await asyncio.sleep(0)  # every socket accepted
        redis_died.set()
        await asyncio.gather(*sockets)

    asyncio.run(main())
    assert all(r.sent[-1] == {"type": "websocket.close", "code": 1013} for r in recorders)
    assert shared.__traceback__ is None or len(traceback.extract_tb(shared.__traceback__)) < 10
    assert outage.closed == 50
    assert [r.getMessage()[:24] for r in caplog.records] == ["Redis is unavailable (Co"]


def test_a_handshake_redis_failed_is_a_503_where_the_server_can_send_one_else_1013():
    """Tests the refusal before accept: HTTP 503 with Retry-After (uvicorn), or accept and close 1013 (daphne)."""
    error = redis.exceptions.ConnectionError("gone")
    uvicorn_like = Recorder({"websocket.http.response": {}})
    run(RedisOutageGuard(consumer_failing_with(error, accept_first=False), Outage()), uvicorn_like)
    assert uvicorn_like.sent[0]["type"] == "websocket.http.response.start"
    assert uvicorn_like.sent[0]["status"] == 503 and (b"retry-after", b"2") in uvicorn_like.sent[0]["headers"]
    daphne_like = Recorder()
    run(RedisOutageGuard(consumer_failing_with(error, accept_first=False), Outage()), daphne_like)
    assert daphne_like.sent == [{"type": "websocket.accept"}, {"type": "websocket.close", "code": 1013}]


def test_other_errors_are_not_an_outage_and_still_reach_the_server():
    """Tests that a bug in a consumer is not hidden as 'Redis is unavailable'."""
    outage = Outage()
    with pytest.raises(ConnectionResetError):
        run(RedisOutageGuard(consumer_failing_with(ConnectionResetError(), accept_first=True), outage), Recorder())
    assert outage.down_since is None
