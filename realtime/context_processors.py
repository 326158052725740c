"""Template context for the socket client: where to resume from."""

from django.http import HttpRequest

from .services import latest_cursor


def realtime(request: HttpRequest) -> dict:
    """The cursor taken before the page's view read its data: the client resumes after it.

    ``PageCursorMiddleware`` takes it before the view; a page rendered without it
    (an error page, a view reached another way) falls back to the cursor now.
    """
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return {}
    cursor = getattr(request, "realtime_cursor", None)
    return {"realtime_cursor": latest_cursor() if cursor is None else cursor}
