"""Template context for the navigation: the user's tenants and the current one."""

from django.http import HttpRequest

from .services import tenants_for


def tenancy(request: HttpRequest) -> dict:
    """Give every template the tenant switcher's entries and the current tenant."""
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return {}
    memberships = tenants_for(user)
    current = getattr(request, "tenant", None)
    if current is None and request.resolver_match and "tenant_slug" in request.resolver_match.kwargs:
        slug = request.resolver_match.kwargs["tenant_slug"]
        current = next((m.tenant for m in memberships if m.tenant.slug == slug), None)
    current_membership = next((m for m in memberships if current and m.tenant_id == current.pk), None)
    return {
        "user_memberships": memberships,
        "current_tenant": current,
        "current_membership": current_membership,
    }
