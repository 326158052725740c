"""Composer pages: tenant admins under /t/<slug>/announcements/, platform staff under /platform/announcements/.

Views parse, check, call one service and redirect. Members and non-staff get 404
(``TenantViewMixin(admin_required=True)`` / ``StaffOnlyMixin``), never 403.
"""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.mixins import LoginRequiredMixin
from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import QuerySet
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, redirect
from django.urls import reverse
from django.utils import timezone
from django.views import View
from django.views.generic import FormView, TemplateView

from accounts.tenancy import TenantViewMixin
from liveplatform.rendering import render_markdown

from . import services
from .forms import AnnouncementForm
from .models import Announcement, AuditLogEntry


class StaffOnlyMixin(LoginRequiredMixin):
    """Platform pages: staff only; everyone else gets the same 404 as a missing page."""

    tenant = None

    def dispatch(self, request: HttpRequest, *args, **kwargs):
        if not request.user.is_authenticated:
            return self.handle_no_permission()
        if not request.user.is_staff:
            raise Http404("No such page")
        return super().dispatch(request, *args, **kwargs)

    def get_queryset(self) -> QuerySet:
        return Announcement.objects.filter(scope=Announcement.Scope.PLATFORM)


class ComposerMixin:
    """What tenant and platform composer pages share: where to go and what to list."""

    def url(self, name: str, *args) -> str:
        if self.tenant is not None:
            return reverse(f"announcements:{name}", args=[self.tenant.slug, *args])
        return reverse(f"announcements:platform_{name}", args=list(args))

    def get_announcement(self) -> Announcement:
        return get_object_or_404(self.get_queryset().select_related("tenant"), pk=self.kwargs["pk"])

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        context.update(
            list_url=self.url("list"),
            new_url=self.url("new"),
            preview_url=self.url("preview"),
            scope_label=self.tenant.name if self.tenant else "the whole platform",
        )
        return context


class AnnouncementListMixin(ComposerMixin):
    """The list page's rows (newest 100, with their links) and the scope's recent audit log."""

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        now = timezone.now()
        rows = list(self.get_queryset().select_related("author")[:100])
        context["rows"] = [
            (a, a.status(now), self.url("edit", a.pk), self.url("end", a.pk), self.url("delete", a.pk)) for a in rows
        ]
        # self.tenant is None on the platform's pages: its log is the entries without a tenant.
        context["audit_log"] = AuditLogEntry.objects.filter(tenant=self.tenant).select_related("actor")[:30]
        return context


class AnnouncementListView(AnnouncementListMixin, TenantViewMixin, TemplateView):
    """A tenant's announcements (scheduled, active, ended) and the recent audit log."""

    admin_required = True
    model = Announcement
    template_name = "announcements/list.html"


class PlatformAnnouncementListView(AnnouncementListMixin, StaffOnlyMixin, TemplateView):
    """Platform-wide announcements, for staff."""

    template_name = "announcements/list.html"


class BaseComposeView(ComposerMixin, FormView):
    form_class = AnnouncementForm
    template_name = "announcements/compose.html"
    announcement: Announcement | None = None

    def get_form_kwargs(self):
        kwargs = super().get_form_kwargs()
        kwargs["allow_platform"] = self.request.user.is_staff and self.tenant is not None
        kwargs["editing"] = self.announcement is not None
        if self.announcement is not None and self.request.method == "GET":
            kwargs["initial"] = AnnouncementForm.initial_for(self.announcement)
        return kwargs

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        context["announcement"] = self.announcement
        return context

    def form_valid(self, form):
        values = form.service_kwargs()
        try:
            if self.announcement is None:
                scope = values.pop("scope") if self.tenant is not None else Announcement.Scope.PLATFORM
                values.pop("scope", None)
                services.check_may_publish(self.request.user, scope=scope, tenant=self.tenant)
                announcement = services.do_publish_announcement(
                    actor=self.request.user, scope=scope, tenant=self.tenant, via="composer", **values
                )
                messages.success(
                    self.request,
                    f"Published “{announcement.title}”."
                    if announcement.state == Announcement.State.ACTIVE
                    else f"Scheduled “{announcement.title}” for {announcement.starts_at:%Y-%m-%d %H:%M} UTC.",
                )
            else:
                values.pop("scope", None)
                for field in ("starts_at", "ends_at"):
                    # The form shows minutes only: an untouched time must not count as a change.
                    stored = getattr(self.announcement, field)
                    if stored and values.get(field) == stored.replace(second=0, microsecond=0):
                        values[field] = stored
                services.check_may_manage(self.request.user, self.announcement)
                announcement = services.do_update_announcement(
                    self.announcement, actor=self.request.user, changes=values, via="composer"
                )
                messages.success(self.request, f"Saved “{announcement.title}”.")
        except ValidationError as error:
            for field, problems in error.message_dict.items():
                form.add_error(None if field == "__all__" or field not in form.fields else field, problems)
            return self.form_invalid(form)
        except PermissionDenied as error:
            form.add_error(None, str(error))
            return self.form_invalid(form)
        if announcement.is_platform and self.tenant is not None:
            return redirect("announcements:platform_list")  # staff chose the whole platform
        return redirect(self.url("list"))


class AnnouncementCreateView(TenantViewMixin, BaseComposeView):
    """The composer: write, preview live, publish now or schedule."""

    admin_required = True
    model = Announcement


class AnnouncementEditView(TenantViewMixin, BaseComposeView):
    """Edit: an active announcement changes in place in every browser showing it."""

    admin_required = True
    model = Announcement

    def get_form_kwargs(self):
        self.announcement = self.get_announcement()
        return super().get_form_kwargs()


class PlatformAnnouncementCreateView(StaffOnlyMixin, BaseComposeView):
    """The composer for platform-wide announcements (staff)."""


class PlatformAnnouncementEditView(StaffOnlyMixin, BaseComposeView):
    def get_form_kwargs(self):
        self.announcement = self.get_announcement()
        return super().get_form_kwargs()


class _ActionMixin(ComposerMixin):
    http_method_names = ["post"]
    action = ""

    def post(self, request: HttpRequest, *args, **kwargs) -> HttpResponse:
        announcement = self.get_announcement()
        services.check_may_manage(request.user, announcement)
        if self.action == "end":
            services.do_end_announcement(announcement, actor=request.user, via="composer")
            messages.success(request, f"Ended “{announcement.title}”.")
        else:
            services.do_delete_announcement(announcement, actor=request.user, via="composer")
            messages.success(request, f"Deleted “{announcement.title}”.")
        return redirect(self.url("list"))


class AnnouncementEndView(_ActionMixin, TenantViewMixin, View):
    admin_required = True
    model = Announcement
    action = "end"


class AnnouncementDeleteView(_ActionMixin, TenantViewMixin, View):
    admin_required = True
    model = Announcement
    action = "delete"


class PlatformAnnouncementEndView(_ActionMixin, StaffOnlyMixin, View):
    action = "end"


class PlatformAnnouncementDeleteView(_ActionMixin, StaffOnlyMixin, View):
    action = "delete"


class _PreviewMixin:
    http_method_names = ["post"]

    def post(self, request: HttpRequest, *args, **kwargs) -> JsonResponse:
        """The composer's live preview: the body exactly as the banner will render it."""
        return JsonResponse({"html": render_markdown(request.POST.get("body", "")[:10_000])})


class AnnouncementPreviewView(_PreviewMixin, TenantViewMixin, View):
    admin_required = True


class PlatformAnnouncementPreviewView(_PreviewMixin, StaffOnlyMixin, View):
    pass
