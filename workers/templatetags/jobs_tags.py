"""The header's "jobs running" indicator: which of the page tenant's jobs this user sees running."""

from __future__ import annotations

from django import template

from ..models import Job

register = template.Library()


@register.simple_tag(takes_context=True)
def running_job_ids(context) -> str:
    """Comma-separated ids of the active jobs the user may see in the page's tenant (static/js/jobs_indicator.js)."""
    user, membership = context.get("user"), context.get("current_membership")
    if membership is None or user is None or not user.is_authenticated:
        return ""
    ids = Job.objects.visible_to(user, membership).active().order_by("id").values_list("id", flat=True)[:100]
    return ",".join(str(i) for i in ids)
