"""Rendering: hostile titles and bodies stay inert, and every page carries a CSP that forbids inline scripts."""

from __future__ import annotations

import re

import pytest
from django.test import Client

from tests.support.ws import session_cookie_for

TIMEOUT_MS = 20_000

HOSTILE_TITLE = '<script>window.__pwned = "title"</script><img src=x onerror="window.__pwned=\'img\'">'
HOSTILE_BODY = (
    "<script>window.__pwned = 'body'</script>\n\n"
    "[click me](javascript:window.__pwned='link')\n\n"
    '<a href="javascript:window.__pwned=1" onclick="window.__pwned=2">raw</a>\n\n'
    "<svg onload=\"window.__pwned='svg'\"></svg> <iframe src=\"javascript:window.__pwned='frame'\"></iframe>\n\n"
    "![x](x \"onerror=window.__pwned='md'\")"
)


@pytest.fixture
def acme(make_tenant):
    return make_tenant("acme")


def _inert(page) -> None:
    """No hostile code ran and no hostile element made it into the DOM."""
    assert page.evaluate("() => window.__pwned") is None
    dangerous = page.evaluate(
        """() => {
          const bad = [];
          for (const el of document.querySelectorAll("*")) {
            for (const attr of el.attributes) {
              if (attr.name.startsWith("on")) bad.push(el.tagName + " " + attr.name);
              if (/^\\s*javascript:/i.test(attr.value)) bad.push(el.tagName + " " + attr.name + "=" + attr.value);
            }
            if (el.tagName === "SCRIPT" && !el.src) bad.push("inline script");
            if (["IFRAME", "OBJECT", "EMBED"].includes(el.tagName.toUpperCase())) bad.push(el.tagName);
          }
          return bad;
        }"""
    )
    assert dangerous == []


@pytest.mark.browser
@pytest.mark.stack
def test_hostile_notifications_and_announcements_render_inert_live_and_on_page_load(
    browser_page, acme, make_member, artifacts_dir
):
    """Tests stored and live rendering of script tags, event handlers and javascript: links."""
    from announcements.services import do_publish_announcement
    from notifications.services import notify

    admin = make_member(acme, role="admin", email="admin@acme.test")
    alice = make_member(acme, email="alice@acme.test")
    page = browser_page(alice)
    violations = []
    page.on("console", lambda message: "Content Security Policy" in message.text and violations.append(message.text))

    # Stored before the page loads: rendered by the server.
    notify(acme, [alice], category="general", title=HOSTILE_TITLE, body=HOSTILE_BODY)
    do_publish_announcement(actor=admin, tenant=acme, title=HOSTILE_TITLE, body=HOSTILE_BODY)
    page.goto("/t/acme/notifications/")
    page.wait_for_selector('#live-status[data-state="connected"]', timeout=TIMEOUT_MS)
    assert HOSTILE_TITLE.split(">")[0] in page.inner_text("body")  # shown as text, not run
    _inert(page)

    # Arriving live while the page is open: rendered by the browser's modules.
    notify(acme, [alice], category="general", title=HOSTILE_TITLE + " live", body=HOSTILE_BODY)
    do_publish_announcement(actor=admin, tenant=acme, title=HOSTILE_TITLE + " live", body=HOSTILE_BODY)
    page.wait_for_selector("[data-testid=notification-toast]", timeout=TIMEOUT_MS)
    page.wait_for_function(
        "() => document.querySelectorAll('#announcements .announcement').length >= 2", timeout=TIMEOUT_MS
    )
    page.click("#notification-bell .bell-button")
    _inert(page)
    page.screenshot(path=str(artifacts_dir / "security-hostile-content.png"), full_page=True)
    # Clicking every link in the rendered bodies runs nothing either.
    for link in page.locator(".announcement a, .toast a").all():
        href = link.get_attribute("href") or ""
        assert not href.strip().lower().startswith("javascript:")
    assert page.errors == []
    assert violations == [], violations  # the app itself needs nothing the policy forbids


@pytest.mark.stack
def test_the_api_docs_page_draws_the_api_under_the_content_security_policy(browser_page, acme, make_member):
    """Tests that Swagger UI at /api/v1/docs works from our static files with no CSP violation."""
    reader = make_member(acme, email="reader@acme.test")
    page = browser_page(reader)
    violations = []
    page.on("console", lambda message: "Content Security Policy" in message.text and violations.append(message.text))
    page.goto("/api/v1/docs")
    page.wait_for_selector(".opblock-summary-path", timeout=TIMEOUT_MS)
    assert "/api/v1/notifications" in page.inner_text("#swagger-ui")
    assert violations == [], violations


@pytest.mark.parametrize(
    "path",
    [
        "/",
        "/accounts/login/",
        "/t/acme/",
        "/t/acme/notifications/",
        "/t/acme/notifications/preferences/",
        "/t/acme/jobs/",
        "/t/acme/announcements/",
        "/t/acme/members/",
        "/t/acme/api-keys/",
        "/api/v1/docs",
        "/api/v1/openapi.json",
        "/no-such-page/",
        "/t/globex/",
    ],
)
def test_every_page_has_a_content_security_policy_without_inline_scripts(db, acme, make_member, make_tenant, path):
    """Tests that the CSP header is on every response, errors and API included, and forbids inline code."""
    make_tenant("globex")
    admin = make_member(acme, role="admin", email="admin@acme.test")
    client = Client()
    client.force_login(admin, backend="django.contrib.auth.backends.ModelBackend")
    response = client.get(path)
    policy = response.headers.get("Content-Security-Policy", "")
    directives = dict((part.strip().split(" ", 1) + [""])[:2] for part in policy.split(";") if part.strip())
    assert directives.get("script-src") == "'self'", (path, policy)
    assert "unsafe-inline" not in policy and "unsafe-eval" not in policy
    assert directives.get("frame-ancestors") == "'none'"
    assert directives.get("default-src") == "'self'"
    assert response.headers.get("X-Frame-Options") == "DENY"
    assert response.headers.get("X-Content-Type-Options") == "nosniff"
    # Every HTML page, the API's Swagger page included, runs only same-origin script files.
    if response.headers.get("Content-Type", "").startswith("text/html") and response.status_code == 200:
        html = response.content.decode()
        assert "<script>" not in html and " onclick=" not in html and ' style="' not in html
        assert "https://" not in "".join(re.findall(r"<(?:script|link)[^>]*>", html)), path


def test_session_cookie_for_helper_is_not_logged(db, acme, make_member, caplog):
    """Tests that opening sessions and sockets does not write session keys, tickets or API keys to the log."""
    from accounts.api_keys import do_create_api_key
    from realtime.tickets import issue_ticket

    alice = make_member(acme, email="alice@acme.test")
    with caplog.at_level("DEBUG"):
        cookie = session_cookie_for(alice)
        ticket, _ = issue_ticket(alice)
        _, key = do_create_api_key(acme, "k")
        Client().post(
            "/api/v1/notifications",
            {"user_ids": [alice.pk], "title": "x"},
            content_type="application/json",
            headers={"Authorization": f"Bearer {key}"},
        )
        Client().get("/api/v1/notifications?tenant=acme", headers={"Authorization": f"Bearer {key}"})
    text = caplog.text
    for secret in (cookie, ticket, key, key[12:]):
        assert secret not in text
