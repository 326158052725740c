"""Error pages under the settings `make run` uses (dev, DEBUG on): the product's, styled, nothing blocked."""

from __future__ import annotations

import http.client

import pytest
from django.conf import settings

from tests.support.processes import Daphne
from tests.support.ws import session_cookie_for

pytestmark = [pytest.mark.browser, pytest.mark.stack]

DEBUG_PAGE = "You’re seeing this error because you have"


@pytest.fixture(scope="module")
def dev_server(subprocess_env, web_server):
    """daphne with the development settings `make run` uses: DEBUG on."""
    env = {**subprocess_env, "DJANGO_SETTINGS_MODULE": "liveplatform.settings.dev", "DEBUG": "1", "METRICS_TOKEN": ""}
    server = Daphne(env).start()
    yield server
    server.stop()


def styled(page) -> bool:
    """The page uses app.css: the error card has the product's border and background."""
    return page.evaluate(
        """() => { const card = document.querySelector('.error-page');
          return !!card && getComputedStyle(card).borderTopStyle === 'solid'
            && getComputedStyle(document.body).margin === '0px'; }"""
    )


def test_404_403_and_metrics_are_product_pages_under_debug(browser, live, dev_server, org, artifacts_dir):
    context = browser.new_context(base_url=dev_server.http_url, viewport={"width": 390, "height": 844})
    context.add_init_script(
        "window.__csp = [];"
        "document.addEventListener('securitypolicyviolation', (e) => window.__csp.push(e.blockedURI));"
    )
    context.add_cookies(
        [
            {
                "name": settings.SESSION_COOKIE_NAME,
                "value": session_cookie_for(org["alice"]),
                "url": dev_server.http_url,
            }
        ]
    )
    page = context.new_page()
    errors: list[str] = []
    page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
    for path, status, name in [
        ("/no/such/page/", 404, "missing"),
        ("/t/globex/", 404, "foreign-tenant"),  # another tenant's page answers 404, never 403
        ("/metrics", 404, "metrics"),
    ]:
        response = page.goto(path)
        assert response.status == status, path
        assert DEBUG_PAGE not in page.content()
        assert page.get_by_test_id("error-page").is_visible()
        assert page.locator("h1").inner_text() == "Page not found"
        assert page.locator('link[rel="icon"]').count() == 1
        assert styled(page), path
        assert page.evaluate("window.__csp") == [], path
        page.screenshot(path=str(artifacts_dir / f"error-{name}-phone.png"), full_page=True)
    errors = [e for e in errors if "404" not in e]  # the 404 itself is logged by the browser
    assert errors == []

    # A form posted without its CSRF token: the product's 403.
    page.goto("/t/acme/members/")
    page.evaluate(
        """() => { const form = document.createElement('form'); form.method = 'post';
          form.innerHTML = '<input name=remove value=1>'; document.body.append(form); form.submit(); }"""
    )
    page.wait_for_selector('[data-testid="error-page"]')
    assert page.locator("h1").inner_text() == "Not allowed"
    assert styled(page)
    page.screenshot(path=str(artifacts_dir / "error-403-phone.png"), full_page=True)
    context.close()


def test_a_refused_host_is_the_product_400_and_favicon_resolves(dev_server):
    connection = http.client.HTTPConnection("127.0.0.1", dev_server.port, timeout=10)
    connection.request("GET", "/", headers={"Host": "evil.example"})
    response = connection.getresponse()
    body = response.read().decode()
    assert response.status == 400
    assert "Bad request" in body and DEBUG_PAGE not in body
    assert "/static/css/app.css" in body
    assert response.getheader("Content-Security-Policy")

    connection.request("GET", "/favicon.ico")
    response = connection.getresponse()
    response.read()
    assert response.status == 301 and response.getheader("Location").endswith("/static/img/favicon.svg")
    connection.request("GET", response.getheader("Location"))
    response = connection.getresponse()
    assert response.status == 200 and b"<svg" in response.read()


def test_an_uncaught_error_under_debug_is_the_product_500_without_the_database(rf, settings):
    """Tests that Django's technical 500 becomes the product's page, rendered without context processors."""
    from django.http import HttpResponse

    from liveplatform.errors import DEBUG_PAGE_MARK, ProductErrorPagesMiddleware

    settings.DEBUG = True
    technical = HttpResponse(b"<html>... because you have <code>DEBUG = True</code> in ...</html>", status=500)
    response = ProductErrorPagesMiddleware(lambda request: technical)(rf.get("/boom/"))
    body = response.content.decode()
    assert response.status_code == 500
    assert DEBUG_PAGE_MARK.decode() not in body
    assert "Something went wrong" in body and "/static/css/app.css" in body
    assert response["Content-Security-Policy"] == settings.CONTENT_SECURITY_POLICY

    settings.PRODUCT_ERROR_PAGES = False  # a developer who wants Django's page gets it
    assert ProductErrorPagesMiddleware(lambda request: technical)(rf.get("/boom/")) is technical
