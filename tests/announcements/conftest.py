"""Fixtures for announcement tests: two tenants with admins, members and one user in both."""

import pytest


@pytest.fixture
def people(make_tenant, make_member, make_user):
    acme, globex = make_tenant("acme"), make_tenant("globex")
    pat = make_member(acme, email="pat@both.test")
    make_member(globex, user=pat)
    return {
        "acme": acme,
        "globex": globex,
        "acme_admin": make_member(acme, role="admin", email="admin@acme.test"),
        "alice": make_member(acme, email="alice@acme.test"),
        "bob": make_member(acme, email="bob@acme.test"),
        "globex_admin": make_member(globex, role="admin", email="admin@globex.test"),
        "gina": make_member(globex, email="gina@globex.test"),
        "pat": pat,
        "staff": make_user("staff@platform.test", is_staff=True),
        "loner": make_user("loner@nowhere.test"),
    }


@pytest.fixture
def published(people):
    """The durable events appended since the people were made to their streams (users, both tenants, platform)."""
    from tests.support.stream_log import StreamLog, streams_of

    users = [person for person in people.values() if hasattr(person, "email")]
    return StreamLog(streams_of(users=users, tenants=[people["acme"], people["globex"]]))
