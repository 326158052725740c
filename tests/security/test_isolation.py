"""Tenant isolation, property-based: random tenants, members and events, every path checked.

Hypothesis draws a small world (tenants, users, memberships with roles, events of
every audience kind); the test then asks every path the platform has (live socket
delivery, replay from any positions, removal of a membership while connected, the
notification API and inbox, job pages and downloads, announcement endpoints) and
checks each answer against an oracle computed from the drawn world, not from the
code under test. Guessing is part of every example: each user tries every id of
every other tenant's objects, and each socket's resume token names every stream of
the world, other users' and other tenants' included.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field

import pytest
from django.test import Client
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from realtime.audience import PLATFORM_GROUP
from realtime.streams import Position, encode_positions, stream_store
from tests.support.stream_log import StreamLog, from_the_start, streams_of
from tests.support.ws import LiveSocket

pytestmark = pytest.mark.stack

ROLES = ["member", "admin"]
KINDS = ["tenant", "admins", "user", "notify", "own"]


@dataclass(frozen=True)
class Stored:
    """One durable event as its stream keeps it: where it is, what it carries, when it was published."""

    stream: str
    offset: int
    tenant_slug: str | None
    published_ms: int
    data: dict

    @property
    def key(self) -> tuple[str, int]:
        return (self.stream, self.offset)


@dataclass
class World:
    """The drawn world, as the oracle knows it."""

    suffix: str
    tenants: list = field(default_factory=list)
    users: list = field(default_factory=list)
    roles: dict = field(default_factory=dict)  # (user index, tenant index) -> role
    joined: dict = field(default_factory=dict)  # (user index, tenant index) -> joined_at
    left: dict = field(default_factory=dict)  # (user index, tenant index) -> {stream: offset at removal}
    former_roles: dict = field(default_factory=dict)  # (user index, tenant index) -> role before removal

    @property
    def streams(self) -> list[str]:
        """Every stream of this world: each user's, each tenant's and its admins', the platform's."""
        return streams_of(users=self.users, tenants=self.tenants)

    def tenant_index(self, tenant_id: int | None) -> int | None:
        return next((i for i, t in enumerate(self.tenants) if t.pk == tenant_id), None)

    def may_see(self, user_index: int, event: Stored) -> bool:
        """The oracle: may this user see this stored event (from the world, not from the code)?"""
        if event.stream == PLATFORM_GROUP:
            return True
        kind, owner = event.stream.split(".")[0], int(event.stream.split(".")[1])
        if kind == "user":
            if owner != self.users[user_index].pk:
                return False
            slugs = [t.slug for t in self.tenants]
            if event.tenant_slug is None:
                return True
            if event.tenant_slug not in slugs:
                return False  # another example's tenant
            key = (user_index, slugs.index(event.tenant_slug))
            return key in self.roles or (key in self.left and event.offset <= self.left[key][event.stream])
        tenant = self.tenant_index(owner)
        if tenant is None:
            return False  # another example's tenant
        key = (user_index, tenant)
        if key not in self.joined or event.published_ms < int(self.joined[key].timestamp() * 1000):
            return False
        if key in self.left and event.offset > self.left[key][event.stream]:
            return False
        role = self.roles.get(key) or self.former_roles[key]
        return not event.stream.endswith(".admins") or role == "admin"


def _stored(log: StreamLog) -> dict[tuple[str, int], Stored]:
    """Every durable event in the world's streams since the log began, by (stream, offset)."""
    events = [
        Stored(frame["stream"], frame["offset"], frame["tenant"], published_ms, frame["data"])
        for frame, published_ms in log.entries()
    ]
    return {event.key: event for event in events}


def _publish(world: World, kind: str, tenant_index: int, user_index: int, token: str) -> None:
    from notifications.services import notify
    from realtime.audience import Audience
    from realtime.events import publish

    tenant, user = world.tenants[tenant_index], world.users[user_index]
    data = {"token": token}
    if kind == "tenant":
        publish("test.secret", data, audience=Audience.tenant(tenant.pk), tenant=tenant)
    elif kind == "admins":
        publish("test.secret", data, audience=Audience.tenant_admins(tenant.pk), tenant=tenant)
    elif kind == "own":  # a user-level event with no tenant
        publish("test.secret", data, audience=Audience.user(user.pk))
    elif (user_index, tenant_index) in world.roles:
        if kind == "user":
            publish("test.secret", data, audience=Audience.user(user.pk), tenant=tenant)
        else:
            notify(tenant, [user], category="general", title=f"secret {token}", body=f"body {token}")


def _received(sock: LiveSocket) -> list[tuple[str, int]]:
    return [(f["stream"], f["offset"]) for f in sock.durable()]


def _collect(sockets: dict[int, LiveSocket], expected: dict[int, set], timeout: float = 20.0) -> None:
    """Read until every socket has its expected durable events (or the deadline), then a quiet spell."""
    deadline = time.monotonic() + timeout
    for index, sock in sockets.items():
        while time.monotonic() < deadline:
            if expected[index] <= set(_received(sock)):
                break
            sock.listen(0.2)
    for sock in sockets.values():
        sock.drain(quiet=0.4)


def _check_sockets(world: World, sockets: dict[int, LiveSocket], afters: dict[int, dict], log: StreamLog) -> None:
    stored = _stored(log)
    for index, sock in sockets.items():
        durable = _received(sock)
        leaked = [key for key in durable if key not in stored or not world.may_see(index, stored[key])]
        assert not leaked, f"user {index} received events of others: {[stored.get(k, k) for k in leaked]}"
        expected = _expected(world, afters, stored)[index]
        assert set(durable) == expected, f"user {index}: missing {expected - set(durable)}"
        assert len(durable) == len(set(durable)), f"user {index}: duplicates"
        for stream in {s for s, _ in durable}:
            offsets = [o for s, o in durable if s == stream]
            assert offsets == sorted(offsets), f"user {index}: out of order in {stream}"
        slugs_ever = {world.tenants[t].slug for (u, t) in list(world.roles) + list(world.left) if u == index}
        foreign = [f for f in sock.frames if f.get("tenant") not in (None, *slugs_ever)]
        assert not foreign, f"user {index} got frames of a foreign tenant: {foreign[:3]}"


worlds = st.fixed_dictionaries(
    {
        "tenants": st.integers(2, 3),
        "users": st.integers(2, 4),
        "memberships": st.lists(
            st.tuples(st.integers(0, 3), st.integers(0, 2), st.sampled_from(ROLES)), min_size=4, max_size=8
        ),
        "before": st.lists(
            st.tuples(st.sampled_from(KINDS), st.integers(0, 2), st.integers(0, 3)), min_size=3, max_size=8
        ),
        "live": st.lists(
            st.tuples(st.sampled_from(KINDS), st.integers(0, 2), st.integers(0, 3)), min_size=3, max_size=8
        ),
        "positions": st.lists(st.integers(0, 10_000), min_size=4, max_size=4),
        "removal": st.integers(0, 100),
    }
)


@pytest.fixture
def media_root(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path
    return tmp_path


@settings(
    max_examples=4,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(drawn=worlds)
def test_no_path_shows_a_tenants_data_to_a_non_member(live, media_root, make_tenant, make_user, drawn):
    """Tests that sockets, replay from any positions, removal, APIs, pages, jobs, announcements keep tenants apart."""
    from accounts.models import Membership
    from accounts.services import do_add_member, do_remove_member

    world = World(suffix=uuid.uuid4().hex[:6])
    world.tenants = [make_tenant(f"t{i}-{world.suffix}") for i in range(drawn["tenants"])]
    world.users = [make_user(f"u{j}-{world.suffix}@iso.test") for j in range(drawn["users"])]
    for user_index, tenant_index, role in drawn["memberships"]:
        if user_index < len(world.users) and tenant_index < len(world.tenants):
            do_add_member(world.tenants[tenant_index], world.users[user_index], role=role)
            world.roles[(user_index, tenant_index)] = role
    for (u, t), role in world.roles.items():
        membership = Membership.objects.get(user=world.users[u], tenant=world.tenants[t])
        assert membership.role == role
        world.joined[(u, t)] = membership.created_at

    def publish_all(draws, tag):
        for n, (kind, t, u) in enumerate(draws):
            if t < len(world.tenants) and u < len(world.users):
                _publish(world, kind, t, u, f"{world.suffix}-{tag}{n}")

    # Events before the sockets open. Each socket resumes from positions of its own in EVERY stream
    # of the world: its own streams (replayed from there) and everyone else's (forged: ignored).
    log = StreamLog(world.streams)
    publish_all(drawn["before"], "b")
    stored = stream_store().positions(world.streams)
    afters = {
        index: {
            stream: Position(
                log.start[stream].offset
                + drawn["positions"][index] * (k + 1) % (stored[stream].offset - log.start[stream].offset + 1),
                stored[stream].epoch,
            )
            for k, stream in enumerate(world.streams)
        }
        for index in range(len(world.users))
    }
    sockets = {
        index: live.socket(user, positions=encode_positions(afters[index])) for index, user in enumerate(world.users)
    }
    try:
        for sock in sockets.values():
            sock.wait_type("hello")
        publish_all(drawn["live"], "l")
        _collect(sockets, _expected(world, afters, _stored(log)))

        # Removal of a membership while its user is connected.
        if world.roles:
            key = sorted(world.roles)[drawn["removal"] % len(world.roles)]
            removed_user, removed_tenant = key
            do_remove_member(
                Membership.objects.get(user=world.users[removed_user], tenant=world.tenants[removed_tenant])
            )
            world.former_roles[key] = world.roles.pop(key)
            sockets[removed_user].wait_type("membership.changed")
            # Where the removed member's streams stood once the socket had re-read its memberships.
            tenant = world.tenants[removed_tenant]
            streams = streams_of(users=[world.users[removed_user]], tenants=[tenant], platform=False)
            world.left[key] = {stream: top.offset for stream, top in stream_store().positions(streams).items()}
            for kind in ("tenant", "admins"):
                _publish(world, kind, removed_tenant, removed_user, f"{world.suffix}-after-removal-{kind}")
        _collect(sockets, _expected(world, afters, _stored(log)))
        _check_sockets(world, sockets, afters, log)
    finally:
        for sock in sockets.values():
            sock.close()

    _check_http(world)


def _expected(world: World, afters: dict[int, dict], stored: dict) -> dict[int, set]:
    """Per socket: the (stream, offset) of each stored event after its resume position that it may see."""
    return {
        index: {
            key
            for key, event in stored.items()
            if event.offset > since[event.stream].offset and world.may_see(index, event)
        }
        for index, since in afters.items()
    }


def _client(user) -> Client:
    client = Client()
    client.force_login(user, backend="django.contrib.auth.backends.ModelBackend")
    return client


def _check_http(world: World) -> None:
    """Every HTTP path, for every user, against every tenant and every other tenant's ids."""
    from accounts.api_keys import do_create_api_key
    from announcements.services import do_publish_announcement
    from notifications.models import Notification
    from workers.models import Job

    # One finished job with a file, and one announcement, in each tenant that has a member.
    jobs, announcements = [], []
    for t, tenant in enumerate(world.tenants):
        members = sorted(u for (u, tt) in world.roles if tt == t)
        if not members:
            continue
        owner = world.users[members[0]]
        job = Job.objects.create(
            tenant=tenant, owner=owner, kind="export", state="succeeded", task_id=str(uuid.uuid4())
        )
        path = f"jobs/{tenant.pk}/{job.pk}/secret-{world.suffix}.csv"
        file = media_root_of() / path
        file.parent.mkdir(parents=True, exist_ok=True)
        file.write_text(f"secret of {tenant.slug}\n")
        Job.objects.filter(pk=job.pk).update(result_file=path)
        jobs.append(Job.objects.get(pk=job.pk))
        announcements.append(
            do_publish_announcement(actor=None, tenant=tenant, title=f"notice {tenant.slug}", body="for members")
        )

    notifications = list(Notification.objects.filter(tenant__in=world.tenants))
    for u, user in enumerate(world.users):
        client = _client(user)
        member_of = {t for (uu, t) in world.roles if uu == u}
        for t, tenant in enumerate(world.tenants):
            is_member = t in member_of
            listing = client.get("/api/v1/notifications", {"tenant": tenant.slug, "limit": 100})
            inbox = client.get(f"/t/{tenant.slug}/notifications/")
            jobs_page = client.get(f"/t/{tenant.slug}/jobs/")
            if not is_member:
                assert (listing.status_code, inbox.status_code, jobs_page.status_code) == (404, 404, 404)
                continue
            assert listing.status_code == 200 and inbox.status_code == 200
            mine = {n.pk for n in notifications if n.recipient_id == user.pk and n.tenant_id == tenant.pk}
            assert {item["id"] for item in listing.json()["items"]} == mine
            others = [n for n in notifications if n.pk not in mine]
            for n in others:
                assert n.title.encode() not in inbox.content
                for action in ("read", "archive"):
                    answer = client.post(f"/api/v1/notifications/{n.pk}/{action}?tenant={tenant.slug}")
                    assert answer.status_code == 404, (action, n.pk)
                seen = client.post(
                    f"/api/v1/notifications/seen?tenant={tenant.slug}", {"ids": [n.pk]}, content_type="application/json"
                )
                assert seen.status_code == 200
            for job in jobs:
                may = job.tenant_id == tenant.pk and (world.roles[(u, t)] == "admin" or job.owner_id == user.pk)
                want = 200 if may else 404
                assert client.get(f"/api/v1/jobs/{job.pk}", {"tenant": tenant.slug}).status_code == want
                assert client.get(f"/t/{tenant.slug}/jobs/{job.pk}/").status_code == want
                download = client.get(f"/t/{tenant.slug}/jobs/{job.pk}/download/")
                assert download.status_code == want
                if not may:
                    assert b"secret of" not in download.content
        for announcement in announcements:
            may = world.tenant_index(announcement.tenant_id) in member_of
            answer = client.get(f"/api/v1/announcements/{announcement.pk}")
            assert answer.status_code == (200 if may else 404)
            dismiss = client.post(f"/api/v1/announcements/{announcement.pk}/dismiss")
            assert dismiss.status_code == (204 if may else 404)
            if not may:
                assert client.delete(f"/api/v1/announcements/{announcement.pk}").status_code == 404
                patch = client.patch(
                    f"/api/v1/announcements/{announcement.pk}", {"title": "hijacked"}, content_type="application/json"
                )
                assert patch.status_code == 404
        active = {a["id"] for a in client.get("/api/v1/announcements/active").json()}
        assert (
            active <= {a.pk for a in announcements if world.tenant_index(a.tenant_id) in member_of} | active_platform()
        )

    # Nothing another user did changed anyone's notification.
    for n in notifications:
        fresh = Notification.objects.get(pk=n.pk)
        assert (fresh.read_at, fresh.archived_at, fresh.seen_at) == (n.read_at, n.archived_at, n.seen_at)

    # API keys: a key of one tenant sees nothing of another.
    for t, tenant in enumerate(world.tenants):
        _, raw = do_create_api_key(tenant, "probe")
        headers = {"Authorization": f"Bearer {raw}"}
        for announcement in announcements:
            answer = Client().get(f"/api/v1/announcements/{announcement.pk}", headers=headers)
            assert answer.status_code == (200 if announcement.tenant_id == tenant.pk else 404)
        outsiders = [user.pk for u, user in enumerate(world.users) if (u, t) not in world.roles]
        if outsiders:
            answer = Client().post(
                "/api/v1/notifications",
                {"user_ids": outsiders, "title": "phishing"},
                content_type="application/json",
                headers=headers,
            )
            assert answer.status_code == 400
            assert not Notification.objects.filter(title="phishing").exists()


def media_root_of():
    from pathlib import Path

    from django.conf import settings as django_settings

    return Path(django_settings.MEDIA_ROOT)


def active_platform() -> set[int]:
    from announcements.models import Announcement

    return set(Announcement.objects.filter(scope="platform").values_list("pk", flat=True))


def test_a_forged_resume_token_naming_others_streams_yields_nothing_of_theirs(live, make_tenant, make_member):
    """Tests ?pos= and a `resume` frame that name another user's, another tenant's and the admins' streams.

    The token points at offset 0 of each stream's real epoch (a replay of everything its history holds),
    and then at an epoch the streams never had; the socket gets its own events back (the token was
    read) and never an event, a resync or a position of a stream that is not its own.
    """
    from realtime.audience import Audience, tenant_admins_group, tenant_group, user_group
    from realtime.events import publish

    acme, globex = make_tenant("acme"), make_tenant("globex")
    alice, bob = make_member(acme, email="alice@acme.test"), make_member(acme, email="bob@acme.test")
    gina = make_member(globex, email="gina@globex.test")
    secrets = {
        user_group(bob.pk): Audience.user(bob.pk),
        user_group(gina.pk): Audience.user(gina.pk),
        tenant_group(globex.pk): Audience.tenant(globex.pk),
        tenant_admins_group(acme.pk): Audience.tenant_admins(acme.pk),
        tenant_admins_group(globex.pk): Audience.tenant_admins(globex.pk),
    }
    for stream, audience in secrets.items():
        publish("test.secret", {"stream": stream}, audience=audience)
    publish("test.own", {"n": 1}, audience=Audience.user(alice.pk))
    own = {user_group(alice.pk), tenant_group(acme.pk), PLATFORM_GROUP}
    token = from_the_start([*secrets, *own])
    # Her own stream in a forged epoch too: its resync shows the token was read.
    forged_epochs = ",".join(f"{stream}:0:deadbeef" for stream in sorted([*secrets, user_group(alice.pk)]))

    def assert_nothing_of_theirs(sock: LiveSocket) -> None:
        assert sock.durable("test.secret") == []
        assert {f["stream"] for f in sock.durable()} <= own
        assert {f["data"]["stream"] for f in sock.frames if f["type"] == "resync"} <= own
        assert not [f for f in sock.frames if f.get("tenant") == "globex"]

    with live.socket(alice, positions=token) as sock:
        hello = sock.wait_type("hello")
        assert set(hello["data"]["positions"]) == own
        assert sock.wait_type("test.own")["data"] == {"n": 1}  # the token was honoured for her own stream
        sock.drain(0.5)
        assert_nothing_of_theirs(sock)
        sock.send({"type": "resume", "positions": token})
        assert sock.wait_type("test.own")["data"] == {"n": 1}  # replayed again: the frame was read
        sock.send({"type": "resume", "positions": forged_epochs})
        assert sock.wait_type("resync")["data"]["stream"] == user_group(alice.pk)
        sock.drain(0.5)
        assert_nothing_of_theirs(sock)
        assert len(sock.durable("test.own")) == 2
    with live.socket(alice, positions=forged_epochs) as sock:
        sock.wait_type("hello")
        assert sock.wait_type("resync")["data"]["stream"] == user_group(alice.pk)
        sock.drain(0.5)
        assert_nothing_of_theirs(sock)
        assert sock.durable() == []
