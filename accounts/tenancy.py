"""The one tenant-scoping mechanism: every tenant page and API resolves through here.

A request names its tenant in the URL (``/t/<tenant_slug>/...``). ``resolve_membership``
turns that into the user's membership or raises ``Http404``, so a non-member cannot
tell a tenant that exists from one that does not. Views inherit ``TenantViewMixin``,
which scopes querysets to the tenant; reaching across tenants needs a method whose
name says so (``dangerously_get_unscoped_queryset``).
"""

from __future__ import annotations

from django.contrib.auth.mixins import LoginRequiredMixin
from django.contrib.auth.models import AbstractBaseUser
from django.db.models import Model, QuerySet
from django.http import Http404, HttpRequest

from .models import Membership, Tenant


def resolve_membership(user: AbstractBaseUser, tenant_slug: str, *, admin_required: bool = False) -> Membership:
    """Return ``user``'s membership of the tenant, or raise 404 (never 403: do not reveal the tenant)."""
    if not user.is_authenticated or not user.is_active:
        raise Http404("No such tenant")
    membership = Membership.objects.select_related("tenant").filter(user=user, tenant__slug=tenant_slug).first()
    if membership is None or (admin_required and not membership.is_admin):
        raise Http404("No such tenant")
    return membership


class TenantViewMixin(LoginRequiredMixin):
    """Resolve the tenant from the URL, 404 for non-members, and scope querysets to it.

    Set ``admin_required = True`` for pages only tenant admins may see (others get 404).
    Subclasses may not override ``get_queryset``: set ``model`` and, if needed,
    ``scope_queryset`` to narrow further (for example to the current user's rows).
    """

    admin_required = False
    model: type[Model] | None = None
    tenant: Tenant
    membership: Membership

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if "get_queryset" in cls.__dict__:
            raise TypeError(
                f"{cls.__name__} overrides get_queryset; override scope_queryset instead so "
                "the tenant filter cannot be lost."
            )

    def dispatch(self, request: HttpRequest, *args, **kwargs):
        if not request.user.is_authenticated:
            return self.handle_no_permission()
        self.membership = resolve_membership(request.user, kwargs["tenant_slug"], admin_required=self.admin_required)
        self.tenant = self.membership.tenant
        request.tenant = self.tenant
        request.membership = self.membership
        request.session["last_tenant"] = self.tenant.slug
        return super().dispatch(request, *args, **kwargs)

    def get_queryset(self) -> QuerySet:
        return self.scope_queryset(self.model._default_manager.filter(tenant=self.tenant))

    def scope_queryset(self, queryset: QuerySet) -> QuerySet:
        """Narrow the tenant-scoped queryset further; the tenant filter is already applied."""
        return queryset

    def dangerously_get_unscoped_queryset(self) -> QuerySet:
        """All rows of every tenant. Use only where crossing tenants is the point."""
        return self.model._default_manager.all()

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        context.update(tenant=self.tenant, membership=self.membership)
        return context
