"""The HTTP API: sending with a tenant API key, and a user's own list and marks with a session."""

from __future__ import annotations

import json

import pytest
from django.test import Client

from notifications import services
from notifications.models import Notification

URL = "/api/v1/notifications"


def send(client: Client, raw_key: str | None, body: dict, **headers):
    if raw_key is not None:
        headers["HTTP_AUTHORIZATION"] = f"Bearer {raw_key}"
    return client.post(URL, data=json.dumps(body), content_type="application/json", **headers)


def received(user) -> list[Notification]:
    return list(Notification.objects.filter(recipient=user).exclude(category="members"))


@pytest.fixture
def acme_key(org, make_api_key):
    return make_api_key(org["acme"])[1]


# ------------------------------------------------------------------------------
# Auth
# ------------------------------------------------------------------------------
def test_a_valid_key_notifies_a_member_by_id(client, org, acme_key):
    response = send(client, acme_key, {"user_ids": [org["alice"].pk], "title": "Deploy done", "level": "success"})
    assert response.status_code == 201, response.content
    assert response.json() == {"created": 1, "tenant": "acme"}
    [notification] = received(org["alice"])
    assert notification.title == "Deploy done" and notification.level == "success"
    assert notification.tenant == org["acme"] and notification.category == "general"


@pytest.mark.parametrize(
    "authorization",
    [None, "Bearer", "Bearer lpk_not-a-real-key", "Basic YWxpY2U6cHc=", "Token lpk_x"],
    ids=["missing", "empty", "wrong", "basic", "other-scheme"],
)
def test_missing_or_wrong_keys_are_refused(client, org, authorization):
    headers = {"HTTP_AUTHORIZATION": authorization} if authorization else {}
    response = send(client, None, {"user_ids": [org["alice"].pk], "title": "x"}, **headers)
    assert response.status_code == 401
    assert received(org["alice"]) == []


def test_a_revoked_key_is_refused(client, org, make_api_key):
    from accounts.api_keys import do_revoke_api_key

    row, raw = make_api_key(org["acme"])
    do_revoke_api_key(row)
    assert send(client, raw, {"user_ids": [org["alice"].pk], "title": "x"}).status_code == 401
    assert received(org["alice"]) == []


def test_a_session_cannot_send(client, org):
    """Sending is for services with a key; a logged-in member cannot post notifications."""
    client.force_login(org["admin"])
    assert send(client, None, {"user_ids": [org["alice"].pk], "title": "x"}).status_code == 401


def test_another_tenants_key_cannot_reach_this_tenants_members(client, org, make_api_key):
    """A globex key naming acme's alice is refused exactly like a user that does not exist."""
    globex_key = make_api_key(org["globex"])[1]
    foreign = send(client, globex_key, {"user_ids": [org["alice"].pk], "title": "x"})
    unknown = send(client, globex_key, {"user_ids": [987_654], "title": "x"})
    assert foreign.status_code == unknown.status_code == 400
    assert foreign.json()["detail"] == unknown.json()["detail"]
    assert foreign.json()["errors"]["user_ids"][0].replace(str(org["alice"].pk), "N") == unknown.json()["errors"][
        "user_ids"
    ][0].replace("987654", "N")
    assert received(org["alice"]) == []
    # "tenant": true with the globex key reaches globex's members only.
    assert send(client, globex_key, {"tenant": True, "title": "hello globex"}).json()["created"] == 2
    assert [n.title for n in received(org["gina"])] == ["hello globex"]
    assert received(org["alice"]) == []


def test_a_mix_of_member_and_foreign_ids_creates_nothing_and_names_only_the_foreign_ones(client, org, acme_key):
    """The membership check and the sending are one step: a refused id leaves no notification behind."""
    ids = [org["alice"].pk, org["gina"].pk, 987_654]
    response = send(client, acme_key, {"user_ids": ids, "title": "x"})
    assert response.status_code == 400
    [message] = response.json()["errors"]["user_ids"]
    assert message == f"Not a member of this API key's tenant: {org['gina'].pk}, 987654"
    assert received(org["alice"]) == [] and received(org["gina"]) == []


def test_emails_outside_the_tenant_are_refused_like_unknown_ones(client, org, acme_key):
    foreign = send(client, acme_key, {"emails": ["gina@globex.test"], "title": "x"})
    unknown = send(client, acme_key, {"emails": ["nobody@nowhere.test"], "title": "x"})
    assert foreign.status_code == unknown.status_code == 400
    assert foreign.json()["errors"]["emails"][0].replace("gina@globex.test", "E") == unknown.json()["errors"]["emails"][
        0
    ].replace("nobody@nowhere.test", "E")
    # A mix of a member and a non-member creates nothing at all.
    mixed = send(client, acme_key, {"emails": ["alice@acme.test", "gina@globex.test"], "title": "x"})
    assert mixed.status_code == 400
    assert received(org["alice"]) == [] and received(org["gina"]) == []


def test_recipients_by_email_and_by_whole_tenant_with_role(client, org, acme_key):
    assert send(client, acme_key, {"emails": ["ALICE@acme.test", "bob@acme.test"], "title": "x"}).json() == {
        "created": 2,
        "tenant": "acme",
    }
    response = send(client, acme_key, {"tenant": True, "role": "admin", "title": "admins only"})
    assert response.json()["created"] == 1
    assert [n.title for n in received(org["admin"])] == ["admins only"]


# ------------------------------------------------------------------------------
# Validation
# ------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"user_ids": [1]}, "title"),
        ({"user_ids": [1], "title": ""}, "title"),
        ({"user_ids": [1], "title": "x" * 201}, "title"),
        ({"user_ids": [1], "title": "x", "level": "fatal"}, "level"),
        ({"user_ids": [1], "title": "x", "category": "Not A Slug"}, "category"),
        ({"user_ids": [1], "title": "x", "link": "https://evil.example/"}, "link"),
        ({"user_ids": ["abc"], "title": "x"}, "user_ids.0"),
        ({"user_ids": [1], "title": "x", "data": "not an object"}, "data"),
        ({"user_ids": [1], "title": "x", "surprise": 1}, "surprise"),
        ({"title": "x"}, "__all__"),
        ({"user_ids": [1], "tenant": True, "title": "x"}, "__all__"),
    ],
)
def test_invalid_bodies_are_400_with_messages_per_field(client, org, acme_key, body, field):
    response = send(client, acme_key, body)
    assert response.status_code == 400, response.content
    payload = response.json()
    assert payload["detail"] == "Invalid request"
    assert any(key == field or key.endswith(f".{field}") or key.startswith(field) for key in payload["errors"]), payload
    assert all(isinstance(message, str) and message for messages in payload["errors"].values() for message in messages)
    assert not Notification.objects.exclude(category="members").exists()


def test_body_markdown_is_rendered_and_sanitised(client, org, acme_key):
    body = "Hello **team** <script>alert(1)</script> [docs](javascript:alert(1)) [ok](https://example.com)"
    send(client, acme_key, {"user_ids": [org["alice"].pk], "title": "x", "body": body})
    [notification] = received(org["alice"])
    assert "<strong>team</strong>" in notification.body_html
    assert "<script" not in notification.body_html and "javascript:" not in notification.body_html
    assert 'href="https://example.com"' in notification.body_html


# ------------------------------------------------------------------------------
# Idempotency
# ------------------------------------------------------------------------------
def test_the_same_idempotency_key_twice_creates_one_notification_and_replays_the_response(client, org, acme_key):
    body = {"user_ids": [org["alice"].pk], "title": "Invoice paid"}
    first = send(client, acme_key, body, HTTP_IDEMPOTENCY_KEY="order-42")
    again = send(client, acme_key, body, HTTP_IDEMPOTENCY_KEY="order-42")
    assert first.status_code == again.status_code == 201
    assert first.json() == again.json()
    assert len(received(org["alice"])) == 1
    # Without the key, a retry is a new notification.
    send(client, acme_key, body)
    assert len(received(org["alice"])) == 2


def test_the_same_idempotency_key_with_a_different_body_is_422(client, org, acme_key):
    send(client, acme_key, {"user_ids": [org["alice"].pk], "title": "one"}, HTTP_IDEMPOTENCY_KEY="k-1")
    response = send(client, acme_key, {"user_ids": [org["alice"].pk], "title": "two"}, HTTP_IDEMPOTENCY_KEY="k-1")
    assert response.status_code == 422
    assert [n.title for n in received(org["alice"])] == ["one"]


# ------------------------------------------------------------------------------
# The logged-in user's own notifications
# ------------------------------------------------------------------------------
@pytest.fixture
def alices_inbox(org, django_capture_on_commit_callbacks):
    """25 notifications for alice in acme (every third one a "jobs" one) and one in globex for pat."""
    for index in range(25):
        services.notify(org["acme"], org["alice"], category="jobs" if index % 3 == 0 else "general", title=f"n{index}")
    services.notify(org["globex"], org["pat"], category="general", title="globex only")
    return sorted(n.pk for n in received(org["alice"]))


def test_list_pages_with_a_cursor_newest_first(client, org, alices_inbox):
    client.force_login(org["alice"])
    seen: list[int] = []
    cursor = None
    while True:
        params = {"tenant": "acme", "limit": 10} | ({"cursor": cursor} if cursor else {})
        page = client.get(URL, params).json()
        seen += [item["id"] for item in page["items"]]
        assert page["counts"]["unread"] == 25
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == sorted(alices_inbox, reverse=True)


def test_list_filters_by_state_and_category(client, org, alices_inbox):
    client.force_login(org["alice"])
    services.do_mark_read(org["acme"], org["alice"], alices_inbox[:5])
    services.do_archive(org["acme"], org["alice"], alices_inbox[-2:])

    def ids(**params):
        return [item["id"] for item in client.get(URL, {"tenant": "acme", "limit": 100, **params}).json()["items"]]

    assert len(ids(state="all")) == 23
    assert len(ids(state="unread")) == 18
    assert sorted(ids(state="archived")) == alices_inbox[-2:]
    jobs = ids(category="jobs")
    assert jobs and all(Notification.objects.get(pk=pk).category == "jobs" for pk in jobs)


def test_marks_change_state_and_return_the_counts(client, org, alices_inbox):
    client.force_login(org["alice"])
    first = alices_inbox[0]
    counts = client.post(f"{URL}/{first}/read?tenant=acme").json()
    assert counts["unread"] == 24
    assert client.post(f"{URL}/{first}/unread?tenant=acme").json()["unread"] == 25
    assert client.post(f"{URL}/{first}/archive?tenant=acme").json()["unread"] == 24
    assert client.post(f"{URL}/{first}/unarchive?tenant=acme").json()["unread"] == 25
    seen = client.post(f"{URL}/seen?tenant=acme", data={"ids": alices_inbox[:8]}, content_type="application/json")
    assert seen.json()["unseen"] == 17
    assert client.post(f"{URL}/read-all?tenant=acme").json() == {
        "unread": 0,
        "unseen": 0,
        "version": services.counts_for(org["acme"], org["alice"])["version"],
    }
    assert client.get(f"{URL}/counts", {"tenant": "acme"}).json()["unread"] == 0


def test_another_users_or_tenants_notifications_answer_404(client, org, alices_inbox):
    client.force_login(org["bob"])
    assert client.post(f"{URL}/{alices_inbox[0]}/read?tenant=acme").status_code == 404
    assert client.get(URL, {"tenant": "globex"}).status_code == 404
    assert client.get(URL, {"tenant": "no-such"}).status_code == 404
    assert Notification.objects.get(pk=alices_inbox[0]).read_at is None
    client.force_login(org["pat"])
    globex_one = Notification.objects.get(recipient=org["pat"], tenant=org["globex"], category="general")
    # Pat is in both tenants, but a globex notification is not reachable through acme.
    assert client.post(f"{URL}/{globex_one.pk}/read?tenant=acme").status_code == 404


def test_session_marks_need_the_csrf_token(org, alices_inbox):
    client = Client(enforce_csrf_checks=True)
    client.force_login(org["alice"])
    assert client.post(f"{URL}/read-all?tenant=acme").status_code == 403
    client.get("/t/acme/notifications/")  # sets the csrftoken cookie, as every page does
    token = client.cookies["csrftoken"].value
    assert client.post(f"{URL}/read-all?tenant=acme", HTTP_X_CSRFTOKEN=token).status_code == 200


def test_anonymous_users_cannot_list(client, org):
    assert client.get(URL, {"tenant": "acme"}).status_code == 401


# ------------------------------------------------------------------------------
# OpenAPI
# ------------------------------------------------------------------------------
def test_the_openapi_document_is_served_and_valid(client):
    from openapi_spec_validator import validate

    response = client.get("/api/v1/openapi.json")
    assert response.status_code == 200
    document = response.json()
    validate(document)
    post = document["paths"]["/api/v1/notifications"]["post"]
    assert {"400", "201", "422"} <= set(post["responses"])
    assert any(p["name"] == "Idempotency-Key" and p["in"] == "header" for p in post["parameters"])
    assert post["security"] and "requestBody" in post
    assert "get" in document["paths"]["/api/v1/notifications"]
    assert "/api/v1/notifications/{notification_id}/read" in document["paths"]
