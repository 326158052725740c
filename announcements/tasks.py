"""Celery tasks: announcements start and end on time, even if nobody touches the platform.

Two paths reach the same idempotent services: an eta task queued for the exact
moment, and a beat reconciler every few seconds that catches whatever the eta task
missed (worker down at that moment, broker down when it was queued). The row's
``state`` changes in the same transaction as the publish, so each transition is
published exactly once whichever path gets there first.
"""

from __future__ import annotations

from celery import shared_task

from . import services


@shared_task(name="announcements.tasks.activate_announcement")
def activate_announcement(announcement_id: int) -> bool:
    """Publish an announcement at its ``starts_at`` (queued with ``eta``)."""
    return services.do_activate_due_announcement(announcement_id)


@shared_task(name="announcements.tasks.expire_announcement")
def expire_announcement(announcement_id: int) -> bool:
    """End an announcement at its ``ends_at`` (queued with ``eta``)."""
    return services.do_expire_due_announcement(announcement_id)


@shared_task(name="announcements.tasks.reconcile_announcements")
def reconcile_announcements() -> int:
    """Start and end whatever is due but unpublished (run every few seconds by beat)."""
    return services.reconcile_due_announcements()
