"""The real-time core through the real stack: daphne, Redis, a Celery worker, `websockets`."""

import pytest

from realtime.audience import Audience
from realtime.events import publish
from realtime.tasks import publish_event

pytestmark = [pytest.mark.stack]


@pytest.fixture
def tenants(make_tenant, make_member):
    acme, globex = make_tenant("acme"), make_tenant("globex")
    return {
        "acme": acme,
        "globex": globex,
        "alice": make_member(acme, email="alice@acme.test"),
        "bob": make_member(acme, email="bob@acme.test"),
        "gina": make_member(globex, email="gina@globex.test"),
    }


def test_worker_publishes_to_a_user_and_a_tenant_and_only_they_receive(live, celery_worker, tenants):
    """A task in a separate worker process reaches exactly the right sockets."""
    acme = tenants["acme"]
    with (
        live.socket(tenants["alice"]) as alice,
        live.socket(tenants["bob"]) as bob,
        live.socket(tenants["gina"]) as gina,
    ):
        for sock in (alice, bob, gina):
            sock.wait_type("hello")
        publish_event.delay("test.tenant", {"text": "to acme"}, audience_kind="tenant", tenant_id=acme.pk)
        publish_event.delay("test.user", {"text": "to alice"}, audience_kind="user", user_id=tenants["alice"].pk)

        tenant_frame = alice.wait_type("test.tenant")
        assert tenant_frame["tenant"] == "acme" and tenant_frame["data"] == {"text": "to acme"}
        assert tenant_frame["stream"] == f"tenant.{acme.pk}" and isinstance(tenant_frame["offset"], int)
        assert alice.wait_type("test.user")["data"] == {"text": "to alice"}
        bob_frame = bob.wait_type("test.tenant")
        assert (bob_frame["stream"], bob_frame["offset"]) == (tenant_frame["stream"], tenant_frame["offset"])
        # Bob gets no user event of Alice's; Gina, in globex, gets nothing at all.
        assert [f["type"] for f in bob.drain(0.5) if "stream" in f] == []
        assert [f["type"] for f in gina.drain(0.5) if "stream" in f] == []
        assert gina.durable() == []


def test_idle_socket_still_receives_after_ten_seconds(live, tenants):
    """An idle consumer's Redis receive must not time out (the redis-py 8 trap)."""
    with live.socket(tenants["alice"]) as alice:
        alice.wait_type("hello")
        # Idle on purpose: nothing goes through the channel layer for ten seconds.
        frames = alice.listen(10.5)
        assert [f["type"] for f in frames if "stream" in f] == []
        publish("test.after_idle", {}, audience=Audience.user(tenants["alice"].pk))
        assert alice.wait_type("test.after_idle", timeout=5)["type"] == "test.after_idle"


def test_anonymous_and_foreign_origin_handshakes_are_refused(live, tenants):
    from websockets.exceptions import InvalidStatus

    with pytest.raises(InvalidStatus):
        live.socket(None)
    with pytest.raises(InvalidStatus):
        live.socket(tenants["alice"], origin="http://evil.example")
    with pytest.raises(InvalidStatus):
        live.socket(tenants["alice"], origin=None)


def test_watch_events_command_prints_frames_through_the_app_route(live, tenants, subprocess_env):
    """The terminal client a reader uses to watch events flow."""
    import subprocess
    import sys

    from tests.support.processes import ROOT

    watcher = subprocess.Popen(
        [
            sys.executable,
            "manage.py",
            "watch_events",
            "--email",
            "alice@acme.test",
            "--url",
            f"{live.ws_url}/ws/app/",
            "--count",
            "1",
        ],
        cwd=ROOT,
        env=subprocess_env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        out, err = watcher.communicate(timeout=60)
    finally:
        if watcher.poll() is None:
            watcher.kill()
    assert watcher.returncode == 0, err
    assert "hello" in out and "Watching events of alice@acme.test" in err
