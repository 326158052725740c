"""Who gets a toast and who gets an email, per category: platform, tenant and user choices.

The effective setting for a user is the tenant's default for the category (a
``TenantCategory`` row, created from the built-in defaults the first time the
category is used in the tenant) unless the user chose otherwise (a ``Preference``
row). A required category ignores user choices: its tenant defaults apply to all.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.db import transaction

from accounts.models import Membership, Tenant
from liveplatform import rawsql

from .categories import BUILTIN_CATEGORIES, defaults_for
from .models import Preference, PushMode, TenantCategory

# Up to this many users, toast_flags reads only their choices (an IN list well under
# SQLite's parameter limit); above it, the category's every choice in one scan.
FEW_USERS = 100
# The tenant's settings for a category and the users' own choices, in one read. No row:
# the category is new to the tenant. ``{users}`` narrows the choices to a few users.
_TOAST_SQL = (
    "SELECT c.in_app, c.required, p.user_id, p.in_app "
    f"FROM {TenantCategory._meta.db_table} c LEFT JOIN {Preference._meta.db_table} p "
    "ON p.tenant_id = c.tenant_id AND p.category = c.slug{users} "
    "WHERE c.tenant_id = %s AND c.slug = %s"
)


@dataclass
class CategoryChoice:
    """One row of the preferences page: a category and the user's effective settings."""

    slug: str
    label: str
    description: str
    in_app: bool
    email: bool
    required: bool
    tenant_in_app: bool
    tenant_email: bool
    push: str = PushMode.URGENT


def ensure_tenant_category(tenant: Tenant, slug: str) -> TenantCategory:
    """The tenant's settings for ``slug``, created from the built-in defaults on first use."""
    row = TenantCategory.objects.filter(tenant=tenant, slug=slug).first()
    if row is not None:
        return row
    defaults = defaults_for(slug)
    with transaction.atomic():
        row, _ = TenantCategory.objects.get_or_create(
            tenant=tenant,
            slug=slug,
            defaults={
                "label": defaults.label,
                "in_app": defaults.in_app,
                "email": defaults.email,
                "required": defaults.required,
            },
        )
    return row


def toast_flags(tenant: Tenant, slug: str, user_ids: list[int]) -> dict[int, bool]:
    """Whether each user gets an in-app toast for a new notification of category ``slug``.

    One plain query (``liveplatform.rawsql``: every notification asks, and the ORM's
    two queries cost more than the rest of the preference logic); the category's row
    is created from the defaults on its first use in the tenant.
    """
    if not user_ids:
        return {}
    few = len(user_ids) <= FEW_USERS
    sql = _TOAST_SQL.format(users=f" AND p.user_id IN ({rawsql.placeholders(user_ids)})" if few else "")
    params = [*(user_ids if few else []), tenant.pk, slug]
    rows = rawsql.fetch(sql, params)
    if not rows:
        ensure_tenant_category(tenant, slug)
        rows = rawsql.fetch(sql, params)
    in_app, required = bool(rows[0][0]), bool(rows[0][1])
    if required:
        return dict.fromkeys(user_ids, in_app)
    chosen = {user_id: bool(choice) for _, _, user_id, choice in rows if user_id is not None}
    return {user_id: chosen.get(user_id, in_app) for user_id in user_ids}


def email_allowed(rows: list[dict]) -> list[dict]:
    """Keep the rows (tenant_id, recipient_id, category) whose category escalates to email for that user."""
    if not rows:
        return []
    tenant_ids = {row["tenant_id"] for row in rows}
    categories = {row["category"] for row in rows}
    tenant_rows = {
        (c.tenant_id, c.slug): c for c in TenantCategory.objects.filter(tenant_id__in=tenant_ids, slug__in=categories)
    }
    user_ids = {row["recipient_id"] for row in rows}
    choices = {
        (p.tenant_id, p.user_id, p.category): p.email
        for p in Preference.objects.filter(tenant_id__in=tenant_ids, user_id__in=user_ids, category__in=categories)
    }
    kept = []
    for row in rows:
        tenant_category = tenant_rows.get((row["tenant_id"], row["category"]))
        default = tenant_category.email if tenant_category else defaults_for(row["category"]).email
        if tenant_category is not None and tenant_category.required:
            wanted = default
        else:
            wanted = choices.get((row["tenant_id"], row["recipient_id"], row["category"]), default)
        if wanted:
            kept.append(row)
    return kept


def categories_for(tenant: Tenant) -> list[TenantCategory]:
    """Every category a tenant's members may configure: the built-in ones and those used so far."""
    for slug in BUILTIN_CATEGORIES:
        ensure_tenant_category(tenant, slug)
    return list(TenantCategory.objects.filter(tenant=tenant).order_by("label"))


def choices_for(membership: Membership) -> list[CategoryChoice]:
    """The preferences page of one member: each category with their effective settings."""
    chosen = {
        p.category: p for p in Preference.objects.filter(tenant_id=membership.tenant_id, user_id=membership.user_id)
    }
    result = []
    for category in categories_for(membership.tenant):
        mine = None if category.required else chosen.get(category.slug)
        result.append(
            CategoryChoice(
                slug=category.slug,
                label=category.label,
                description=defaults_for(category.slug).description,
                in_app=mine.in_app if mine else category.in_app,
                email=mine.email if mine else category.email,
                required=category.required,
                tenant_in_app=category.in_app,
                tenant_email=category.email,
                push=(chosen[category.slug].push if category.slug in chosen else PushMode.URGENT),
            )
        )
    return result


def do_set_preferences(membership: Membership, choices: dict[str, tuple]) -> None:
    """Save a member's (in_app, email[, push]) per category.

    Toast and email of a required category stay as the tenant set them; push to the
    member's own devices is always theirs to choose.
    """
    categories = {c.slug: c for c in categories_for(membership.tenant)}
    with transaction.atomic():
        for slug, (in_app, email, *rest) in choices.items():
            category = categories.get(slug)
            if category is None:
                continue
            defaults = {} if category.required else {"in_app": in_app, "email": email}
            if rest and rest[0] in PushMode.values:
                defaults["push"] = rest[0]
            if defaults:
                Preference.objects.update_or_create(
                    tenant_id=membership.tenant_id, user_id=membership.user_id, category=slug, defaults=defaults
                )


def push_modes(rows: list[tuple[int, int, str]]) -> dict[tuple[int, int, str], str]:
    """The push mode of each (tenant_id, user_id, category): the user's choice, else ``urgent``."""
    if not rows:
        return {}
    chosen = {
        (p.tenant_id, p.user_id, p.category): p.push
        for p in Preference.objects.filter(
            tenant_id__in={row[0] for row in rows},
            user_id__in={row[1] for row in rows},
            category__in={row[2] for row in rows},
        )
    }
    return {row: chosen.get(row, PushMode.URGENT) for row in rows}


def do_set_tenant_defaults(tenant: Tenant, choices: dict[str, tuple[bool, bool, bool]]) -> None:
    """Save a tenant's (in_app, email, required) per category; called for tenant admins only."""
    categories = {c.slug: c for c in categories_for(tenant)}
    with transaction.atomic():
        for slug, (in_app, email, required) in choices.items():
            category = categories.get(slug)
            if category is None:
                continue
            category.in_app, category.email, category.required = in_app, email, required
            category.save(update_fields=["in_app", "email", "required"])
