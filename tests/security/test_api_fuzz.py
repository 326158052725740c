"""HTTP API fuzz: every operation in the OpenAPI document, called with random input, never answers 500.

Requests are generated with hypothesis from the published document itself
(/api/v1/openapi.json), so a new endpoint is fuzzed without touching this file. It
runs in-process with Django's test client, ids and bodies far outside the document
included; test_api_contract.py runs schemathesis against a real server and holds every
answer to the document.
"""

from __future__ import annotations

import json
import re

import pytest
from django.db import OperationalError
from django.test import Client
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats(allow_nan=False) | st.text(max_size=40),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4),
    max_leaves=12,
)
path_values = st.one_of(
    st.integers(-5, 10**20).map(str), st.text(alphabet="abc%/.-_0123456789", min_size=1, max_size=12)
)


@pytest.fixture
def operations(client, db):
    document = client.get("/api/v1/openapi.json").json()
    found = []
    for path, methods in document["paths"].items():
        for method, operation in methods.items():
            params = [p for p in operation.get("parameters", []) if p.get("in") in ("query", "path")]
            body = operation.get("requestBody", {}).get("content", {}).get("application/json", {}).get("schema", {})
            fields = []
            if "$ref" in body:
                schema = document["components"]["schemas"][body["$ref"].rsplit("/", 1)[1]]
                fields = list(schema.get("properties", {}))
            found.append((method.upper(), path, params, fields))
    assert len(found) >= 15
    return found


@pytest.fixture
def callers(db, make_tenant, make_member):
    from accounts.api_keys import do_create_api_key

    acme = make_tenant("acme")
    admin = make_member(acme, role="admin", email="admin@acme.test")
    session = Client()
    session.force_login(admin, backend="django.contrib.auth.backends.ModelBackend")
    _, key = do_create_api_key(acme, "fuzz")
    return {"session": session, "key": key, "tenant": acme}


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=st.data())
def test_random_requests_to_every_operation_never_answer_500(operations, callers, settings, data):
    """Tests that malformed ids, queries and bodies get 4xx answers, never a server error."""
    settings.API_KEY_RATE_LIMIT = ""
    method, path, params, fields = data.draw(st.sampled_from(operations))
    url = path
    query = {}
    for param in params:
        value = data.draw(
            path_values if param["in"] == "path" else st.one_of(st.just(callers["tenant"].slug), path_values)
        )
        if param["in"] == "path":
            url = url.replace("{" + param["name"] + "}", value)
        elif data.draw(st.booleans()):
            query[param["name"]] = value
    url = re.sub(r"\{[^}]+\}", "1", url)
    body = data.draw(
        st.one_of(
            st.fixed_dictionaries({}, optional={name: json_values for name in fields}),
            json_values,
        )
    )
    raw = data.draw(st.sampled_from(["json", "json", "garbage"]))
    payload = json.dumps(body) if raw == "json" else data.draw(st.binary(max_size=200))
    use_key = data.draw(st.booleans())
    client = Client() if use_key else callers["session"]
    headers = {"Authorization": f"Bearer {callers['key']}"} if use_key else {}
    if data.draw(st.booleans()):
        headers["Idempotency-Key"] = data.draw(st.text(min_size=1, max_size=80).filter(lambda s: "\n" not in s))
    response = client.generic(
        method,
        url + ("?" + "&".join(f"{k}={v}" for k, v in query.items()) if query else ""),
        payload,
        content_type="application/json",
        headers=headers,
    )
    assert response.status_code < 500, (method, url, query, body, response.content[:500])


def test_the_database_unavailable_is_503_with_retry_after_and_nothing_saved(db, make_tenant, make_member, monkeypatch):
    """Tests the API's answer when the database does not answer (PostgreSQL down, failover)."""
    from accounts.api_keys import do_create_api_key
    from notifications import services
    from notifications.models import Notification

    acme = make_tenant("acme")
    alice = make_member(acme, email="alice@acme.test")
    _, key = do_create_api_key(acme, "k")

    def down(*args, **kwargs):
        raise OperationalError("connection to server at 127.0.0.1 failed: Connection refused")

    monkeypatch.setattr(services, "notify", down)
    response = Client().post(
        "/api/v1/notifications",
        {"user_ids": [alice.pk], "title": "hello"},
        content_type="application/json",
        headers={"Authorization": f"Bearer {key}"},
    )
    assert response.status_code == 503
    assert response["Retry-After"] == "5"
    assert "unavailable" in response.json()["detail"]
    assert not Notification.objects.exists()
