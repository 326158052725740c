"""A person logs in through the allauth form and switches tenant in a real browser."""

import pytest

pytestmark = [pytest.mark.browser, pytest.mark.stack]


def test_login_through_the_form_and_switch_tenant(browser, live, make_tenant, make_member, artifacts_dir):
    acme, globex = make_tenant("acme", "Acme Corp"), make_tenant("globex", "Globex Inc")
    pat = make_member(acme, email="pat@both.test")
    make_member(globex, user=pat)
    context = browser.new_context(base_url=live.http_url)
    page = context.new_page()
    errors = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    try:
        page.goto("/accounts/login/")
        page.fill("input[name=login]", "pat@both.test")
        page.fill("input[name=password]", "pw-123456")
        page.click("button[type=submit]")
        page.wait_for_url("**/t/acme/")
        assert page.get_by_test_id("tenant-title").inner_text() == "Acme Corp"
        page.locator("#live-status[data-state=connected]").wait_for(timeout=10_000)

        page.click("#tenant-switcher summary")
        page.click("#tenant-switcher a:has-text('Globex Inc')")
        page.wait_for_url("**/t/globex/")
        assert page.get_by_test_id("tenant-title").inner_text() == "Globex Inc"
        assert page.get_by_test_id("current-tenant").inner_text() == "Globex Inc"
        page.screenshot(path=str(artifacts_dir / "login-and-switch-tenant.png"), full_page=True)
        assert errors == []
    finally:
        context.close()


def test_wrong_password_shows_an_error_and_no_session(browser, live, make_tenant, make_member):
    make_member(make_tenant("acme"), email="alice@acme.test")
    context = browser.new_context(base_url=live.http_url)
    page = context.new_page()
    try:
        page.goto("/accounts/login/")
        page.fill("input[name=login]", "alice@acme.test")
        page.fill("input[name=password]", "not-the-password")
        page.click("button[type=submit]")
        page.get_by_text("not correct").wait_for(timeout=5_000)
        assert "/accounts/login/" in page.url
    finally:
        context.close()
