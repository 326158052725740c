"""HTTP API of the workers app (mounted under /api/v1/jobs by liveplatform/api.py).

A logged-in user (session cookie, CSRF token for POST) reads the jobs of a tenant
they may see and cancels or retries them; the tenant is the ``tenant`` slug
parameter, and another tenant's job or a job the user may not see answers 404.
The state comes from the job's row, so it never "expires" like a task result.
"""

from __future__ import annotations

from typing import Any

from django.http import Http404, HttpRequest
from ninja import Field, Query, Router, Schema
from ninja.security import django_auth

from accounts.tenancy import resolve_membership
from liveplatform.api_schemas import errors

from . import services
from .models import Job, JobState

router = Router(tags=["jobs"])

TENANT = Query(description="tenant slug")


class JobOut(Schema):
    """One job as the jobs page draws it (``services.job_payload``, also the ``job.state`` event's data)."""

    id: int
    kind: str
    label: str
    state: JobState
    owner: str = Field(description="the owner's email")
    owner_id: int
    done: int = Field(description="units of work done")
    total: int | None = Field(description="units of work in all, if known")
    percent: int | None
    message: str
    created_at: str | None = Field(description="ISO 8601")
    started_at: str | None
    finished_at: str | None
    cancel_requested: bool
    attempt: int
    error: str = Field(description="what went wrong, for the job's owner")
    result: Any = Field(description="the kind's summary (counts, row errors)")
    url: str
    download_url: str = Field(description="the export file, once the job succeeded; empty otherwise")


def _visible(request: HttpRequest, tenant: str):
    membership = resolve_membership(request.user, tenant)
    return Job.objects.visible_to(request.user, membership).select_related("tenant", "owner"), membership


def _get(request: HttpRequest, tenant: str, job_id: int) -> Job:
    jobs, _ = _visible(request, tenant)
    job = jobs.filter(pk=job_id).first()
    if job is None:
        raise Http404("No such job")
    return job


@router.get(
    "",
    auth=django_auth,
    response={200: list[JobOut], **errors(400, 401, 404)},
    summary="The jobs of a tenant I may see (newest first)",
)
def list_jobs(request: HttpRequest, tenant: str = TENANT, limit: int = Query(50, description="1 to 200")):
    """Newest first; ``limit`` is clamped to 1..200."""
    jobs, _ = _visible(request, tenant)
    return [services.job_payload(job) for job in jobs[: max(1, min(limit, 200))]]


@router.get(
    "/{job_id}", auth=django_auth, response={200: JobOut, **errors(400, 401, 404)}, summary="One job: state, progress"
)
def get_job(request: HttpRequest, job_id: int, tenant: str = TENANT):
    """One job I may see; another tenant's or another member's job is 404."""
    return services.job_payload(_get(request, tenant, job_id))


@router.post(
    "/{job_id}/cancel",
    auth=django_auth,
    response={200: JobOut, **errors(400, 401, 403, 404, 409)},
    summary="Cancel a job",
)
def cancel_job(request: HttpRequest, job_id: int, tenant: str = TENANT):
    """Ask a queued or running job to stop; 409 if it already finished."""
    try:
        job = services.do_cancel_job(_get(request, tenant, job_id), request.user)
    except services.JobNotAllowed as exc:
        return 409, {"detail": str(exc)}
    return 200, services.job_payload(job)


@router.post(
    "/{job_id}/retry",
    auth=django_auth,
    response={201: JobOut, **errors(400, 401, 403, 404, 409)},
    summary="Retry a job",
)
def retry_job(request: HttpRequest, job_id: int, tenant: str = TENANT):
    """Start a failed or cancelled job again as a new job; 409 if it cannot be retried."""
    try:
        job = services.do_retry_job(_get(request, tenant, job_id), request.user)
    except services.JobNotAllowed as exc:
        return 409, {"detail": str(exc)}
    return 201, services.job_payload(job)
