"""The jobs pages: start a kind, watch the list, cancel, retry, download. Thin: services do the work."""

from __future__ import annotations

import uuid
from pathlib import Path

from django.conf import settings
from django.contrib import messages
from django.http import FileResponse, Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect
from django.urls import reverse
from django.views import View
from django.views.generic import TemplateView

from accounts.tenancy import TenantViewMixin

from . import services
from .conf import job_settings
from .forms import FORMS
from .jobs import KINDS, get_kind
from .kinds import upload_folder
from .models import Job


class JobScopeMixin(TenantViewMixin):
    """Jobs of the URL's tenant that this user may see: all for admins, their own for members."""

    model = Job

    def scope_queryset(self, queryset):
        queryset = queryset.select_related("tenant", "owner")
        return queryset if self.membership.is_admin else queryset.filter(owner=self.request.user)

    def get_job(self) -> Job:
        return get_object_or_404(self.get_queryset(), pk=self.kwargs["job_id"])

    def startable_kinds(self) -> list[dict]:
        get_kind("export")  # make sure the kinds are registered
        return [
            {"kind": kind, "form": FORMS[kind.name]()}
            for kind in KINDS.values()
            if kind.name in FORMS and (self.membership.is_admin or not kind.admin_only)
        ]


class JobListView(JobScopeMixin, TemplateView):
    """The jobs page: start forms and the live list of jobs."""

    template_name = "workers/job_list.html"

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        context["jobs"] = list(self.get_queryset()[:50])
        context["kinds"] = self.startable_kinds()
        return context


class JobDetailView(JobScopeMixin, TemplateView):
    """One job: its summary, row errors and, for admins, the traceback."""

    template_name = "workers/job_detail.html"

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        context["job"] = self.get_job()
        return context


class StartJobView(JobScopeMixin, View):
    """Start a job of one kind from its form, then back to the list where its bar moves."""

    def post(self, request: HttpRequest, *args, **kwargs) -> HttpResponse:
        kind = get_kind(kwargs["kind"])
        if kind is None or kind.name not in FORMS or (kind.admin_only and not self.membership.is_admin):
            raise Http404("No such job kind")
        form = FORMS[kind.name](request.POST, request.FILES)
        if not form.is_valid():
            messages.error(request, f"{kind.label}: " + "; ".join(e for errs in form.errors.values() for e in errs))
            return redirect("job_list", tenant_slug=self.tenant.slug)
        params = {k: v for k, v in form.cleaned_data.items() if k != "file"}
        if "file" in form.cleaned_data:
            params.update(save_upload(self.tenant.pk, form.cleaned_data["file"]))
        job = services.do_start_job(self.tenant, request.user, kind.name, params)
        if job.task_sent_at is None:
            messages.warning(
                request,
                f"{kind.label} is saved, but the task queue is unavailable right now: "
                "it will start by itself when the queue is back.",
            )
        else:
            messages.success(request, f"{kind.label} started.")
        # The fragment scrolls the new row (first in the list) into view and highlights it.
        return redirect(f"{reverse('job_list', kwargs={'tenant_slug': self.tenant.slug})}#job-{job.pk}")


def save_upload(tenant_id: int, upload) -> dict[str, str]:
    """Keep an uploaded file for its job under MEDIA_ROOT (never served); the job validates it."""
    folder = upload_folder(tenant_id)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{uuid.uuid4().hex}.csv"
    limit = job_settings.IMPORT_MAX_BYTES + 1  # one byte more: enough for the job to say "too large"
    written = 0
    with open(path, "wb") as out:
        for chunk in upload.chunks():
            written += len(chunk)
            out.write(chunk[: max(0, limit - written + len(chunk))])
            if written >= limit:
                break  # the job reports "too large" from what was kept
    return {"upload": str(path.relative_to(settings.MEDIA_ROOT)), "filename": Path(upload.name).name[:200]}


class CancelJobView(JobScopeMixin, View):
    def post(self, request: HttpRequest, *args, **kwargs) -> HttpResponse:
        job = self.get_job()
        try:
            services.do_cancel_job(job, request.user)
        except services.JobNotAllowed as exc:
            messages.error(request, str(exc))
        return redirect("job_list", tenant_slug=self.tenant.slug)


class RetryJobView(JobScopeMixin, View):
    def post(self, request: HttpRequest, *args, **kwargs) -> HttpResponse:
        job = self.get_job()
        try:
            services.do_retry_job(job, request.user)
            messages.success(request, "Started again.")
        except services.JobNotAllowed as exc:
            messages.error(request, str(exc))
        return redirect("job_list", tenant_slug=self.tenant.slug)


class DownloadJobView(JobScopeMixin, View):
    """The result file, only for those who may see the job (others get 404, as for the job)."""

    def get(self, request: HttpRequest, *args, **kwargs) -> HttpResponse:
        job = self.get_job()
        if not job.download_url():
            raise Http404("No file")
        root = Path(settings.MEDIA_ROOT).resolve()
        path = (root / job.result_file).resolve()
        if root not in path.parents or not path.is_file():
            raise Http404("No file")
        return FileResponse(open(path, "rb"), as_attachment=True, filename=path.name, content_type="text/csv")
