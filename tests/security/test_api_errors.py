"""Errors of the HTTP API: JSON of one shape whatever produces them, and a document that says which ones.

test_api_contract.py checks the whole API against its document with schemathesis; these
tests pin the cases a client writer would trip over first, each on its own.
"""

from __future__ import annotations

import json

import jsonschema
import pytest
from django.test import Client

from announcements.models import Announcement
from notifications.models import Notification


@pytest.fixture
def acme(make_tenant, make_member):
    from accounts.api_keys import do_create_api_key

    tenant = make_tenant("acme")
    alice = make_member(tenant, email="alice@acme.test")
    session = Client()
    session.force_login(alice, backend="django.contrib.auth.backends.ModelBackend")
    return {"tenant": tenant, "alice": alice, "session": session, "key": do_create_api_key(tenant, "errors")[1]}


def assert_json_error(response, status: int) -> dict:
    assert response.status_code == status, response.content[:300]
    assert response["Content-Type"].startswith("application/json"), response["Content-Type"]
    body = response.json()
    assert isinstance(body["detail"], str) and body["detail"]
    return body


def test_an_unknown_or_malformed_notification_id_on_a_session_route_answers_json(acme):
    """Tests the issue's HTML 404: an id that is not a number no longer misses the route, and none is HTML."""
    session = acme["session"]
    assert_json_error(session.post("/api/v1/notifications/987654/read?tenant=acme"), 404)
    body = assert_json_error(session.post("/api/v1/notifications/abc/read?tenant=acme"), 400)
    assert "notification_id" in json.dumps(body["errors"])
    assert_json_error(session.post("/api/v1/notifications/1/read?tenant=globex"), 404)


def test_what_django_answers_under_api_is_json_and_pages_stay_html(acme, monkeypatch):
    """Tests the layers below ninja: an unmatched URL, a method a route does not take, a crash."""
    from notifications import services

    assert_json_error(acme["session"].get("/api/v1/no-such-thing"), 404)
    not_allowed = acme["session"].put("/api/v1/notifications/read-all?tenant=acme")
    assert_json_error(not_allowed, 405)
    assert not_allowed["Allow"] == "POST"

    def crash(*args, **kwargs):
        raise RuntimeError("a bug")

    monkeypatch.setattr(services, "counts_for", crash)
    crashed = Client(raise_request_exception=False)
    crashed.force_login(acme["alice"], backend="django.contrib.auth.backends.ModelBackend")
    assert_json_error(crashed.get("/api/v1/notifications/counts?tenant=acme"), 500)
    page = Client().get("/no-such-page/")
    assert page.status_code == 404 and page["Content-Type"].startswith("text/html")


def test_a_session_post_without_its_csrf_token_is_a_json_403(acme):
    """Tests the ticket route the issue names: a cookie alone does not mint a socket ticket."""
    browser = Client(enforce_csrf_checks=True)
    browser.force_login(acme["alice"], backend="django.contrib.auth.backends.ModelBackend")
    body = assert_json_error(browser.post("/api/v1/realtime/tickets"), 403)
    assert "CSRF" in body["detail"]


@pytest.mark.parametrize(
    ("url", "body"),
    [
        ("/api/v1/announcements", "AAA"),
        ("/api/v1/announcements", ["title"]),
        ("/api/v1/notifications", {"user_ids": [False], "title": "x"}),
        ("/api/v1/notifications", {"user_ids": ["7"], "title": "x"}),
        ("/api/v1/notifications", {"tenant": "yes", "title": "x"}),
        ("/api/v1/notifications", {"user_ids": [-(10**22)], "title": "x"}),
        ("/api/v1/announcements", {"title": "x", "starts_at": 0}),
        ("/api/v1/announcements", {"title": "x", "starts_at": "2030-06-01"}),
    ],
    ids=["string-body", "list-body", "false-as-id", "string-as-id", "string-as-flag", "id-beyond-bigint",
         "epoch-number-as-time", "date-without-time"],
)  # fmt: skip
def test_a_body_the_schema_does_not_allow_is_400_and_changes_nothing(acme, url, body):
    """Tests bodies that used to be coerced or crashed: "AAA" made an announcement titled "Aaa"; -10**22 was a 500."""
    response = Client().post(
        url, json.dumps(body), content_type="application/json", headers={"Authorization": f"Bearer {acme['key']}"}
    )
    assert_json_error(response, 400)
    assert not Announcement.objects.exists()
    assert not Notification.objects.filter(recipient=acme["alice"]).exclude(category="members").exists()


def _document(client) -> dict:
    return client.get("/api/v1/openapi.json").json()


def test_the_document_states_the_recipient_rule_and_its_examples_follow_it(client):
    """Tests that "exactly one of user_ids, emails, tenant" is in the schema, as the validation enforces it."""
    document = _document(client)
    schema = document["components"]["schemas"]["NotificationIn"]
    assert len(schema["oneOf"]) == 3
    for example in schema["examples"]:
        jsonschema.validate(example, schema)
    for wrong in (
        {"title": "nobody"},
        {"user_ids": [1], "emails": ["a@acme.test"], "title": "two kinds"},
        {"user_ids": [1], "tenant": True, "title": "two kinds"},
        {"user_ids": [1], "role": "admin", "title": "role without tenant"},
        {"user_ids": [], "title": "empty"},
    ):
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(wrong, schema)
    jsonschema.validate({"tenant": True, "role": "admin", "title": "admins"}, schema)


def test_every_operation_documents_its_errors_with_the_one_error_body(client):
    """Tests the document's promise: 401 where credentials are needed, 503 everywhere, 429 for keys, 403 for CSRF."""
    document = _document(client)
    assert "## Errors" in document["info"]["description"]
    operations = [(path, method, op) for path, item in document["paths"].items() for method, op in item.items()]
    assert len(operations) >= 20
    for path, method, operation in operations:
        responses = operation["responses"]
        errors = {code for code in responses if int(code) >= 400}
        assert {"401", "503"} <= errors, (method, path)
        schemes = {name for requirement in operation["security"] for name in requirement}
        if "ApiKeyAuth" in schemes:
            assert "429" in errors, (method, path)
        if "SessionAuth" in schemes and method != "get":
            assert "403" in errors, (method, path)
        if operation.get("parameters") or operation.get("requestBody"):
            assert "400" in errors, (method, path)
        for code in errors:
            content = responses[code]["content"]["application/json"]["schema"]
            assert content == {"$ref": "#/components/schemas/ErrorOut"}, (method, path, code)
