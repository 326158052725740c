"""The functions that change tenants and memberships. Views and commands call these."""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction

from .models import Membership, Tenant

User = get_user_model()


def get_or_create_user(email: str, *, password: str | None = None, **extra) -> tuple[AbstractBaseUser, bool]:
    """Return the user with this email (case-insensitive), creating it if needed.

    Email is the login; the username mirrors it because Django's user model needs one.
    """
    email = User.objects.normalize_email(email).lower()
    user = User.objects.filter(email__iexact=email).first()
    if user:
        return user, False
    user = User(username=email[:150], email=email, **extra)
    if password:
        user.set_password(password)
    else:
        user.set_unusable_password()
    user.save()
    return user, True


def do_create_tenant(*, slug: str, name: str) -> Tenant:
    """Create a tenant, or return the existing one with this slug."""
    tenant, _ = Tenant.objects.get_or_create(slug=slug, defaults={"name": name})
    return tenant


def do_add_member(
    tenant: Tenant, user: AbstractBaseUser, *, role: str = Membership.Role.MEMBER, actor: AbstractBaseUser | None = None
) -> tuple[Membership, bool]:
    """Add ``user`` to ``tenant`` (or change their role).

    Listeners (open sockets joining the tenant, the admins' notification) hang on
    ``post_save``, so Django admin and this service behave the same.
    """
    with transaction.atomic():
        # Receivers read `changed_by` to name who made the change.
        membership, created = Membership.objects.select_for_update().get_or_create(
            tenant=tenant, user=user, defaults={"role": role}
        )
        if not created and membership.role != role:
            membership.role = role
            membership.save(update_fields=["role"])
    return membership, created


def do_remove_member(membership: Membership, *, actor: AbstractBaseUser | None = None) -> None:
    """Remove a member from a tenant; their open sockets leave the tenant at once.

    Listeners (live revocation, the admins' notification) hang on ``post_delete``,
    so removal through Django admin behaves the same.
    """
    membership.delete()


def tenants_for(user: AbstractBaseUser) -> list[Membership]:
    """The user's memberships with their tenants, in display order."""
    if not user.is_authenticated:
        return []
    return list(Membership.objects.filter(user=user).select_related("tenant").order_by("tenant__name"))


def do_invite_member(tenant: Tenant, email: str, *, role: str, actor: AbstractBaseUser | None, request) -> Membership:
    """Add someone by email; a person new to the platform gets an email to set a password.

    The invitation is allauth's password-reset email, so the link, its expiry and its
    single use follow allauth's rules rather than a second token scheme of ours.
    """
    from allauth.account.forms import ResetPasswordForm

    user, created = get_or_create_user(email)
    membership, _ = do_add_member(tenant, user, role=role, actor=actor)
    if created or not user.has_usable_password():
        form = ResetPasswordForm(data={"email": user.email})
        if form.is_valid():
            form.save(request)
    return membership
