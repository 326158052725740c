"""The badge counts a socket is given on connect: one frame per tenant the user is in now."""

import pytest

from notifications.models import NotificationCounter
from notifications.services import ALL_MEMBERS, notify
from notifications.snapshot import counts_snapshot
from realtime.services import subscriptions_for

pytestmark = pytest.mark.django_db


def test_each_current_tenant_gets_its_counts_and_a_left_tenant_none(make_tenant, make_member, make_user):
    """Tests counts per tenant, zeros where nothing arrived yet, and no frame for a tenant the user left."""
    acme, globex, initech = make_tenant("acme"), make_tenant("globex"), make_tenant("initech")
    pat = make_member(acme, email="pat@both.test")
    make_member(globex, user=pat)
    make_member(initech, user=pat)
    notify(acme, ALL_MEMBERS, category="general", title="One")
    notify(acme, ALL_MEMBERS, category="general", title="Two")
    notify(initech, ALL_MEMBERS, category="general", title="Bye")
    pat.memberships.get(tenant=initech).delete()
    assert NotificationCounter.objects.filter(user=pat, tenant=initech).exists()  # the row stays behind

    frames = counts_snapshot(pat, subscriptions_for(pat))
    assert [(kind, tenant) for kind, tenant, _ in frames] == [
        ("notification.counts", "acme"),
        ("notification.counts", "globex"),
    ]
    counts = {tenant: data["counts"] for _, tenant, data in frames}
    assert counts["acme"]["unread"] == 2 and counts["acme"]["unseen"] == 2
    assert counts["globex"] == {"unread": 0, "unseen": 0, "version": 0}
    loner = make_user("loner@nowhere.test")
    assert counts_snapshot(loner, subscriptions_for(loner)) == []
