"""The bell in the navigation: which tenant it shows and that tenant's counts."""

from __future__ import annotations

from django import template

from ..categories import grouped_categories
from ..services import counts_for

register = template.Library()


@register.inclusion_tag("notifications/_bell_inner.html", takes_context=True)
def notification_bell(context) -> dict:
    """Render the bell for the page's tenant (or, off tenant pages, the tenant used last)."""
    request = context.get("request")
    user = context.get("user")
    memberships = context.get("user_memberships") or []
    tenant = context.get("current_tenant")
    if tenant is None and memberships:
        last = request.session.get("last_tenant") if request is not None else None
        tenant = next((m.tenant for m in memberships if m.tenant.slug == last), memberships[0].tenant)
    if tenant is None or user is None or not user.is_authenticated:
        return {"bell_tenant": None}
    return {
        "bell_tenant": tenant,
        "counts": counts_for(tenant, user),
        "on_tenant_page": bool(context.get("current_tenant")),
        "grouped": "|".join(f"{slug}={label}" for slug, label in grouped_categories().items()),
    }
