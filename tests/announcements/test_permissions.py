"""Who may publish: tenant admins to their tenant, staff platform-wide, nobody else."""

import json

import pytest

from accounts.api_keys import do_create_api_key
from announcements.models import Announcement, AuditLogEntry


def compose(client, slug, **fields):
    data = {
        "title": "Maintenance tonight",
        "body": "We **upgrade** at 22:00.",
        "severity": "info",
        "style": "banner",
        "audience": "all",
        "dismissable": "on",
        **fields,
    }
    return client.post(f"/t/{slug}/announcements/new/", data)


def api_post(client, payload, **headers):
    return client.post("/api/v1/announcements", json.dumps(payload), content_type="application/json", **headers)


@pytest.mark.parametrize("page", ["", "new/"])
def test_members_get_404_on_composer_pages(client, people, page):
    client.force_login(people["alice"])
    assert client.get(f"/t/acme/announcements/{page}").status_code == 404
    client.force_login(people["globex_admin"])
    assert client.get(f"/t/acme/announcements/{page}").status_code == 404
    client.force_login(people["acme_admin"])
    assert client.get(f"/t/acme/announcements/{page}").status_code == 200


def test_member_cannot_publish_through_the_composer(client, people, django_capture_on_commit_callbacks):
    client.force_login(people["alice"])
    assert compose(client, "acme").status_code == 404
    assert not Announcement.objects.exists()


def test_admin_publishes_to_their_tenant_and_it_is_audited(client, people, django_capture_on_commit_callbacks):
    client.force_login(people["acme_admin"])
    with django_capture_on_commit_callbacks(execute=True):
        response = compose(client, "acme")
    assert response.status_code == 302
    announcement = Announcement.objects.get()
    assert (announcement.tenant, announcement.scope, announcement.state) == (people["acme"], "tenant", "active")
    assert "<strong>upgrade</strong>" in announcement.body_html
    entry = AuditLogEntry.objects.get()
    assert (entry.action, entry.actor, entry.via) == ("published", people["acme_admin"], "composer")
    assert entry.changes["title"] == [None, "Maintenance tonight"]


def test_tenant_admin_cannot_publish_to_another_tenant_or_platform_wide(client, people):
    client.force_login(people["acme_admin"])
    assert compose(client, "globex").status_code == 404
    # The scope field is not offered to non-staff; a forged one is ignored (stays the tenant).
    with_forged_scope = compose(client, "acme", scope="platform")
    assert with_forged_scope.status_code == 302
    assert Announcement.objects.get().scope == "tenant"
    assert client.get("/platform/announcements/").status_code == 404
    assert client.post("/platform/announcements/new/", {"title": "x"}).status_code == 404
    assert api_post(client, {"scope": "platform", "title": "Everyone!"}).status_code == 403
    assert api_post(client, {"tenant": "globex", "title": "Hi globex"}).status_code == 404
    assert Announcement.objects.count() == 1


def test_staff_publish_platform_wide_from_the_composer_and_the_api(client, people):
    client.force_login(people["staff"])
    response = client.post(
        "/platform/announcements/new/",
        {"title": "Platform upgrade", "severity": "warning", "style": "banner", "audience": "all"},
    )
    assert response.status_code == 302
    response = api_post(client, {"scope": "platform", "title": "Second", "severity": "info"})
    assert response.status_code == 201, response.content
    assert response.json()["scope"] == "platform" and response.json()["tenant"] is None
    assert set(Announcement.objects.values_list("scope", "tenant")) == {("platform", None)}


def test_members_get_403_on_the_api(client, people):
    client.force_login(people["alice"])
    assert api_post(client, {"tenant": "acme", "title": "Hi"}).status_code == 403
    announcement = Announcement.objects.create(tenant=people["acme"], title="Existing")
    url = f"/api/v1/announcements/{announcement.pk}"
    assert client.patch(url, json.dumps({"title": "X"}), content_type="application/json").status_code == 403
    assert client.delete(url).status_code == 403
    assert client.post(f"{url}/end").status_code == 403
    assert Announcement.objects.get().title == "Existing"


def test_api_key_publishes_only_to_its_own_tenant(client, people):
    _, raw = do_create_api_key(people["acme"], "deploy bot")
    auth = {"HTTP_AUTHORIZATION": f"Bearer {raw}"}
    created = api_post(client, {"title": "Deploy finished", "severity": "info"}, **auth)
    assert created.status_code == 201, created.content
    assert created.json()["tenant"] == "acme"
    assert api_post(client, {"tenant": "globex", "title": "Sneaky"}, **auth).status_code == 403
    assert api_post(client, {"scope": "platform", "title": "Sneaky"}, **auth).status_code == 403
    globex_one = Announcement.objects.create(tenant=people["globex"], title="Globex only")
    assert client.delete(f"/api/v1/announcements/{globex_one.pk}", **auth).status_code == 404
    assert api_post(client, {"title": "x"}).status_code == 401  # no credentials at all


def test_api_create_is_idempotent_and_validates(client, people):
    client.force_login(people["acme_admin"])
    payload = {"tenant": "acme", "title": "Once", "body": "only once"}
    first = api_post(client, payload, HTTP_IDEMPOTENCY_KEY="abc-1")
    again = api_post(client, payload, HTTP_IDEMPOTENCY_KEY="abc-1")
    assert first.status_code == again.status_code == 201
    assert first.json()["id"] == again.json()["id"]
    assert Announcement.objects.count() == 1
    different = api_post(client, {**payload, "title": "Other"}, HTTP_IDEMPOTENCY_KEY="abc-1")
    assert different.status_code == 422
    bad = api_post(client, {"tenant": "acme", "title": "x", "ends_at": "2001-01-01T00:00:00Z"})
    assert bad.status_code == 400
    assert "ends_at" in bad.json()["errors"]
    assert api_post(client, {"tenant": "acme", "title": "x", "severity": "loud"}).status_code == 400


def test_staff_publish_and_end_from_django_admin_through_the_same_services(
    client, people, published, django_capture_on_commit_callbacks
):
    from realtime.audience import PLATFORM_GROUP

    staff = people["staff"]
    staff.is_superuser = True
    staff.save()
    client.force_login(staff)
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(
            "/admin/announcements/announcement/add/",
            {
                "scope": "platform",
                "title": "From the admin",
                "body": "Hello *everyone*",
                "severity": "info",
                "style": "banner",
                "audience": "all",
                "starts_at_0": "",
                "starts_at_1": "",
                "dismissable": "on",
            },
        )
    assert response.status_code == 302, [str(e) for e in response.context["adminform"].form.errors.items()]
    announcement = Announcement.objects.get()
    assert (announcement.scope, announcement.author, announcement.state) == ("platform", staff, "active")
    assert [f["stream"] for f in published.frames(event_type="announcement.published")] == [PLATFORM_GROUP]
    assert AuditLogEntry.objects.get().via == "admin"
    with django_capture_on_commit_callbacks(execute=True):
        client.post(
            "/admin/announcements/announcement/",
            {"action": "end_now", "_selected_action": [announcement.pk]},
        )
    assert Announcement.objects.get().state == "ended"
    assert [f["stream"] for f in published.frames(event_type="announcement.ended")] == [PLATFORM_GROUP]


def test_staff_find_the_platform_composer_in_their_menu(client, people):
    client.force_login(people["staff"])
    page = client.get("/platform/announcements/new/").content.decode()
    assert 'href="/platform/announcements/"' in page and "New announcement for the whole platform" in page
    client.force_login(people["acme_admin"])
    assert 'href="/platform/announcements/"' not in client.get("/t/acme/").content.decode()


def test_staff_who_admin_a_tenant_get_a_scope_choice_in_its_composer(client, people, make_member):
    staff = people["staff"]
    make_member(people["acme"], role="admin", user=staff)
    client.force_login(staff)
    assert 'name="scope"' in client.get("/t/acme/announcements/new/").content.decode()
    response = compose(client, "acme", scope="platform", title="Everyone, from Acme's composer")
    assert response.status_code == 302 and response.url == "/platform/announcements/"
    assert Announcement.objects.get().scope == "platform"
    client.force_login(people["acme_admin"])
    assert 'name="scope"' not in client.get("/t/acme/announcements/new/").content.decode()
