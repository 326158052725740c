"""Fixtures of the workers tests: a tenant with an admin, two members and an outsider."""

from __future__ import annotations

from dataclasses import dataclass

import pytest


@dataclass
class Cast:
    acme: object
    globex: object
    admin: object
    alice: object
    bob: object
    gina: object


@pytest.fixture
def cast(make_tenant, make_member) -> Cast:
    """acme with an admin and two members (alice, bob); globex with gina."""
    acme, globex = make_tenant("acme"), make_tenant("globex")
    return Cast(
        acme=acme,
        globex=globex,
        admin=make_member(acme, role="admin", email="admin@acme.test"),
        alice=make_member(acme, email="alice@acme.test"),
        bob=make_member(acme, email="bob@acme.test"),
        gina=make_member(globex, email="gina@globex.test"),
    )


@pytest.fixture
def media_root(settings, tmp_path):
    """Job files of this test in a folder of its own."""
    settings.MEDIA_ROOT = tmp_path / "media"
    return settings.MEDIA_ROOT
