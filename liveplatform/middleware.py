"""Project-wide HTTP middleware."""

from collections.abc import Callable
from http import HTTPStatus

from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse

API_PREFIX = "/api/"
# Headers an error answer keeps when it is rewritten as JSON (405's Allow, 429's and 503's Retry-After).
KEPT_HEADERS = ("Allow", "Retry-After")


class ContentSecurityPolicyMiddleware:
    """Send the Content-Security-Policy header on every response.

    Every script is a static ES module, so the policy forbids inline scripts; a
    title or body that slipped past the sanitiser still cannot run.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        if settings.CONTENT_SECURITY_POLICY:
            response.headers.setdefault("Content-Security-Policy", settings.CONTENT_SECURITY_POLICY)
        return response


class JsonApiErrorsMiddleware:
    """Answer errors under /api/ in JSON (``liveplatform.api_schemas.ErrorOut``), never HTML or plain text.

    ninja answers its own errors in JSON; what it does not see does not: a URL no
    route matches (Django's HTML 404), a method a route does not take (ninja's plain
    "Method not allowed"), an exception that reaches Django's 500 page, a request
    Django refuses before any view (400: a disallowed Host, a body too large).
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        if (
            response.status_code < 400
            or not request.path.startswith(API_PREFIX)
            or response.get("Content-Type", "").startswith("application/json")
        ):
            return response
        return self.as_json(response)

    @staticmethod
    def as_json(response: HttpResponse) -> HttpResponse:
        """The same status and headers that matter, with an ``ErrorOut`` body."""
        try:
            detail = HTTPStatus(response.status_code).phrase
        except ValueError:
            detail = "Error"
        answer = JsonResponse({"detail": detail}, status=response.status_code)
        for name in KEPT_HEADERS:
            if name in response:
                answer[name] = response[name]
        return answer
