"""The banners a socket is given on connect are exactly the ones the page shows."""

from datetime import timedelta

import pytest
from django.utils import timezone

from announcements import services
from announcements.models import Announcement, Dismissal
from realtime.services import subscriptions_for

pytestmark = pytest.mark.django_db


def publish(captured, **fields):
    values = {"actor": None, "title": "Hello", **fields}
    with captured(execute=True):
        return services.do_publish_announcement(**values)


def socket_snapshot(user, now=None):
    return services.active_for_socket(user, subscriptions_for(user), now=now)


def test_the_socket_snapshot_equals_the_page_list_for_every_kind_of_user(people, django_capture_on_commit_callbacks):
    """Tests tenant, admins-only and platform announcements, the window, an early end and dismissals together."""
    now = timezone.now()
    acme, globex = people["acme"], people["globex"]
    captured = django_capture_on_commit_callbacks
    publish(captured, tenant=acme, title="Acme, everyone", severity="info")
    publish(captured, tenant=acme, title="Acme admins", audience="admins", severity="warning")
    publish(captured, tenant=globex, title="Globex, everyone", style="modal")
    publish(captured, scope="platform", title="Platform", severity="critical", style="modal")
    publish(captured, tenant=acme, title="Later", starts_at=now + timedelta(hours=1))
    ending = publish(captured, tenant=acme, title="Ends soon", ends_at=now + timedelta(minutes=5))
    ended = publish(captured, tenant=globex, title="Ended early")
    with captured(execute=True):
        services.do_end_announcement(ended, actor=None)
    dismissed = publish(captured, tenant=acme, title="Alice closed it")
    Dismissal.objects.create(announcement=dismissed, user=people["alice"])
    acknowledged = Announcement.objects.get(title="Platform")  # critical: not dismissable, acknowledged
    Dismissal.objects.create(announcement=acknowledged, user=people["gina"])

    for name in ("alice", "bob", "acme_admin", "gina", "globex_admin", "pat", "staff", "loner"):
        user = people[name]
        assert socket_snapshot(user) == services.active_for(user), name
        later = now + timedelta(minutes=6)  # "Ends soon" has ended by then
        assert socket_snapshot(user, now=later) == services.active_for(user, now=later), name
    assert ending.pk not in [a["id"] for a in socket_snapshot(people["alice"], now=now + timedelta(minutes=6))]
    gina = {a["title"]: a["display"] for a in socket_snapshot(people["gina"])}
    assert gina == {"Platform": "banner", "Globex, everyone": "modal"}
    assert {a["tenant_name"] for a in socket_snapshot(people["alice"]) if a["scope"] == "tenant"} == {"Acme"}


def test_a_socket_never_gets_another_tenants_banner(people, django_capture_on_commit_callbacks):
    """Tests that an announcement of a tenant the user is not in stays out of their snapshot."""
    publish(django_capture_on_commit_callbacks, tenant=people["globex"], title="Globex only")
    publish(django_capture_on_commit_callbacks, tenant=people["globex"], title="Globex admins", audience="admins")
    assert socket_snapshot(people["alice"]) == []
    assert socket_snapshot(people["acme_admin"]) == []
    assert [a["title"] for a in socket_snapshot(people["pat"])] == ["Globex only"]
