"""The bell on every page, the inbox and the preferences pages, scoped to the tenant."""

from __future__ import annotations

import pytest
from django.urls import reverse

from notifications import services
from notifications.models import Preference, TenantCategory


def test_the_bell_shows_the_current_tenants_unread_count(client, org):
    services.notify(org["acme"], org["pat"], category="general", title="a1")
    services.notify(org["globex"], org["pat"], category="general", title="g1")
    services.notify(org["globex"], org["pat"], category="general", title="g2")
    client.force_login(org["pat"])
    acme = client.get("/t/acme/").content.decode()
    assert 'data-testid="notification-badge">1<' in acme and 'data-tenant="acme"' in acme
    globex = client.get("/t/globex/").content.decode()
    assert 'data-testid="notification-badge">2<' in globex


def test_the_bell_is_on_pages_outside_a_tenant_too(client, org):
    client.force_login(org["alice"])
    client.get("/t/acme/")
    page = client.get(reverse("account_change_password")).content.decode()
    assert 'id="notification-bell"' in page and 'data-tenant="acme"' in page


@pytest.mark.parametrize("name", ["notifications_inbox", "notifications_preferences"])
def test_pages_answer_404_to_non_members(client, org, name):
    client.force_login(org["gina"])
    assert client.get(reverse(name, args=["acme"])).status_code == 404
    assert client.get(reverse(name, args=["globex"])).status_code == 200


def test_inbox_page_lists_the_tenants_categories(client, org):
    client.force_login(org["alice"])
    page = client.get(reverse("notifications_inbox", args=["acme"])).content.decode()
    assert 'id="inbox"' in page and 'value="jobs"' in page and "js/inbox.js" in page


def test_a_member_sets_preferences_but_not_required_ones(client, org):
    client.force_login(org["alice"])
    url = reverse("notifications_preferences", args=["acme"])
    client.get(url)
    TenantCategory.objects.filter(tenant=org["acme"], slug="jobs").update(required=True)
    response = client.post(url, {"scope": "user", "email:general": "on"})  # toasts off, email on for general
    assert response.status_code == 302
    general = Preference.objects.get(tenant=org["acme"], user=org["alice"], category="general")
    assert (general.in_app, general.email) == (False, True)
    assert not Preference.objects.filter(user=org["alice"], category="jobs").exists()


def test_muted_toasts_are_flagged_in_the_event(org, published, django_capture_on_commit_callbacks):

    Preference.objects.create(tenant=org["acme"], user=org["alice"], category="general", in_app=False)
    with django_capture_on_commit_callbacks(execute=True):
        services.notify(org["acme"], [org["alice"], org["bob"]], category="general", title="quiet")
    toasts = {e["stream"]: e["data"]["toast"] for e in published.frames(event_type="notification.created")}
    assert toasts == {f"user.{org['alice'].pk}": False, f"user.{org['bob'].pk}": True}


def test_only_admins_set_tenant_defaults(client, org):
    url = reverse("notifications_preferences", args=["acme"])
    client.force_login(org["alice"])
    assert client.post(url, {"scope": "tenant", "tenant_required:general": "on"}).status_code == 403
    client.force_login(org["admin"])
    assert "Defaults of Acme Corp" in client.get(url).content.decode()
    client.post(url, {"scope": "tenant", "tenant_in_app:general": "on", "tenant_required:general": "on"})
    general = TenantCategory.objects.get(tenant=org["acme"], slug="general")
    assert (general.in_app, general.email, general.required) == (True, False, True)


def test_demo_seed_is_idempotent(db):
    from accounts import demo as accounts_demo
    from notifications import demo
    from notifications.models import Notification

    accounts_demo.seed(password=None)
    demo.seed()
    # Adding members notifies the admins too; the demo's own rows carry a demo key.
    seeded = Notification.objects.filter(data__has_key="demo")
    first = seeded.count()
    demo.seed()
    assert first == len(demo.DEMO_NOTIFICATIONS)
    assert seeded.count() == first
