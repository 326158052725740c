"""Pages of the notifications app: the inbox and the preferences (with tenant defaults for admins).

The inbox renders its list through the JSON API (``notifications/api.py``), the
same endpoints the bell uses, so there is one way to read and mark notifications.
"""

from __future__ import annotations

from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.views.generic import TemplateView

from accounts.tenancy import TenantViewMixin
from push.models import PushSubscription
from push.vapid import vapid_keys

from . import preferences, services
from .models import PushMode


class InboxView(TenantViewMixin, TemplateView):
    """The user's notifications in one tenant, with tabs, a category filter and paging."""

    template_name = "notifications/inbox.html"

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        context["categories"] = preferences.categories_for(self.tenant)
        context["counts"] = services.counts_for(self.tenant, self.request.user)
        return context


def _checked(request: HttpRequest, name: str) -> bool:
    return request.POST.get(name) == "on"


class PreferencesView(TenantViewMixin, TemplateView):
    """Per category: toasts and email. Tenant admins also set the tenant's defaults and required ones."""

    template_name = "notifications/preferences.html"

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        context["choices"] = preferences.choices_for(self.membership)
        context["push_modes"] = PushMode.choices
        context["push_devices"] = PushSubscription.objects.filter(user=self.request.user)
        context["push_available"] = vapid_keys() is not None
        return context

    def post(self, request: HttpRequest, *args, **kwargs) -> HttpResponse:
        slugs = [choice.slug for choice in preferences.choices_for(self.membership)]
        if request.POST.get("scope") == "tenant":
            if not self.membership.is_admin:
                raise PermissionDenied("Only tenant admins can change the tenant's defaults.")
            preferences.do_set_tenant_defaults(
                self.tenant,
                {
                    slug: (
                        _checked(request, f"tenant_in_app:{slug}"),
                        _checked(request, f"tenant_email:{slug}"),
                        _checked(request, f"tenant_required:{slug}"),
                    )
                    for slug in slugs
                },
            )
            messages.success(request, f"Saved the defaults of {self.tenant.name}.")
        else:
            preferences.do_set_preferences(
                self.membership,
                {
                    slug: (
                        _checked(request, f"in_app:{slug}"),
                        _checked(request, f"email:{slug}"),
                        request.POST.get(f"push:{slug}", ""),
                    )
                    for slug in slugs
                },
            )
            messages.success(request, "Saved your notification preferences.")
        return redirect("notifications_preferences", tenant_slug=self.tenant.slug)
