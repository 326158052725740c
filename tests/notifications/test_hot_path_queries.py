"""The plain SQL of notify() gives what its ORM definitions give (liveplatform.rawsql).

notify() names its recipients' memberships and their toast choices with one plain
query each, because every notification asks. Each is pinned here to the ORM query it
replaces, over the cases that matter: other tenants, unknown users, roles, a user's
own choice, a required category and a category new to the tenant. Its rows (the
notification, the outbox row) are written with ``rawsql.insert``, pinned here to
``bulk_create``: the same values read back, ids in order, across several statements.
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


def _stored(rows) -> list[dict]:
    model = type(rows[0])
    return list(model.objects.filter(pk__in=[row.pk for row in rows]).order_by("pk").values())


def test_insert_writes_what_bulk_create_writes_and_returns_the_ids_in_order(org):
    """Every field (text, JSON, dates, foreign keys, defaults) reads back as the ORM wrote it."""
    from datetime import timedelta

    from django.utils import timezone

    from liveplatform import rawsql
    from notifications.models import Notification
    from realtime.models import OutboxEvent

    when = timezone.now() - timedelta(minutes=3)

    def notifications(prefix: str, count: int) -> list[Notification]:
        return [
            Notification(
                tenant=org["acme"],
                recipient_id=org["alice" if i % 2 else "bob"].pk,
                category="billing",
                level="warning",
                title=f"{prefix} {i} «ünïcode»",
                body="**b**",
                body_html="<p><strong>b</strong></p>",
                link="/t/acme/",
                actor=org["admin"] if i % 3 else None,
                data={"n": i, "nested": {"list": [1, "two", None]}},
                created_at=when,
            )
            for i in range(count)
        ]

    # More rows than one statement takes on SQLite (999 parameters, 90 of these rows): three batches.
    count = 200
    ours, theirs = notifications("n", count), notifications("n", count)
    rawsql.insert(ours)
    Notification.objects.bulk_create(theirs)
    assert [row.pk for row in ours] == sorted(row.pk for row in ours)
    assert all(not row._state.adding for row in ours)
    strip = lambda rows: [{k: v for k, v in row.items() if k != "id"} for row in rows]  # noqa: E731
    assert strip(_stored(ours)) == strip(_stored(theirs))
    assert [row["title"] for row in _stored(ours)] == [row.title for row in ours]

    outbox = [
        OutboxEvent(
            stream="user.1", event_type="x.y", frame_rest='"a":1}', extra="", idempotency_key=f"k{i}", created_at=when
        )
        for i in range(3)
    ]
    rawsql.insert(outbox)
    assert [row["idempotency_key"] for row in _stored(outbox)] == ["k0", "k1", "k2"]
    assert OutboxEvent.objects.get(pk=outbox[1].pk).created_at == when
