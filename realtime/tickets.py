"""Connection tickets: how a non-browser client (an app, a service, a script) opens a socket.

A browser authenticates its socket with the session cookie; other clients get a
single-use ticket over the HTTP API (``POST /api/v1/realtime/tickets``) and send it in
the socket's first frame (docs/protocol.md). Only the ticket's SHA-256 digest is stored.
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import datetime, timedelta

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.utils import timezone

from .models import ConnectionTicket


def _digest(ticket: str) -> str:
    return hashlib.sha256(ticket.encode()).hexdigest()


def issue_ticket(user: AbstractBaseUser) -> tuple[str, datetime]:
    """Mint a single-use ticket that lets ``user``'s app open one socket within the TTL."""
    ticket = "lpt_" + secrets.token_urlsafe(32)
    expires_at = timezone.now() + timedelta(seconds=settings.REALTIME["TICKET_TTL_SECONDS"])
    ConnectionTicket.objects.create(digest=_digest(ticket), user=user, expires_at=expires_at)
    return ticket, expires_at


def redeem_ticket(ticket: str) -> AbstractBaseUser | None:
    """Spend a ticket: its user if it is known, unexpired, unused and the user active; else None."""
    if not isinstance(ticket, str) or not ticket.startswith("lpt_") or len(ticket) > 100:
        return None
    now = timezone.now()
    with transaction.atomic():
        spent = ConnectionTicket.objects.filter(digest=_digest(ticket), used_at__isnull=True, expires_at__gt=now)
        row = spent.select_for_update().first()
        if row is None or not spent.filter(pk=row.pk).update(used_at=now):
            return None
    user = get_user_model().objects.filter(pk=row.user_id, is_active=True).first()
    return user
