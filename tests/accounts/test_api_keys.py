"""Tenant API keys and Idempotency-Key support, the base of every service-facing endpoint."""

import json

import pytest
from django.core.management import call_command
from django.urls import reverse
from ninja import Router, Schema, Status
from ninja.testing import TestClient

from accounts.api_auth import ApiKeyAuth
from accounts.api_keys import authenticate_api_key, do_create_api_key, do_revoke_api_key
from accounts.idempotency import idempotent
from accounts.models import ApiKey

router = Router()
created: list[dict] = []


class ThingIn(Schema):
    name: str


@router.post("/things", auth=ApiKeyAuth(), response={201: dict})
@idempotent
def create_thing(request, payload: ThingIn):
    created.append({"tenant": request.auth.tenant.slug, "name": payload.name})
    return Status(201, {"n": len(created), "tenant": request.auth.tenant.slug})


@pytest.fixture
def client_api():
    created.clear()
    return TestClient(router)


@pytest.fixture
def acme_key(make_tenant):
    return do_create_api_key(make_tenant("acme"), "billing")


def test_key_is_stored_hashed_and_shown_once(acme_key):
    api_key, raw = acme_key
    assert raw.startswith("lpk_") and raw not in api_key.digest and api_key.prefix == raw[:12]
    assert authenticate_api_key(raw) == api_key


def test_missing_wrong_and_revoked_keys_are_refused(client_api, acme_key):
    api_key, raw = acme_key
    assert client_api.post("/things", json={"name": "a"}).status_code == 401
    assert (
        client_api.post("/things", json={"name": "a"}, headers={"Authorization": "Bearer lpk_wrong"}).status_code == 401
    )
    assert client_api.post("/things", json={"name": "a"}, headers={"Authorization": f"Bearer {raw}"}).status_code == 201
    do_revoke_api_key(api_key)
    assert client_api.post("/things", json={"name": "a"}, headers={"Authorization": f"Bearer {raw}"}).status_code == 401


def test_same_idempotency_key_replays_the_first_response_and_creates_nothing_new(client_api, acme_key):
    _, raw = acme_key
    headers = {"Authorization": f"Bearer {raw}", "Idempotency-Key": "retry-1"}
    first = client_api.post("/things", json={"name": "a"}, headers=headers)
    second = client_api.post("/things", json={"name": "a"}, headers=headers)
    assert first.status_code == second.status_code == 201
    assert first.json() == second.json() == {"n": 1, "tenant": "acme"}
    assert len(created) == 1


def test_same_idempotency_key_with_a_different_body_is_422(client_api, acme_key):
    _, raw = acme_key
    headers = {"Authorization": f"Bearer {raw}", "Idempotency-Key": "retry-2"}
    client_api.post("/things", json={"name": "a"}, headers=headers)
    response = client_api.post("/things", json={"name": "b"}, headers=headers)
    assert response.status_code == 422 and "different request" in response.json()["detail"]
    assert len(created) == 1


def test_idempotency_keys_of_two_tenants_never_meet(client_api, acme_key, make_tenant):
    _, acme_raw = acme_key
    _, globex_raw = do_create_api_key(make_tenant("globex"), "crm")
    for raw in (acme_raw, globex_raw):
        client_api.post(
            "/things", json={"name": "a"}, headers={"Authorization": f"Bearer {raw}", "Idempotency-Key": "k"}
        )
    assert [c["tenant"] for c in created] == ["acme", "globex"]


def test_create_api_key_command_prints_a_working_key(make_tenant, capsys):
    make_tenant("acme")
    call_command("create_api_key", "acme", "ci")
    raw = capsys.readouterr().out.strip()
    assert authenticate_api_key(raw).name == "ci"


def test_admin_creates_a_key_in_the_ui_sees_it_once_and_revokes_it(client, make_tenant, make_member):
    acme = make_tenant("acme")
    admin = make_member(acme, role="admin")
    client.force_login(admin)
    url = reverse("tenant_api_keys", args=["acme"])
    page = client.post(url, {"name": "crm"}, follow=True)
    raw = page.context["new_key"]["key"]
    assert raw.encode() in page.content
    assert raw.encode() not in client.get(url).content  # shown once
    api_key = ApiKey.objects.get(tenant=acme)
    client.post(url, {"revoke": api_key.pk})
    assert authenticate_api_key(raw) is None


def test_members_and_other_tenants_cannot_see_keys(client, make_tenant, make_member):
    acme, globex = make_tenant("acme"), make_tenant("globex")
    do_create_api_key(acme, "secret-service")
    client.force_login(make_member(acme))
    assert client.get(reverse("tenant_api_keys", args=["acme"])).status_code == 404
    client.force_login(make_member(globex, role="admin"))
    response = client.get(reverse("tenant_api_keys", args=["acme"]))
    assert response.status_code == 404 and b"secret-service" not in response.content


def test_ticket_endpoint_needs_a_session(client, make_member):
    response = client.post("/api/v1/realtime/tickets")
    assert response.status_code == 401
    client.force_login(make_member())
    response = client.post("/api/v1/realtime/tickets")
    assert response.status_code == 201 and json.loads(response.content)["ticket"].startswith("lpt_")


# ------------------------------------------------------------------------------
# The key cache: a key found active is trusted for API_KEY_CACHE_SECONDS
# ------------------------------------------------------------------------------
class Clock:
    """``time.monotonic`` for the key cache, moved by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch):
    from accounts import api_keys

    fake = Clock()
    monkeypatch.setattr(api_keys.time, "monotonic", fake)
    return fake


def test_a_key_revoked_by_another_process_is_refused_once_the_cache_time_has_passed(acme_key, clock, settings):
    """Another web process revokes the key (here: the row changes without this process's signals)."""
    from django.utils import timezone

    settings.API_KEY_CACHE_SECONDS = 5
    api_key, raw = acme_key
    assert authenticate_api_key(raw) == api_key
    ApiKey.objects.filter(pk=api_key.pk).update(revoked_at=timezone.now())
    clock.now += 4.9
    assert authenticate_api_key(raw) == api_key  # still trusted: at most API_KEY_CACHE_SECONDS
    clock.now += 0.2
    assert authenticate_api_key(raw) is None


def test_deleting_a_tenant_refuses_its_keys_at_once(acme_key, clock):
    api_key, raw = acme_key
    assert authenticate_api_key(raw) == api_key
    api_key.tenant.delete()
    assert authenticate_api_key(raw) is None


def test_without_a_cache_time_every_call_checks_the_database(acme_key, clock, settings):
    from django.utils import timezone

    settings.API_KEY_CACHE_SECONDS = 0
    api_key, raw = acme_key
    assert authenticate_api_key(raw) == api_key
    ApiKey.objects.filter(pk=api_key.pk).update(revoked_at=timezone.now())
    assert authenticate_api_key(raw) is None
