"""What a reconnecting socket is sent: each stream's replay is exactly what the user may see, as live frames were."""

from __future__ import annotations

import time

import pytest
from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.sessions.backends.db import SessionStore
from django.test import Client

from realtime.audience import Audience
from realtime.events import publish_many, stream_message
from realtime.services import open_session, replay, stream_tops, subscriptions_for
from realtime.streams import RedisStreamStore

pytestmark = [pytest.mark.django_db, pytest.mark.stack]


def _events(*specs):
    from realtime.events import make_event

    return [
        make_event(f"test.{audience.kind}", {"n": n}, audience=audience, tenant=tenant)
        for n, (audience, tenant) in enumerate(specs)
    ]


@pytest.fixture
def world(make_tenant, make_member, django_capture_on_commit_callbacks):
    """Two tenants, a member, an admin, a user in both, an outsider; their positions, then events of every audience."""
    acme, globex = make_tenant("acme"), make_tenant("globex")
    people = {
        "member": make_member(acme, email="m@acme.test"),
        "admin": make_member(acme, role="admin", email="a@acme.test"),
        "both": make_member(acme, email="b@both.test"),
        "outsider": make_member(globex, email="o@globex.test"),
    }
    make_member(globex, user=people["both"], role="admin")
    streams = set().union(*(subscriptions_for(user).groups for user in people.values()))
    start = stream_tops(streams)
    # An acme event stamped two hours ago (within the history's age): from before anyone joined.
    two_hours_ago = RedisStreamStore(
        settings.CHANNEL_LAYER_REDIS_URLS,
        clock=lambda: time.time() - 7200,
        key_prefix=settings.REALTIME["STREAM_KEY_PREFIX"],
    )
    two_hours_ago.publish_many([stream_message(_events((Audience.tenant(acme.pk), acme))[0])])
    with django_capture_on_commit_callbacks(execute=True):
        publish_many(
            _events(
                (Audience.platform(), None),
                (Audience.tenant(acme.pk), acme),
                (Audience.tenant_admins(acme.pk), acme),
                (Audience.tenant(globex.pk), globex),
                (Audience.tenant_admins(globex.pk), globex),
                (Audience.user(people["member"].pk), None),
                (Audience.user(people["member"].pk), acme),
                (Audience.user(people["member"].pk), globex),  # their event from a tenant they are not in
                (Audience.user(people["outsider"].pk), globex),
            )
        )
    return {"people": people, "start": start, "acme": acme, "globex": globex}


def _replayed(world, who: str) -> list[tuple[str, str, int]]:
    user = world["people"][who]
    subs = subscriptions_for(user)
    since = {stream: world["start"][stream] for stream in subs.groups}
    import json

    frames = [json.loads(frame) for frame in replay(subs, since).frames]
    return sorted((frame["stream"], frame["type"], frame["data"]["n"]) for frame in frames)


def test_the_replay_is_every_event_the_user_may_see_and_nothing_else(world):
    """Tests each kind of user against the rules: own events, tenants since joining, admins-only, platform."""
    acme, globex, people = world["acme"].pk, world["globex"].pk, world["people"]
    platform = ("platform", "test.platform", 0)
    acme_all = (f"tenant.{acme}", "test.tenant", 1)
    acme_admins = (f"tenant.{acme}.admins", "test.tenant_admins", 2)
    globex_all = (f"tenant.{globex}", "test.tenant", 3)
    globex_admins = (f"tenant.{globex}.admins", "test.tenant_admins", 4)
    member = people["member"].pk
    assert _replayed(world, "member") == sorted(
        [platform, acme_all, (f"user.{member}", "test.user", 5), (f"user.{member}", "test.user", 6)]
    )
    assert _replayed(world, "admin") == sorted([platform, acme_all, acme_admins])
    assert _replayed(world, "both") == sorted([platform, acme_all, globex_all, globex_admins])
    outsider = people["outsider"].pk
    assert _replayed(world, "outsider") == sorted([platform, globex_all, (f"user.{outsider}", "test.user", 8)])


def test_streams_a_user_does_not_follow_are_ignored_however_they_are_named(world):
    """Tests that a position for another user's or tenant's stream replays nothing from it."""
    outsider = world["people"]["outsider"]
    subs = subscriptions_for(world["people"]["member"])
    foreign = {
        stream: position
        for stream, position in world["start"].items()
        if stream in {f"user.{outsider.pk}", f"tenant.{world['globex'].pk}", f"tenant.{world['acme'].pk}.admins"}
    }
    result = replay(subs, foreign)
    assert result.frames == [] and result.resyncs == [] and result.positions == {}


def test_memberships_are_read_in_tenant_order_with_the_time_each_was_joined(world):
    """Tests the subscriptions a socket joins: tenants by name, roles, and join times equal to the stored ones."""
    from accounts.models import Membership

    both = world["people"]["both"]
    subs = subscriptions_for(both)
    assert [(t.slug, t.role) for t in subs.tenants] == [("acme", "member"), ("globex", "admin")]
    stored = dict(Membership.objects.filter(user=both).values_list("tenant__slug", "created_at"))
    assert {t.slug: t.joined_at for t in subs.tenants} == stored
    assert subs.groups == {
        f"user.{both.pk}",
        "platform",
        f"tenant.{subs.tenants[0].id}",
        f"tenant.{subs.tenants[1].id}",
        f"tenant.{subs.tenants[1].id}.admins",
    }


def test_a_resuming_handshake_reads_the_database_a_handful_of_times(world, django_assert_max_num_queries):
    """Tests the handshake's query budget: three reads to admit it; opening reads streams, not an event log."""
    from realtime.admission import admit_browser_socket

    admin = world["people"]["admin"]
    client = Client()
    client.force_login(admin, backend="django.contrib.auth.backends.ModelBackend")
    session_key = client.session.session_key
    assert SessionStore(session_key=session_key).load()  # the session exists
    with django_assert_max_num_queries(3):
        admission = admit_browser_socket(session_key)
    assert admission.user == admin and not admission.refused
    since = {stream: world["start"][stream] for stream in admission.subs.groups}
    with django_assert_max_num_queries(4):
        opening = open_session(admission.user, admission.subs, since)
    assert len(opening.replay.frames) == 3
    assert get_user_model().objects.get(pk=admission.user.pk).email == admission.user.email
