"""HTTP endpoints of the real-time core (part of the platform's /api/v1)."""

from datetime import datetime

from django.http import HttpRequest
from ninja import Router, Schema, Status
from ninja.security import django_auth

from liveplatform.api_schemas import errors

from . import tickets

router = Router(tags=["realtime"])


class TicketOut(Schema):
    ticket: str
    expires_at: datetime
    url: str


# 403: the session's CSRF token is missing or wrong (a POST with a session cookie needs it).
@router.post(
    "/tickets", response={201: TicketOut, **errors(401, 403)}, auth=django_auth, summary="Mint a socket ticket"
)
def create_ticket(request: HttpRequest):
    """Mint a single-use, short-lived ticket for a socket on /ws/app/ (send it in the first frame)."""
    ticket, expires_at = tickets.issue_ticket(request.user)
    scheme = "wss" if request.is_secure() else "ws"
    return Status(201, {"ticket": ticket, "expires_at": expires_at, "url": f"{scheme}://{request.get_host()}/ws/app/"})
