"""Every page a member, an admin and staff reach, at desktop and phone width, in one real browser.

For each page and width: no horizontal overflow, the bell panel entirely inside the
viewport when open, no console error, no request the CSP blocked, and an axe-core audit
with no serious or critical violation. A screenshot of each lands in test-artifacts/.
"""

from __future__ import annotations

import pytest
from axe_playwright_python.sync_playwright import Axe
from django.conf import settings
from django.utils import timezone

from announcements.models import Announcement
from notifications import services as notifications
from tests.support.ws import session_cookie_for
from workers.models import Job, JobState

pytestmark = [pytest.mark.browser, pytest.mark.stack]

WIDTHS = {"desktop": {"width": 1280, "height": 800}, "phone": {"width": 390, "height": 844}}
TIMEOUT = 20_000

MEMBER_PAGES = [
    "/t/acme/",
    "/t/acme/notifications/",
    "/t/acme/notifications/preferences/",
    "/t/acme/members/",
    "/t/acme/jobs/",
    "/t/acme/jobs/{job}/",
    "/accounts/password/change/",
]
ADMIN_PAGES = [
    "/t/acme/",
    "/t/acme/members/",
    "/t/acme/api-keys/",
    "/t/acme/announcements/",
    "/t/acme/announcements/new/",
    "/t/acme/jobs/",
]
# "/" is the platform page; the Django admin is a page staff reach too.
STAFF_PAGES = ["/", "/platform/announcements/", "/platform/announcements/new/", "/admin/", "/admin/accounts/apikey/"]
ANONYMOUS_PAGES = ["/accounts/login/", "/accounts/signup/", "/t/nowhere/"]

# JavaScript run in the page: widest element past the viewport's right edge, if any.
OVERFLOW = """() => {
  const width = document.documentElement.clientWidth;
  if (document.documentElement.scrollWidth <= width) return null;
  const clipped = (e) => {
    for (let p = e.parentElement; p; p = p.parentElement) if (getComputedStyle(p).overflowX !== 'visible') return true;
    return false;
  };
  const culprits = [...document.querySelectorAll('body *')]
    .filter((e) => e.getBoundingClientRect().right > width + 1 && getComputedStyle(e).position !== 'fixed')
    .filter((e) => !clipped(e))
    .map((e) => `${e.tagName}.${[...e.classList].join('.')} ${Math.round(e.getBoundingClientRect().right)}`);
  return {scrollWidth: document.documentElement.scrollWidth, width, culprits: culprits.slice(0, 5)};
}"""
# Requests the Content-Security-Policy refused, recorded from the first script on.
CSP_LISTENER = """() => {
  window.__csp = [];
  document.addEventListener('securitypolicyviolation', (e) => {
    window.__csp.push(`${e.violatedDirective} ${e.blockedURI}`);
  });
}"""


@pytest.fixture
def scene(org):
    """The demo tenant with something on every page: notifications, an announcement, jobs."""
    acme, alice, admin = org["acme"], org["alice"], org["admin"]
    for title, level, body in [
        ("Deploy finished", "success", "Version **1.4.2** is live."),
        ("Storage 80% full", "warning", "Consider archiving old exports."),
        ("Nightly import failed", "error", "The source file was empty."),
    ]:
        notifications.notify(acme, alice, category="general", title=title, level=level, body=body, link="/t/acme/")
    Announcement.objects.create(
        tenant=acme,
        title="Maintenance tonight",
        body="About **5 minutes** at 22:00.",
        body_html="<p>About <strong>5 minutes</strong> at 22:00.</p>",
        severity="warning",
        state=Announcement.State.ACTIVE,
        activated_at=timezone.now(),
        author=admin,
    )
    now = timezone.now()
    job = Job.objects.create(
        tenant=acme,
        owner=alice,
        kind="export",
        state=JobState.SUCCEEDED,
        progress_done=120,
        progress_total=120,
        started_at=now,
        finished_at=now,
    )
    Job.objects.create(
        tenant=acme, owner=alice, kind="export", state=JobState.CANCELLED, started_at=now, finished_at=now
    )
    return {"job": job.pk}


def audit(page, path: str, label: str, artifacts_dir, axe: Axe, problems: list[str]) -> None:
    messages: list[str] = []
    page.on("console", lambda m: messages.append(m.text) if m.type == "error" else None)
    response = page.goto(path)
    assert response is not None
    page.wait_for_load_state("load")
    if page.locator("#live-status").count():
        page.wait_for_selector('#live-status[data-state="connected"]', timeout=TIMEOUT)
    overflow = page.evaluate(OVERFLOW)
    if overflow:
        problems.append(f"{label}: horizontal overflow {overflow}")
    page.screenshot(path=str(artifacts_dir / f"page-{label}.png"), full_page=True)
    toggle = page.locator("#nav-toggle")
    if path in ("/t/acme/", "/") and toggle.is_visible():  # the phone menu, once per visitor
        toggle.click()
        nav = page.locator("#primary-nav")
        nav.wait_for(state="visible")
        if page.evaluate(OVERFLOW):
            problems.append(f"{label}: the open menu overflows")
        page.screenshot(path=str(artifacts_dir / f"page-{label}-menu.png"))
        page.keyboard.press("Escape")
        nav.wait_for(state="hidden")
    bell = page.locator("#notification-bell-button")
    if bell.count():
        bell.click()
        panel = page.locator("#notification-panel")
        panel.wait_for(state="visible")
        page.wait_for_selector(
            "#notification-panel .bell-list > :not(.bell-empty),"
            " #notification-panel .bell-empty:not(:has-text('Loading'))"
            " #notification-panel .bell-empty:not(:has-text('Loading'))"
        )
        box = panel.bounding_box()
        viewport = page.viewport_size
        if box["x"] < 0 or box["y"] < 0 or box["x"] + box["width"] > viewport["width"] + 0.5:
            problems.append(f"{label}: bell panel outside the viewport {box}")
        page.screenshot(path=str(artifacts_dir / f"page-{label}-bell.png"))
        results = axe.run(page)
        page.keyboard.press("Escape")
    else:
        results = axe.run(page)
    for violation in results.response["violations"]:
        if violation["impact"] in ("serious", "critical"):
            targets = [node["target"] for node in violation["nodes"]][:3]
            problems.append(f"{label}: axe {violation['impact']} {violation['id']}: {violation['help']} {targets}")
    blocked = page.evaluate("() => window.__csp || []")
    if blocked:
        problems.append(f"{label}: CSP blocked {blocked}")
    errors = messages
    if errors or page.errors:
        problems.append(f"{label}: console errors {errors} {page.errors}")


def test_every_page_at_desktop_and_phone_width(browser, live, org, scene, make_user, artifacts_dir):
    staff = make_user("staff@platform.test", is_staff=True, is_superuser=True)
    axe = Axe()
    problems: list[str] = []
    visitors = [
        ("member", org["alice"], MEMBER_PAGES),
        ("admin", org["admin"], ADMIN_PAGES),
        ("staff", staff, STAFF_PAGES),
        ("anonymous", None, ANONYMOUS_PAGES),
    ]
    for width_name, viewport in WIDTHS.items():
        for role, user, pages in visitors:
            context = browser.new_context(base_url=live.http_url, viewport=viewport)
            context.add_init_script(f"({CSP_LISTENER})()")
            if user is not None:
                context.add_cookies(
                    [{"name": settings.SESSION_COOKIE_NAME, "value": session_cookie_for(user), "url": live.http_url}]
                )
            page = context.new_page()
            page.errors = []
            page.on("pageerror", lambda error, page=page: page.errors.append(str(error)))
            for path in pages:
                path = path.format(job=scene["job"])
                slug = path.strip("/").replace("/", "-") or "root"
                audit(page, path, f"{role}-{slug}-{width_name}", artifacts_dir, axe, problems)
            context.close()
    assert problems == [], "\n".join(problems)


def test_staff_land_on_the_platform_page(client, org, make_user):
    """Tests that staff without a tenant see the platform, not "You do not belong to any tenant yet"."""
    staff = make_user("staff@platform.test", is_staff=True)
    client.force_login(staff)
    response = client.get("/", follow=True)
    assert response.redirect_chain[-1][0] == "/platform/"
    page = response.content.decode()
    assert "Acme Corp" in page and "Globex Inc" in page and "sockets online" in page and "jobs running" in page
    assert "do not belong" not in page

    client.force_login(org["alice"])
    assert client.get("/platform/").status_code == 403


def test_the_django_admin_names_each_section_once_and_says_api_keys(client, make_user):
    """Tests that allauth's "Accounts" and ours no longer share a title, and "Api keys" reads "API keys"."""
    client.force_login(make_user("staff@platform.test", is_staff=True, is_superuser=True))
    page = client.get("/admin/").content.decode()
    assert page.count(">Accounts<") == 1
    assert "Tenants and members" in page and ">API keys<" in page and "Api keys" not in page
