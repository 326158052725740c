"""Demo data: two tenants with admins and members, and one user in both."""

from __future__ import annotations

from .models import Membership
from .services import do_add_member, do_create_tenant, get_or_create_user

DEMO_PASSWORD = "demo-pass-123"

DEMO_TENANTS = {"acme": "Acme Corp", "globex": "Globex Inc"}
# email -> [(tenant slug, role)]
DEMO_USERS: dict[str, list[tuple[str, str]]] = {
    "admin@acme.test": [("acme", Membership.Role.ADMIN)],
    "alice@acme.test": [("acme", Membership.Role.MEMBER)],
    "bob@acme.test": [("acme", Membership.Role.MEMBER)],
    "admin@globex.test": [("globex", Membership.Role.ADMIN)],
    "gina@globex.test": [("globex", Membership.Role.MEMBER)],
    "gus@globex.test": [("globex", Membership.Role.MEMBER)],
    "pat@both.test": [("acme", Membership.Role.MEMBER), ("globex", Membership.Role.MEMBER)],
}
DEMO_STAFF = "staff@platform.test"


def seed(password: str | None) -> list[str]:
    """Create the demo tenants and users (idempotent); returns one line per login."""
    tenants = {slug: do_create_tenant(slug=slug, name=name) for slug, name in DEMO_TENANTS.items()}
    for email, places in DEMO_USERS.items():
        user, _ = get_or_create_user(email, password=password)
        if password and not user.check_password(password):
            user.set_password(password)
            user.save(update_fields=["password"])
        for slug, role in places:
            do_add_member(tenants[slug], user, role=role)
    _backdate_new_memberships(tenants)
    staff, _ = get_or_create_user(DEMO_STAFF, password=password, is_staff=True, is_superuser=True)
    if password and not staff.check_password(password):
        staff.set_password(password)
        staff.save(update_fields=["password"])
    return demo_logins()


def _backdate_new_memberships(tenants: dict) -> None:
    """Memberships made by this seed joined over the past weeks, as a real team's did."""
    from datetime import timedelta

    from django.utils import timezone

    now = timezone.now()
    fresh = Membership.objects.filter(tenant__in=tenants.values(), created_at__gte=now - timedelta(minutes=5))
    for index, membership in enumerate(fresh.order_by("id")):
        Membership.objects.filter(pk=membership.pk).update(created_at=now - timedelta(days=24 - 3 * index, hours=index))


def demo_logins() -> list[str]:
    """Describe each existing demo login: email, tenants and roles."""
    lines = []
    for email in [*DEMO_USERS, DEMO_STAFF]:
        memberships = Membership.objects.filter(user__email=email).select_related("tenant")
        if email == DEMO_STAFF:
            from django.contrib.auth import get_user_model

            if get_user_model().objects.filter(email=email).exists():
                lines.append(f"{email:<22} platform staff (Django admin, platform-wide announcements)")
            continue
        places = ", ".join(f"{m.tenant.slug} ({m.role})" for m in memberships)
        if places:
            lines.append(f"{email:<22} {places}")
    return lines
