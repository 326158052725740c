"""What a reconnecting socket is sent: the replay is exactly what the user may see, as the live frames were."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.contrib.sessions.backends.db import SessionStore
from django.test import Client
from django.utils import timezone

from realtime.events import event_to_frame
from realtime.models import Event, RetentionMark
from realtime.services import open_session, replay_after, subscriptions_for, visible_events_filter

pytestmark = pytest.mark.django_db


def _event(audience: str, tenant=None, user=None, age: timedelta = timedelta(0), data=None) -> Event:
    return Event.objects.create(
        type=f"test.{audience}",
        audience=audience,
        tenant=tenant,
        user=user,
        data=data if data is not None else {"audience": audience, "at": "2026-11-25T10:00:00+00:00"},
        created_at=timezone.now() - age,
    )


@pytest.fixture
def world(make_tenant, make_member):
    """Two tenants, a member, an admin, a user in both, an outsider, and events of every audience."""
    acme, globex = make_tenant("acme"), make_tenant("globex")
    people = {
        "member": make_member(acme, email="m@acme.test"),
        "admin": make_member(acme, role="admin", email="a@acme.test"),
        "both": make_member(acme, email="b@both.test"),
        "outsider": make_member(globex, email="o@globex.test"),
    }
    make_member(globex, user=people["both"], role="admin")
    _event("tenant", tenant=acme, age=timedelta(days=2))  # from before anyone joined
    _event("platform")
    _event("platform", tenant=globex)  # platform-wide, naming a tenant most users are not in
    _event("tenant", tenant=acme)
    _event("tenant_admins", tenant=acme)
    _event("tenant", tenant=globex)
    _event("tenant_admins", tenant=globex)
    _event("user", user=people["member"])
    _event("user", user=people["member"], tenant=acme)
    _event("user", user=people["member"], tenant=globex)  # their event from a tenant they are not in
    _event("user", user=people["outsider"], tenant=globex, data={"nested": {"list": [1, 2.5, None, "é"]}})
    return people


def _definition(user, after: int) -> list[str]:
    """The frames the definition (``visible_events_filter``) says the user is owed after ``after``."""
    events = Event.objects.filter(visible_events_filter(subscriptions_for(user)), id__gt=after).select_related("tenant")
    return [event_to_frame(e, e.tenant.slug if e.tenant else None) for e in events.order_by("id")]


def test_the_replay_is_every_event_the_user_may_see_and_nothing_else(world):
    """Tests each kind of user against the definition: own events, tenants since joining, admins-only, platform."""
    first = Event.objects.order_by("id").first().id
    for name, user in world.items():
        for after in (0, first, first + 3):
            replay = replay_after(subscriptions_for(user), after)
            assert not replay.resync
            assert replay.frames == _definition(user, after), (name, after)
    outsider_replay = [json.loads(f) for f in replay_after(subscriptions_for(world["outsider"]), 0).frames]
    assert {frame["tenant"] for frame in outsider_replay} == {None, "globex"}
    member_types = [json.loads(f)["type"] for f in replay_after(subscriptions_for(world["member"]), 0).frames]
    assert member_types == ["test.platform", "test.platform", "test.tenant", "test.user", "test.user"]


def test_the_replay_ends_at_its_last_event_or_at_the_resume_cursor(world):
    """Tests the cursor a replay reports: the last replayed event, or the client's own when nothing was missed."""
    newest = Event.objects.order_by("-id").first().id
    replay = replay_after(subscriptions_for(world["member"]), 0)
    assert replay.cursor == json.loads(replay.frames[-1])["id"]
    assert replay_after(subscriptions_for(world["member"]), newest) == replay_after(
        subscriptions_for(world["member"]), newest, newest=newest
    )
    assert replay_after(subscriptions_for(world["member"]), newest).cursor == newest


def test_a_cursor_the_server_cannot_replay_from_gets_a_resync(world, settings):
    """Tests the three resync reasons: pruned history, a cursor from the future, too much missed."""
    subs = subscriptions_for(world["admin"])
    newest = Event.objects.order_by("-id").first().id
    assert replay_after(subs, newest + 10).reason == "cursor_unknown"
    settings.REALTIME = {**settings.REALTIME, "MAX_REPLAY": 2}
    too_many = replay_after(subs, 0)
    assert (too_many.resync, too_many.reason, too_many.cursor) == (True, "too_many_missed", newest)
    RetentionMark.objects.create(pk=1, pruned_through=newest - 1)
    assert replay_after(subs, newest - 2).reason == "cursor_expired"


def test_memberships_are_read_in_tenant_order_with_the_time_each_was_joined(world):
    """Tests the subscriptions a socket joins: tenants by name, roles, and join times equal to the stored ones."""
    from accounts.models import Membership

    subs = subscriptions_for(world["both"])
    assert [(t.slug, t.role) for t in subs.tenants] == [("acme", "member"), ("globex", "admin")]
    stored = dict(Membership.objects.filter(user=world["both"]).values_list("tenant__slug", "created_at"))
    assert {t.slug: t.joined_at for t in subs.tenants} == stored
    assert subs.groups == {
        f"user.{world['both'].pk}",
        "platform",
        f"tenant.{subs.tenants[0].id}",
        f"tenant.{subs.tenants[1].id}",
        f"tenant.{subs.tenants[1].id}.admins",
    }


def test_a_resuming_handshake_reads_the_database_a_handful_of_times(world, django_assert_max_num_queries):
    """Tests the handshake's query budget: three reads to admit it, five to open it (replay and snapshots)."""
    from realtime.admission import admit_browser_socket

    client = Client()
    client.force_login(world["admin"], backend="django.contrib.auth.backends.ModelBackend")
    session_key = client.session.session_key
    assert SessionStore(session_key=session_key).load()  # the session exists
    with django_assert_max_num_queries(3):
        admission = admit_browser_socket(session_key)
    assert admission.user == world["admin"] and not admission.refused
    with django_assert_max_num_queries(5):
        opening = open_session(admission.user, admission.subs, 0)
    assert opening.replay.frames == _definition(world["admin"], 0)
    assert get_user_model().objects.get(pk=admission.user.pk).email == admission.user.email
