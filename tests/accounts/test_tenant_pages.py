"""Tenant pages: members see their tenant, everyone else sees nothing (404)."""

import pytest
from django.urls import reverse

TENANT_PAGES = ["tenant_home", "tenant_members"]


@pytest.fixture
def two_tenants(make_tenant, make_member):
    acme, globex = make_tenant("acme", "Acme Corp"), make_tenant("globex", "Globex Inc")
    return {
        "acme": acme,
        "globex": globex,
        "acme_member": make_member(acme, email="alice@acme.test"),
        "acme_admin": make_member(acme, role="admin", email="admin@acme.test"),
        "globex_member": make_member(globex, email="gina@globex.test"),
    }


@pytest.mark.parametrize("page", TENANT_PAGES)
def test_member_of_another_tenant_gets_404_on_every_tenant_page(client, two_tenants, page):
    """A member of acme cannot tell that globex exists."""
    client.force_login(two_tenants["acme_member"])
    response = client.get(reverse(page, args=["globex"]))
    assert response.status_code == 404
    assert b"Globex" not in response.content


@pytest.mark.parametrize("page", TENANT_PAGES)
def test_unknown_tenant_answers_the_same_404(client, two_tenants, page):
    client.force_login(two_tenants["acme_member"])
    assert client.get(reverse(page, args=["no-such-tenant"])).status_code == 404


@pytest.mark.parametrize("page", TENANT_PAGES)
def test_anonymous_user_is_redirected_to_login(client, two_tenants, page):
    response = client.get(reverse(page, args=["acme"]))
    assert response.status_code == 302
    assert response.url.startswith(reverse("account_login"))


def test_member_sees_their_tenant_and_the_switcher_lists_only_their_tenants(client, two_tenants):
    client.force_login(two_tenants["acme_member"])
    response = client.get(reverse("tenant_home", args=["acme"]))
    assert response.status_code == 200
    assert b"Acme Corp" in response.content
    assert b"Globex Inc" not in response.content


def test_home_redirects_to_the_users_tenant(client, two_tenants):
    client.force_login(two_tenants["globex_member"])
    response = client.get("/")
    assert response.status_code == 302 and response.url == reverse("tenant_home", args=["globex"])


def test_admin_adds_and_removes_a_member(client, two_tenants):
    from accounts.models import Membership

    client.force_login(two_tenants["acme_admin"])
    url = reverse("tenant_members", args=["acme"])
    response = client.post(url, {"email": "new@acme.test", "role": "member"})
    assert response.status_code == 302
    added = Membership.objects.get(tenant__slug="acme", user__email="new@acme.test")
    client.post(url, {"remove": added.pk})
    assert not Membership.objects.filter(pk=added.pk).exists()


def test_a_person_new_to_the_platform_gets_an_invitation_email(client, two_tenants, mailoutbox):
    client.force_login(two_tenants["acme_admin"])
    client.post(reverse("tenant_members", args=["acme"]), {"email": "newcomer@acme.test", "role": "member"})
    assert [m.to for m in mailoutbox] == [["newcomer@acme.test"]]
    assert "/accounts/password/reset/key/" in mailoutbox[0].body
    # An existing user is added without an email.
    client.post(reverse("tenant_members", args=["acme"]), {"email": "gina@globex.test", "role": "member"})
    assert len(mailoutbox) == 1


def test_member_cannot_manage_members(client, two_tenants):
    from accounts.models import Membership

    client.force_login(two_tenants["acme_member"])
    response = client.post(reverse("tenant_members", args=["acme"]), {"email": "x@acme.test", "role": "admin"})
    assert response.status_code == 403
    assert not Membership.objects.filter(user__email="x@acme.test").exists()


def test_admin_cannot_remove_a_member_of_another_tenant(client, two_tenants):
    """Ids of other tenants' memberships are not found through this tenant's page."""
    from accounts.models import Membership

    client.force_login(two_tenants["acme_admin"])
    foreign = Membership.objects.get(user=two_tenants["globex_member"])
    response = client.post(reverse("tenant_members", args=["acme"]), {"remove": foreign.pk})
    assert response.status_code == 404
    assert Membership.objects.filter(pk=foreign.pk).exists()


def test_login_page_renders_with_csp_header(client, db):
    response = client.get(reverse("account_login"))
    assert response.status_code == 200
    assert "script-src 'self'" in response["Content-Security-Policy"]
