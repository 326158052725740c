"""Tenant pages: the landing redirect, a tenant's home, and member management."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.contrib.auth.mixins import LoginRequiredMixin, UserPassesTestMixin
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect
from django.views.generic import FormView, TemplateView

from realtime.presence.services import do_set_presence_hidden

from . import services
from .api_keys import do_create_api_key, do_revoke_api_key
from .forms import AddMemberForm
from .home import home_context
from .models import ApiKey, Membership
from .platform import platform_overview
from .tenancy import TenantViewMixin


@login_required
def home(request: HttpRequest) -> HttpResponse:
    """Send the user to the tenant they used last, or their first one."""
    memberships = services.tenants_for(request.user)
    if not memberships:
        return redirect("platform_home" if request.user.is_staff else "no_tenant")
    slugs = [m.tenant.slug for m in memberships]
    last = request.session.get("last_tenant")
    return redirect("tenant_home", tenant_slug=last if last in slugs else slugs[0])


class NoTenantView(LoginRequiredMixin, TemplateView):
    """Where a signed-in user with no tenant lands: what to do next."""

    template_name = "accounts/no_tenant.html"


class PlatformHomeView(UserPassesTestMixin, TemplateView):
    """The staff landing page: every tenant and how busy the platform is (``?part=live``: numbers only)."""

    template_name = "accounts/platform_home.html"

    def test_func(self) -> bool:
        return self.request.user.is_authenticated and self.request.user.is_staff

    def get_template_names(self) -> list[str]:
        if self.request.GET.get("part") == "live":
            return ["accounts/_platform_live.html"]
        return [self.template_name]

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        context.update(platform_overview())
        return context


class TenantHomeView(TenantViewMixin, TemplateView):
    """A tenant's landing page: what needs the user, what is happening, what happened.

    ``?part=live`` renders only the sections the page re-fetches after a live event.
    """

    template_name = "accounts/tenant_home.html"

    def get_template_names(self) -> list[str]:
        if self.request.GET.get("part") == "live":
            return ["accounts/_home_live.html"]
        return [self.template_name]

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        context.update(home_context(self.tenant, self.request.user, self.membership))
        return context


class MembersView(TenantViewMixin, FormView):
    """The tenant's member list; admins add and remove members here."""

    template_name = "accounts/members.html"
    form_class = AddMemberForm
    model = Membership

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        context["members"] = self.get_queryset().select_related("user").order_by("user__email")
        return context

    def post(self, request, *args, **kwargs):
        if "presence" in request.POST:  # any member, for their own membership only
            hidden = request.POST["presence"] == "hidden"
            do_set_presence_hidden(self.membership, hidden)
            messages.success(
                request,
                f"{self.tenant.name} no longer sees when you are online."
                if hidden
                else f"{self.tenant.name} sees when you are online.",
            )
            return redirect("tenant_members", tenant_slug=self.tenant.slug)
        if not self.membership.is_admin:
            raise PermissionDenied("Only tenant admins can manage members.")
        if "remove" in request.POST:
            target = get_object_or_404(self.get_queryset(), pk=request.POST["remove"])
            if target.user_id == request.user.pk:
                messages.error(request, "You cannot remove yourself.")
            else:
                services.do_remove_member(target, actor=request.user)
                messages.success(request, f"Removed {target.user.email}.")
            return redirect("tenant_members", tenant_slug=self.tenant.slug)
        return super().post(request, *args, **kwargs)

    def form_valid(self, form):
        membership = services.do_invite_member(
            self.tenant,
            form.cleaned_data["email"],
            role=form.cleaned_data["role"],
            actor=self.request.user,
            request=self.request,
        )
        messages.success(self.request, f"Added {membership.user.email} as {membership.role}.")
        return redirect("tenant_members", tenant_slug=self.tenant.slug)


class ApiKeysView(TenantViewMixin, TemplateView):
    """Tenant admins create, see and revoke the tenant's API keys (a new key is shown once)."""

    template_name = "accounts/api_keys.html"
    admin_required = True
    model = ApiKey

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        context["api_keys"] = self.get_queryset().select_related("created_by")
        context["new_key"] = self.request.session.pop("new_api_key", None)
        return context

    def post(self, request, *args, **kwargs):
        if "revoke" in request.POST:
            api_key = get_object_or_404(self.get_queryset(), pk=request.POST["revoke"])
            do_revoke_api_key(api_key)
            messages.success(request, f"Revoked {api_key.name}.")
        else:
            name = (request.POST.get("name") or "").strip()
            if not name:
                messages.error(request, "Give the key a name so you can recognise it later.")
            else:
                _, raw_key = do_create_api_key(self.tenant, name, created_by=request.user)
                # Shown once, on the next page view, then gone from the session.
                request.session["new_api_key"] = {"name": name, "key": raw_key}
        return redirect("tenant_api_keys", tenant_slug=self.tenant.slug)
