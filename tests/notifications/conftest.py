"""Fixtures of the notifications tests: two tenants with admins and members, and an API key."""

from __future__ import annotations

import pytest


@pytest.fixture
def org(make_tenant, make_member):
    """acme (an admin, alice, bob) and globex (gina); pat belongs to both."""
    acme, globex = make_tenant("acme", "Acme Corp"), make_tenant("globex", "Globex Inc")
    pat = make_member(acme, email="pat@both.test")
    make_member(globex, user=pat)
    return {
        "acme": acme,
        "globex": globex,
        "admin": make_member(acme, role="admin", email="admin@acme.test"),
        "alice": make_member(acme, email="alice@acme.test"),
        "bob": make_member(acme, email="bob@acme.test"),
        "gina": make_member(globex, email="gina@globex.test"),
        "pat": pat,
    }


@pytest.fixture
def make_api_key(db):
    """Create a tenant API key: ``row, raw = make_api_key(tenant)``."""
    from accounts.api_keys import do_create_api_key

    def make(tenant, name: str = "ci"):
        return do_create_api_key(tenant, name)

    return make


@pytest.fixture
def counters():
    """Read a user's counter row and recount it from the notifications, to compare the two."""
    from notifications.models import Notification, NotificationCounter

    def read(tenant, user) -> dict:
        row = NotificationCounter.objects.filter(tenant=tenant, user=user).first()
        rows = Notification.objects.filter(tenant=tenant, recipient=user)
        return {
            "stored": (row.unread, row.unseen) if row else (0, 0),
            "actual": (rows.unread().count(), rows.unseen().count()),
        }

    return read


@pytest.fixture
def published(org):
    """The durable events appended since ``org`` was made to its users', tenants' and the platform's streams."""
    from tests.support.stream_log import StreamLog, streams_of

    users = [value for value in org.values() if hasattr(value, "email")]
    return StreamLog(streams_of(users=users, tenants=[org["acme"], org["globex"]]))
