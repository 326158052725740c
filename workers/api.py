"""HTTP API of the workers app (mounted under /api/v1/jobs by liveplatform/api.py).

A logged-in user (session cookie, CSRF token for POST) reads the jobs of a tenant
they may see and cancels or retries them; the tenant is the ``tenant`` slug
parameter, and another tenant's job or a job the user may not see answers 404.
The state comes from the job's row, so it never "expires" like a task result.
"""

from __future__ import annotations

from typing import Any

from django.http import Http404, HttpRequest
from ninja import Router
from ninja.security import django_auth

from accounts.tenancy import resolve_membership

from . import services
from .models import Job

router = Router(tags=["jobs"])


def _visible(request: HttpRequest, tenant: str):
    membership = resolve_membership(request.user, tenant)
    return Job.objects.visible_to(request.user, membership).select_related("tenant", "owner"), membership


def _get(request: HttpRequest, tenant: str, job_id: int) -> Job:
    jobs, _ = _visible(request, tenant)
    job = jobs.filter(pk=job_id).first()
    if job is None:
        raise Http404("No such job")
    return job


@router.get("", auth=django_auth, summary="The jobs of a tenant I may see (newest first)")
def list_jobs(request: HttpRequest, tenant: str, limit: int = 50) -> list[dict[str, Any]]:
    jobs, _ = _visible(request, tenant)
    return [services.job_payload(job) for job in jobs[: max(1, min(limit, 200))]]


@router.get("/{job_id}", auth=django_auth, summary="One job: state, progress, result")
def get_job(request: HttpRequest, tenant: str, job_id: int) -> dict[str, Any]:
    return services.job_payload(_get(request, tenant, job_id))


@router.post("/{job_id}/cancel", auth=django_auth, response={200: dict, 409: dict}, summary="Cancel a job")
def cancel_job(request: HttpRequest, tenant: str, job_id: int):
    try:
        job = services.do_cancel_job(_get(request, tenant, job_id), request.user)
    except services.JobNotAllowed as exc:
        return 409, {"detail": str(exc)}
    return 200, services.job_payload(job)


@router.post("/{job_id}/retry", auth=django_auth, response={201: dict, 409: dict}, summary="Retry a job")
def retry_job(request: HttpRequest, tenant: str, job_id: int):
    try:
        job = services.do_retry_job(_get(request, tenant, job_id), request.user)
    except services.JobNotAllowed as exc:
        return 409, {"detail": str(exc)}
    return 201, services.job_payload(job)
