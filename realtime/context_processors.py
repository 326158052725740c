"""Template context for the socket client: where to resume from."""

from django.http import HttpRequest

from .services import latest_cursor


def realtime(request: HttpRequest) -> dict:
    """The cursor the page was rendered at: the client resumes after it, so nothing is missed."""
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return {}
    return {"realtime_cursor": latest_cursor()}
