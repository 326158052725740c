"""The plain-SQL reads of notify() give what their ORM definitions give (liveplatform.rawsql).

notify() names its recipients' memberships and their toast choices with one plain
query each, because every notification asks. Each is pinned here to the ORM query it
replaces, over the cases that matter: other tenants, unknown users, roles, a user's
own choice, a required category and a category new to the tenant.
"""

from __future__ import annotations

import pytest

from accounts.models import Membership
from notifications import preferences, services
from notifications.models import Preference, TenantCategory


def orm_members(tenant, user_ids, role=None) -> list[int]:
    members = Membership.objects.filter(tenant=tenant, user_id__in=user_ids)
    if role is not None:
        members = members.filter(role=role)
    return sorted(members.values_list("user_id", flat=True))


def orm_toasts(tenant, slug, user_ids) -> dict[int, bool]:
    category = TenantCategory.objects.get(tenant=tenant, slug=slug)
    if category.required:
        return dict.fromkeys(user_ids, category.in_app)
    chosen = dict(Preference.objects.filter(tenant=tenant, category=slug).values_list("user_id", "in_app"))
    return {user_id: chosen.get(user_id, category.in_app) for user_id in user_ids}


@pytest.mark.parametrize("role", [None, "admin", "member"])
def test_members_among_ids_match_the_orm(org, role):
    ids = [org[name].pk for name in ("admin", "alice", "bob", "gina", "pat")] + [987_654]
    assert sorted(services._members_among(org["acme"].pk, ids, role)) == orm_members(org["acme"], ids, role)
    assert sorted(services._members_among(org["globex"].pk, ids, role)) == orm_members(org["globex"], ids, role)


def test_members_among_more_ids_than_one_statement_takes(org):
    # Without repeats, as notify passes them.
    ids = sorted(set(range(1, services.CHUNK * 2 + 5)) | {org["alice"].pk, org["gina"].pk})
    assert sorted(services._members_among(org["acme"].pk, ids, None)) == orm_members(org["acme"], ids)


@pytest.mark.parametrize("many", [False, True], ids=["few-users", "more-than-few-users"])
def test_toast_flags_match_the_orm_for_choices_and_required_categories(org, many, monkeypatch):
    if many:
        monkeypatch.setattr(preferences, "FEW_USERS", 1)
    acme, alice, bob, admin = org["acme"], org["alice"], org["bob"], org["admin"]
    users = [alice.pk, bob.pk, admin.pk]

    # A category new to the tenant: created from the built-in defaults on first use.
    assert not TenantCategory.objects.filter(tenant=acme, slug="deploys").exists()
    flags = preferences.toast_flags(acme, "deploys", users)
    assert TenantCategory.objects.filter(tenant=acme, slug="deploys").exists()
    assert flags == orm_toasts(acme, "deploys", users)

    # Alice turned toasts off; pat did too, but in globex (another tenant's choice).
    Preference.objects.create(tenant=acme, user=alice, category="deploys", in_app=False)
    Preference.objects.create(tenant=org["globex"], user=bob, category="deploys", in_app=False)
    Preference.objects.create(tenant=acme, user=admin, category="other", in_app=False)
    flags = preferences.toast_flags(acme, "deploys", users)
    assert flags == orm_toasts(acme, "deploys", users) == {alice.pk: False, bob.pk: True, admin.pk: True}

    # The tenant turns toasts off by default: bob and the admin follow, alice's choice stands.
    TenantCategory.objects.filter(tenant=acme, slug="deploys").update(in_app=False)
    Preference.objects.filter(user=alice).update(in_app=True)
    flags = preferences.toast_flags(acme, "deploys", users)
    assert flags == orm_toasts(acme, "deploys", users) == {alice.pk: True, bob.pk: False, admin.pk: False}

    # Required: the tenant's setting for everyone, whatever they chose.
    TenantCategory.objects.filter(tenant=acme, slug="deploys").update(in_app=True, required=True)
    Preference.objects.filter(user=alice).update(in_app=False)
    flags = preferences.toast_flags(acme, "deploys", users)
    assert flags == orm_toasts(acme, "deploys", users) == dict.fromkeys(users, True)
