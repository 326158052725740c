"""Template context for the socket client: where to resume from."""

from django.http import HttpRequest

from .middleware import positions_or_empty


def realtime(request: HttpRequest) -> dict:
    """The positions taken before the page's view read its data: the client resumes from them.

    ``PageCursorMiddleware`` takes them before the view; a page rendered without them
    (an error page, a view reached another way) falls back to the positions now.
    """
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return {}
    positions = getattr(request, "realtime_positions", None)
    return {"realtime_positions": positions_or_empty(user) if positions is None else positions}
