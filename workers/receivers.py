"""Signal receivers of the workers app; registered in ``WorkersConfig.ready()``."""

from __future__ import annotations

from django.dispatch import receiver

from .models import JobState
from .signals import job_finished

TITLES = {
    JobState.SUCCEEDED: ("{label} finished", "success"),
    JobState.FAILED: ("{label} failed", "error"),
    JobState.CANCELLED: ("{label} was cancelled", "warning"),
}


@receiver(job_finished, dispatch_uid="workers.notify_owner")
def notify_owner(sender, job, **kwargs) -> None:
    """Tell the job's owner it ended, with a link to it, wherever they are in the app."""
    from notifications.services import notify

    from .services import job_payload

    payload = job_payload(job)
    title, level = TITLES.get(job.state, ("{label} ended", "info"))
    notify(
        job.tenant,
        job.owner,
        category="jobs",
        title=title.format(label=payload["label"]),
        body=job.error or job.progress_message,
        level=level,
        link=payload["download_url"] or payload["url"],
        data={"job": job.pk, "state": job.state},
    )
