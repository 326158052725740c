"""Socket protocol fuzz through daphne: random, malformed, huge, binary frames and floods.

Whatever a client sends, the server answers with an error frame or a documented
close code, never an unhandled exception, and other sockets do not notice.
"""

from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from websockets.exceptions import ConnectionClosed

from realtime.audience import Audience
from realtime.events import publish

pytestmark = pytest.mark.stack

DOCUMENTED_CLOSES = {1009, 4429}

scalars = st.none() | st.booleans() | st.integers(-(2**80), 2**80) | st.floats() | st.text(max_size=30)
json_frames = st.recursive(
    scalars,
    lambda children: st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=8), children, max_size=5),
    max_leaves=15,
)
typed_frames = st.fixed_dictionaries(
    {"type": st.sampled_from(["ping", "resume", "auth", "hello", "", "x" * 200, "__init__", "realtime.event"])},
    optional={"after": scalars, "ticket": scalars, "text": scalars, "id": scalars},
)
frames = st.one_of(
    json_frames.map(lambda value: json.dumps(value, allow_nan=True)),
    typed_frames.map(json.dumps),
    st.text(max_size=300),
    st.binary(max_size=300),
    st.sampled_from(
        [
            "NaN",
            '{"type": "resume", "after": 1e400}',
            '{"type": "resume", "after": 99999999999999999999999999}',
            '{"type": "resume", "after": -1}',
            '{"type": "resume", "after": true}',
            "[" * 5000 + "]" * 5000,
            '{"type": "ping"' + ', "x": 1' * 3000 + "}",
            "\x00",
            "x" * (64 * 1024 + 1),  # one byte over the limit: 1009
        ]
    ),
)


class Probe:
    """The fuzzed socket, reopened whenever the server closes it with a documented code."""

    def __init__(self, live, user) -> None:
        self.live, self.user = live, user
        self.sock = None
        self.closes: list[int | None] = []

    def send(self, frame) -> None:
        if self.sock is None:
            self.sock = self.live.socket(self.user)
            self.sock.wait_type("hello")
        try:
            self.sock.send(frame)
            self.sock.drain(quiet=0.05)
        except ConnectionClosed as closed:
            self.closes.append(closed.rcvd.code if closed.rcvd else None)
            self.sock = None


@pytest.fixture
def cast(make_tenant, make_member):
    acme = make_tenant("acme")
    return acme, make_member(acme, email="fuzzer@acme.test"), make_member(acme, email="bystander@acme.test")


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(batch=st.lists(frames, min_size=1, max_size=6))
def test_random_frames_get_errors_or_documented_closes_and_bystanders_are_unaffected(live, cast, batch):
    """Tests that no frame crashes the consumer; only 1009 and 4429 ever close the fuzzed socket."""
    acme, fuzzer, bystander = cast
    log_start = len(live.server.output())
    probe = Probe(live, fuzzer)
    with live.socket(bystander) as calm:
        calm.wait_type("hello")
        for frame in batch:
            probe.send(frame)
        if probe.sock is not None:
            probe.sock.send({"type": "ping"})
            assert probe.sock.wait_type("pong")["type"] == "pong"
            errors = [f["data"]["code"] for f in probe.sock.frames if f["type"] == "error"]
            assert set(errors) <= {
                "invalid_json",
                "invalid_frame",
                "unknown_type",
                "binary_not_supported",
                "frame_too_big",
                "rate_limited",
            }
            probe.sock.close()
        assert set(probe.closes) <= DOCUMENTED_CLOSES, probe.closes
        publish("fuzz.check", {"ok": True}, audience=Audience.tenant(acme.pk), tenant=acme)
        assert calm.wait_type("fuzz.check")["data"] == {"ok": True}
    new_log = live.server.output()[log_start:]
    assert "Traceback" not in new_log and " ERROR " not in new_log, new_log[-3000:]


def test_a_flood_from_many_sockets_of_one_user_leaves_other_users_on_time(live, cast):
    """Tests a flood (10 sockets x 300 frames) against a bystander's round trip."""
    import time

    acme, fuzzer, bystander = cast
    # The flooding sockets are read only at the end: without a limit on what the client
    # holds unread (a browser keeps reading), websockets' own flow control could stall
    # one of them before the server's close frame arrived.
    sockets = [live.socket(fuzzer, max_queue=None) for _ in range(10)]
    try:
        for sock in sockets:
            sock.wait_type("hello")
        with live.socket(bystander) as calm:
            calm.wait_type("hello")
            for _ in range(300):
                for sock in sockets:
                    try:
                        sock.send('{"type": "ping"}')
                    except ConnectionClosed:
                        pass
            started = time.monotonic()
            calm.send({"type": "ping"})
            calm.wait_type("pong", timeout=10)
            assert time.monotonic() - started < 5
            codes = [sock.closed_code(timeout=10) for sock in sockets]
            assert codes == [4429] * len(sockets), codes
    finally:
        for sock in sockets:
            sock.close()
