"""The heartbeat's cursor: the newest event a user may see, and nothing newer of anyone else's."""

from datetime import timedelta

import pytest
from django.db.models import Max
from django.utils import timezone

from realtime.models import Event, SendMark
from realtime.services import latest_cursor_for, subscriptions_for, visible_events_filter

pytestmark = pytest.mark.django_db


def _event(audience: str, tenant=None, user=None, age: timedelta = timedelta(0), sent: bool = True) -> Event:
    """Store an event; ``sent`` moves the send mark past it, as the publisher does once it is sent."""
    event = Event.objects.create(
        type="t", audience=audience, tenant=tenant, user=user, data={}, created_at=timezone.now() - age
    )
    if sent:
        SendMark.objects.update_or_create(pk=1, defaults={"sent_through": event.id})
    return event


def _newest_visible(user) -> int:
    """The definition, as one query over everything the user may see."""
    subs = subscriptions_for(user)
    return Event.objects.filter(visible_events_filter(subs)).aggregate(latest=Max("id"))["latest"] or 0


def test_the_ping_cursor_is_the_newest_event_the_user_may_see(make_tenant, make_member):
    """Tests each audience in turn: what a member may see moves the cursor, what they may not never does."""
    acme, globex = make_tenant("acme"), make_tenant("globex")
    member = make_member(acme, email="m@acme.test")
    admin = make_member(acme, role="admin", email="a@acme.test")
    outsider = make_member(globex, email="o@globex.test")

    steps = [
        ("platform", {}, {member, admin, outsider}),
        ("tenant", {"tenant": acme}, {member, admin}),
        ("tenant_admins", {"tenant": acme}, {admin}),
        ("user", {"user": member}, {member}),
        ("user", {"user": member, "tenant": acme}, {member}),
        ("user", {"user": member, "tenant": globex}, set()),  # a tenant they are not in
        ("tenant", {"tenant": globex}, {outsider}),
        ("tenant", {"tenant": acme, "age": timedelta(days=2)}, set()),  # from before anyone joined
        ("tenant_admins", {"tenant": globex}, set()),
    ]
    cursors = {user: latest_cursor_for(subscriptions_for(user)) for user in (member, admin, outsider)}
    assert set(cursors.values()) == {0}
    for audience, where, seen_by in steps:
        event = _event(audience, **where)
        for user in (member, admin, outsider):
            cursor = latest_cursor_for(subscriptions_for(user))
            if user in seen_by:
                assert cursor == event.id, (audience, where, user.email)
            else:
                assert cursor == cursors[user], (audience, where, user.email)
            assert cursor == _newest_visible(user)
            cursors[user] = cursor


def test_an_event_stored_but_not_yet_sent_is_not_announced(make_tenant, make_member):
    """Tests that a heartbeat does not announce an event still on its way, which a client would take for a gap."""
    acme = make_tenant("acme")
    member = make_member(acme, email="m@acme.test")
    sent = _event("tenant", tenant=acme)
    in_flight = _event("tenant", tenant=acme, sent=False)  # stored; its batch is still being sent
    assert latest_cursor_for(subscriptions_for(member)) == sent.id
    SendMark.objects.filter(pk=1).update(sent_through=in_flight.id)
    assert latest_cursor_for(subscriptions_for(member)) == in_flight.id
