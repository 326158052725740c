"""Celery tasks of the notifications app."""

from __future__ import annotations

from celery import shared_task

from . import digest


@shared_task(name="notifications.tasks.send_email_digests")
def send_email_digests() -> dict[str, int]:
    """Mail each user one digest of their old unread escalating notifications (run by beat)."""
    return digest.do_send_email_digests()
