"""HTTP endpoints of the real-time core (part of the platform's /api/v1)."""

from datetime import datetime

from django.http import HttpRequest
from ninja import Router, Schema, Status
from ninja.security import django_auth

from . import tickets

router = Router(tags=["realtime"])


class TicketOut(Schema):
    ticket: str
    expires_at: datetime
    url: str


@router.post("/tickets", response={201: TicketOut}, auth=django_auth)
def create_ticket(request: HttpRequest):
    """Mint a single-use, short-lived ticket for a socket on /ws/app/ (send it in the first frame)."""
    ticket, expires_at = tickets.issue_ticket(request.user)
    scheme = "wss" if request.is_secure() else "ws"
    return Status(201, {"ticket": ticket, "expires_at": expires_at, "url": f"{scheme}://{request.get_host()}/ws/app/"})
