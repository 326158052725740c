"""Who sees which announcement on page load: window, audience, dismissal, critical rules."""

import json
from datetime import timedelta

from django.utils import timezone

from announcements import services
from announcements.models import Announcement, AuditLogEntry
from realtime.audience import PLATFORM_GROUP, tenant_admins_group, tenant_group, user_group


def publish(captured, **fields):
    """Publish through the service and run its on-commit callbacks (the live events)."""
    values = {"actor": None, "title": "Hello", **fields}
    with captured(execute=True):
        return services.do_publish_announcement(**values)


def ids(user):
    return [item["id"] for item in services.active_for(user)]


def test_tenant_announcement_reaches_its_members_only_and_admins_only_narrows(
    people, published, django_capture_on_commit_callbacks
):
    everyone = publish(django_capture_on_commit_callbacks, tenant=people["acme"], title="All of acme")
    admins = publish(django_capture_on_commit_callbacks, tenant=people["acme"], title="Admins", audience="admins")
    assert ids(people["alice"]) == [everyone.pk]
    assert sorted(ids(people["acme_admin"])) == sorted([everyone.pk, admins.pk])
    assert ids(people["pat"]) == [everyone.pk]
    assert ids(people["gina"]) == [] and ids(people["globex_admin"]) == []
    # One durable event per announcement, to the tenant group or the admins' group: never per user.
    streams = [frame["stream"] for frame in published.frames(event_type="announcement.published")]
    assert streams == [tenant_group(people["acme"].pk), tenant_admins_group(people["acme"].pk)]


def test_platform_announcement_reaches_everyone_including_users_without_a_tenant(
    people, published, django_capture_on_commit_callbacks
):
    platform = publish(django_capture_on_commit_callbacks, scope="platform", title="Platform")
    for name in ("alice", "gina", "pat", "loner", "staff"):
        assert ids(people[name]) == [platform.pk], name
    assert [f["stream"] for f in published.frames(event_type="announcement.published")] == [PLATFORM_GROUP]


def test_publish_window_decides_what_shows(people, django_capture_on_commit_callbacks):
    now = timezone.now()
    later = publish(django_capture_on_commit_callbacks, tenant=people["acme"], starts_at=now + timedelta(hours=1))
    assert later.state == "scheduled" and ids(people["alice"]) == []
    assert services.active_for(people["alice"], now=now + timedelta(hours=2))[0]["id"] == later.pk
    ending = publish(django_capture_on_commit_callbacks, tenant=people["acme"], ends_at=now + timedelta(minutes=5))
    assert ids(people["alice"]) == [ending.pk]
    assert ending.pk not in [a["id"] for a in services.active_for(people["alice"], now=now + timedelta(minutes=6))]


def test_most_severe_first_and_pages_render_banners_on_the_server(client, people, django_capture_on_commit_callbacks):
    info = publish(django_capture_on_commit_callbacks, tenant=people["acme"], title="Info one")
    critical = publish(
        django_capture_on_commit_callbacks,
        tenant=people["acme"],
        title="Down soon",
        severity="critical",
        body="Save your <script>alert(1)</script> work",
    )
    assert ids(people["alice"]) == [critical.pk, info.pk]
    client.force_login(people["alice"])
    page = client.get("/t/acme/").content.decode()
    assert f'data-announcement-id="{critical.pk}"' in page and f'data-announcement-id="{info.pk}"' in page
    assert page.index("Down soon") < page.index("Info one")
    assert "<script>alert" not in page
    client.force_login(people["gina"])
    assert "data-announcement-id" not in client.get("/t/globex/").content.decode()


def test_dismissal_is_per_user_and_persists_across_reloads(
    client, people, published, django_capture_on_commit_callbacks
):
    announcement = publish(django_capture_on_commit_callbacks, tenant=people["acme"], title="Dismiss me")
    client.force_login(people["alice"])
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(f"/api/v1/announcements/{announcement.pk}/dismiss")
    assert response.status_code == 204
    # No banner (the home page's recent activity may still say it was announced).
    assert f'data-announcement-id="{announcement.pk}"' not in client.get("/t/acme/").content.decode()
    assert client.get("/api/v1/announcements/active").json() == []
    # Bob has not dismissed it.
    assert ids(people["bob"]) == [announcement.pk]
    (event,) = published.frames(event_type="announcement.dismissed")
    assert (event["stream"], event["data"]) == (
        user_group(people["alice"].pk),
        {"id": announcement.pk, "dismissable": True},
    )
    # Someone outside the audience cannot even learn it exists.
    client.force_login(people["gina"])
    assert client.post(f"/api/v1/announcements/{announcement.pk}/dismiss").status_code == 404


def test_critical_banner_cannot_be_dismissed(client, people, django_capture_on_commit_callbacks):
    critical = publish(django_capture_on_commit_callbacks, tenant=people["acme"], severity="critical", dismissable=True)
    assert critical.dismissable is False
    client.force_login(people["alice"])
    assert client.post(f"/api/v1/announcements/{critical.pk}/dismiss").status_code == 403
    assert ids(people["alice"]) == [critical.pk]


def test_critical_one_time_modal_is_acknowledged_once_then_stays_as_a_banner(
    client, people, django_capture_on_commit_callbacks
):
    modal = publish(django_capture_on_commit_callbacks, tenant=people["acme"], severity="critical", style="modal")
    assert services.active_for(people["alice"])[0]["display"] == "modal"
    client.force_login(people["alice"])
    assert client.post(f"/api/v1/announcements/{modal.pk}/dismiss").status_code == 204
    assert services.active_for(people["alice"])[0]["display"] == "banner"
    assert services.active_for(people["bob"])[0]["display"] == "modal"


def test_critical_announcement_notifies_every_member_of_its_audience(people, django_capture_on_commit_callbacks):
    from notifications.models import Notification

    publish(
        django_capture_on_commit_callbacks,
        tenant=people["acme"],
        severity="critical",
        title="Outage",
        body="We are **down**.",
    )
    recipients = set(Notification.objects.filter(category="announcements").values_list("recipient__email", flat=True))
    assert recipients == {"admin@acme.test", "alice@acme.test", "bob@acme.test", "pat@both.test"}
    assert set(Notification.objects.filter(category="announcements").values_list("level", flat=True)) == {"error"}
    publish(django_capture_on_commit_callbacks, tenant=people["globex"], severity="critical", audience="admins")
    assert set(
        Notification.objects.filter(tenant=people["globex"], category="announcements").values_list(
            "recipient__email", flat=True
        )
    ) == {"admin@globex.test"}
    publish(django_capture_on_commit_callbacks, tenant=people["acme"], severity="warning", title="Not notified")
    assert not Notification.objects.filter(title="Not notified").exists()


def test_edit_end_and_delete_are_audited_and_published(client, people, published, django_capture_on_commit_callbacks):
    announcement = publish(django_capture_on_commit_callbacks, tenant=people["acme"], title="v1")
    admin = people["acme_admin"]
    client.force_login(admin)
    with django_capture_on_commit_callbacks(execute=True):
        response = client.patch(
            f"/api/v1/announcements/{announcement.pk}",
            json.dumps({"title": "v2", "severity": "warning"}),
            content_type="application/json",
        )
    assert response.status_code == 200 and response.json()["title"] == "v2"
    (updated,) = published.frames(event_type="announcement.updated")
    assert updated["data"]["title"] == "v2" and updated["data"]["severity"] == "warning"
    with django_capture_on_commit_callbacks(execute=True):
        assert client.post(f"/t/acme/announcements/{announcement.pk}/end/").status_code == 302
    assert ids(people["alice"]) == []
    (ended,) = published.frames(event_type="announcement.ended")
    assert ended["data"] == {"id": announcement.pk, "reason": "ended"}
    with django_capture_on_commit_callbacks(execute=True):
        assert client.post(f"/t/acme/announcements/{announcement.pk}/delete/").status_code == 302
    assert not Announcement.objects.exists()
    log = list(AuditLogEntry.objects.order_by("id").values_list("action", "actor__email"))
    assert log == [("published", None), ("updated", admin.email), ("ended", admin.email), ("deleted", admin.email)]
    assert AuditLogEntry.objects.get(action="updated").changes["title"] == ["v1", "v2"]
    # The list page shows the audit trail to the admin.
    assert "deleted “v2”" in client.get("/t/acme/announcements/").content.decode()


def test_another_tenants_announcement_answers_404(client, people, django_capture_on_commit_callbacks):
    globex_one = publish(django_capture_on_commit_callbacks, tenant=people["globex"], title="Globex")
    client.force_login(people["acme_admin"])
    assert client.get(f"/t/acme/announcements/{globex_one.pk}/edit/").status_code == 404
    assert client.post(f"/t/acme/announcements/{globex_one.pk}/end/").status_code == 404
    assert client.get(f"/api/v1/announcements/{globex_one.pk}").status_code == 404
    assert Announcement.objects.get().state == "active"


def test_composer_shows_a_live_preview_area_and_renders_markdown_safely(client, people):
    client.force_login(people["acme_admin"])
    page = client.get("/t/acme/announcements/new/").content.decode()
    assert 'id="composer-preview"' in page and "js/composer.js" in page
    response = client.post("/t/acme/announcements/preview/", {"body": "**hi** <img src=x onerror=alert(1)>"})
    assert response.json()["html"].startswith("<p><strong>hi</strong>")
    assert "onerror" not in response.json()["html"]
    client.force_login(people["alice"])
    assert client.post("/t/acme/announcements/preview/", {"body": "x"}).status_code == 404


def test_editing_in_the_composer_changes_only_what_the_admin_changed(
    client, people, published, django_capture_on_commit_callbacks
):
    announcement = publish(
        django_capture_on_commit_callbacks,
        tenant=people["acme"],
        title="Typo",
        ends_at=timezone.now() + timedelta(hours=3, seconds=17),
    )
    client.force_login(people["acme_admin"])
    form = client.get(f"/t/acme/announcements/{announcement.pk}/edit/").context["form"]
    data = {name: form[name].value() for name in form.fields}
    data = {
        k: (v.strftime("%Y-%m-%dT%H:%M") if hasattr(v, "strftime") else v) for k, v in data.items() if v is not None
    }
    data.update(title="Fixed", dismissable="on")
    with django_capture_on_commit_callbacks(execute=True):
        assert client.post(f"/t/acme/announcements/{announcement.pk}/edit/", data).status_code == 302
    announcement.refresh_from_db()
    assert announcement.title == "Fixed" and announcement.state == "active"
    assert set(AuditLogEntry.objects.get(action="updated").changes) == {"id", "title"}
    (updated,) = published.frames(event_type="announcement.updated")
    assert updated["data"]["title"] == "Fixed"
