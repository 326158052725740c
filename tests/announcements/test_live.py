"""Announcements through the real stack: daphne, Redis and sockets opened like a browser's."""

import pytest
from django.test import Client

from announcements import services
from announcements.models import Announcement
from tests.support.ws import positions_token

pytestmark = [pytest.mark.stack]


def published(sock, announcement_id, event_type="announcement.published", timeout=10):
    return sock.wait_for(lambda f: f["type"] == event_type and f["data"].get("id") == announcement_id, timeout)


def active_ids(frame):
    assert frame["type"] == "announcement.active"
    return [item["id"] for item in frame["data"]["announcements"]]


def test_platform_announcement_reaches_every_tenant_once_per_socket(live, people):
    """One platform publish: users of both tenants, of both at once, and of none each get it exactly once."""
    names = ("alice", "gina", "pat", "loner", "acme_admin")
    sockets = {name: live.socket(people[name]) for name in names}
    try:
        for sock in sockets.values():
            sock.wait_type("hello")
            sock.wait_type("announcement.active")
        announcement = services.do_publish_announcement(
            actor=people["staff"], scope="platform", title="Platform maintenance", severity="warning"
        )
        for name, sock in sockets.items():
            frame = published(sock, announcement.pk)
            assert frame["data"]["title"] == "Platform maintenance" and frame["data"]["scope"] == "platform", name
        for name, sock in sockets.items():
            again = [f for f in sock.drain(0.5) if f["type"].startswith("announcement.")]
            assert again == [], name
            assert len(sock.durable("announcement.published")) == 1, name
    finally:
        for sock in sockets.values():
            sock.close()


def test_tenant_announcement_reaches_only_its_tenant_and_admins_only_only_admins(live, people):
    with (
        live.socket(people["alice"]) as alice,
        live.socket(people["acme_admin"]) as admin,
        live.socket(people["pat"]) as pat,
        live.socket(people["gina"]) as gina,
    ):
        for sock in (alice, admin, pat, gina):
            sock.wait_type("announcement.active")
        everyone = services.do_publish_announcement(actor=people["acme_admin"], tenant=people["acme"], title="Acme")
        admins = services.do_publish_announcement(
            actor=people["acme_admin"], tenant=people["acme"], title="Admins only", audience="admins"
        )
        for sock in (alice, admin, pat):
            assert published(sock, everyone.pk)["tenant"] == "acme"
        assert published(admin, admins.pk)["data"]["audience"] == "admins"
        for sock in (alice, pat, gina):
            assert [f for f in sock.drain(0.5) if f["type"].startswith("announcement.")] == []
        assert gina.durable() == []


def test_edit_changes_in_place_and_end_removes_live(live, people):
    announcement = services.do_publish_announcement(actor=None, tenant=people["acme"], title="Version 1")
    with live.socket(people["alice"]) as alice:
        assert active_ids(alice.wait_type("announcement.active")) == [announcement.pk]
        services.do_update_announcement(announcement, actor=people["acme_admin"], changes={"title": "Version 2"})
        assert published(alice, announcement.pk, "announcement.updated")["data"]["title"] == "Version 2"
        services.do_end_announcement(announcement, actor=people["acme_admin"])
        assert published(alice, announcement.pk, "announcement.ended")["data"]["reason"] == "ended"


def test_dismissal_syncs_between_tabs_and_holds_on_other_devices_and_after_reconnect(live, people):
    """Dismissing in one tab removes it from the others at once; no later connection shows it again."""
    announcement = services.do_publish_announcement(actor=None, tenant=people["acme"], title="Dismiss me")
    other = services.do_publish_announcement(actor=None, tenant=people["acme"], title="Keep me")
    with live.socket(people["alice"]) as tab1, live.socket(people["alice"]) as tab2, live.socket(people["bob"]) as bob:
        for sock in (tab1, tab2, bob):
            assert sorted(active_ids(sock.wait_type("announcement.active"))) == sorted([announcement.pk, other.pk])
        browser = Client()
        browser.force_login(people["alice"])
        assert browser.post(f"/api/v1/announcements/{announcement.pk}/dismiss").status_code == 204
        for tab in (tab1, tab2):
            assert published(tab, announcement.pk, "announcement.dismissed")["data"]["dismissable"] is True
        assert [f for f in bob.drain(0.5) if f["type"] == "announcement.dismissed"] == []
        # The position a tab held just before the dismissal reached it.
        dismissed = tab2.durable("announcement.dismissed")[0]
        resume_from = positions_token(tab2.frames[: tab2.frames.index(dismissed)])
    # Another device, and a reconnect of a tab that missed the event: neither shows it again.
    with live.socket(people["alice"]) as phone:
        assert active_ids(phone.wait_type("announcement.active")) == [other.pk]
    with live.socket(people["alice"], positions=resume_from) as reconnected:
        assert published(reconnected, announcement.pk, "announcement.dismissed")
        assert active_ids(reconnected.wait_type("announcement.active")) == [other.pk]
    page = Client()
    page.force_login(people["alice"])
    html = page.get("/t/acme/").content.decode()
    # Banners: the home page's recent activity may still say it was announced.
    assert f'data-announcement-id="{other.pk}"' in html
    assert f'data-announcement-id="{announcement.pk}"' not in html


def test_reconnecting_socket_catches_up_on_what_happened_while_it_was_offline(live, people):
    """A socket that was away gets the missed events by replay, then the full list to reconcile with."""
    ended_while_away = services.do_publish_announcement(actor=None, tenant=people["acme"], title="Old news")
    with live.socket(people["bob"]) as bob:
        assert active_ids(bob.wait_type("announcement.active")) == [ended_while_away.pk]
        positions = positions_token(bob.frames[:1])  # the hello frame: each stream's position at connect
    services.do_end_announcement(ended_while_away, actor=None)
    new = services.do_publish_announcement(actor=None, tenant=people["acme"], title="Fresh", severity="critical")
    with live.socket(people["bob"], positions=positions) as bob:
        assert published(bob, ended_while_away.pk, "announcement.ended")
        assert published(bob, new.pk)["data"]["dismissable"] is False
        assert active_ids(bob.wait_type("announcement.active")) == [new.pk]
    assert Announcement.objects.get(pk=ended_while_away.pk).state == "ended"
