"""Tenant isolation, property-based: random tenants, members and events, every path checked.

Hypothesis draws a small world (tenants, users, memberships with roles, events of
every audience kind); the test then asks every path the platform has (live socket
delivery, replay from any cursor, removal of a membership while connected, the
notification API and inbox, job pages and downloads, announcement endpoints) and
checks each answer against an oracle computed from the drawn world, not from the
code under test. Guessing ids is part of every example: each user tries every id
of every other tenant's objects.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field

import pytest
from django.test import Client
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.support.ws import LiveSocket

pytestmark = pytest.mark.stack

ROLES = ["member", "admin"]
KINDS = ["tenant", "admins", "user", "notify", "own"]


@dataclass
class World:
    """The drawn world, as the oracle knows it."""

    suffix: str
    tenants: list = field(default_factory=list)
    users: list = field(default_factory=list)
    roles: dict = field(default_factory=dict)  # (user index, tenant index) -> role
    joined: dict = field(default_factory=dict)  # (user index, tenant index) -> joined_at
    left: dict = field(default_factory=dict)  # (user index, tenant index) -> cursor at removal
    former_roles: dict = field(default_factory=dict)  # (user index, tenant index) -> role before removal

    def tenant_index(self, tenant_id: int | None) -> int | None:
        return next((i for i, t in enumerate(self.tenants) if t.pk == tenant_id), None)

    def may_see(self, user_index: int, event) -> bool:
        """The oracle: may this user see this stored event (from the world, not from the code)?"""
        tenant = self.tenant_index(event.tenant_id)
        if event.tenant_id is not None and tenant is None:
            return False  # another example's tenant
        key = (user_index, tenant)
        member_now = key in self.roles
        if event.audience == "platform":
            return True
        if event.audience == "user":
            if event.user_id != self.users[user_index].pk:
                return False
            return tenant is None or member_now or (key in self.left and event.id <= self.left[key])
        if key not in self.joined or event.created_at < self.joined[key]:
            return False
        if key in self.left and event.id > self.left[key]:
            return False
        role = self.roles.get(key) or self.former_roles[key]
        return event.audience == "tenant" or (event.audience == "tenant_admins" and role == "admin")


def _latest() -> int:
    from realtime.services import latest_cursor

    return latest_cursor()


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


def _collect(sockets: dict[int, LiveSocket], expected: dict[int, set[int]], timeout: float = 20.0) -> None:
    """Read until every socket has its expected durable ids (or the deadline), then a quiet spell."""
    deadline = time.monotonic() + timeout
    for index, sock in sockets.items():
        while time.monotonic() < deadline:
            got = {f["id"] for f in sock.frames if f.get("id") is not None}
            if expected[index] <= got:
                break
            sock.listen(0.2)
    for sock in sockets.values():
        sock.drain(quiet=0.4)


def _check_sockets(world: World, sockets: dict[int, LiveSocket], afters: dict[int, int]) -> None:
    from realtime.models import Event

    for index, sock in sockets.items():
        durable = [f["id"] for f in sock.frames if f.get("id") is not None]
        events = {e.id: e for e in Event.objects.filter(id__in=durable)}
        leaked = [event_id for event_id in durable if not world.may_see(index, events[event_id])]
        assert not leaked, f"user {index} received events of others: {[events[i].data for i in leaked]}"
        expected = {e.id for e in Event.objects.filter(id__gt=afters[index]).order_by("id") if world.may_see(index, e)}
        assert set(durable) == expected, f"user {index}: missing {expected - set(durable)}"
        assert len(durable) == len(set(durable)), f"user {index}: duplicates"
        assert durable == sorted(durable), f"user {index}: out of order"
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
        "cursors": st.lists(st.integers(0, 10_000), min_size=4, max_size=4),
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
    """Tests that sockets, replay from any cursor, removal, APIs, pages, jobs and announcements keep tenants apart."""
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

    # Events before the sockets open: each socket resumes from a cursor of its own.
    start = _latest()
    publish_all(drawn["before"], "b")
    stored = _latest()
    afters = {
        index: start + drawn["cursors"][index] % (stored - start + 1) if stored > start else start
        for index in range(len(world.users))
    }
    sockets = {index: live.socket(user, after=afters[index]) for index, user in enumerate(world.users)}
    try:
        for sock in sockets.values():
            sock.wait_type("hello")
        publish_all(drawn["live"], "l")
        _collect(sockets, _expected(world, afters))

        # Removal of a membership while its user is connected.
        if world.roles:
            key = sorted(world.roles)[drawn["removal"] % len(world.roles)]
            removed_user, removed_tenant = key
            do_remove_member(
                Membership.objects.get(user=world.users[removed_user], tenant=world.tenants[removed_tenant])
            )
            world.former_roles[key] = world.roles.pop(key)
            world.left[key] = _latest()
            sockets[removed_user].wait_type("membership.changed")
            world.left[key] = _latest()  # the admins' notification of the removal may have come first
            for kind in ("tenant", "admins"):
                _publish(world, kind, removed_tenant, removed_user, f"{world.suffix}-after-removal-{kind}")
        _collect(sockets, _expected(world, afters))
        _check_sockets(world, sockets, afters)
    finally:
        for sock in sockets.values():
            sock.close()

    _check_http(world)


def _expected(world: World, afters: dict[int, int]) -> dict[int, set[int]]:
    from realtime.models import Event

    events = list(Event.objects.filter(id__gt=min(afters.values(), default=0)))
    return {index: {e.id for e in events if e.id > afters[index] and world.may_see(index, e)} for index in afters}


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
