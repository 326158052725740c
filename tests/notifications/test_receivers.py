"""Membership signals as producers: the tenant's admins hear who joined and who left."""

from __future__ import annotations

from accounts.services import do_add_member, do_remove_member
from notifications.models import Notification


def members_notifications(user) -> list[Notification]:
    return list(Notification.objects.filter(recipient=user, category="members").order_by("id"))


def test_a_new_member_notifies_the_admins_only(org, make_user, django_capture_on_commit_callbacks):
    newcomer = make_user("new@acme.test")
    before = len(members_notifications(org["admin"]))
    with django_capture_on_commit_callbacks(execute=True):
        do_add_member(org["acme"], newcomer)
    [joined] = members_notifications(org["admin"])[before:]
    assert joined.title == "new@acme.test joined Acme Corp"
    assert joined.link == "/t/acme/members/" and joined.tenant == org["acme"]
    assert members_notifications(org["alice"]) == [] and members_notifications(newcomer) == []
    # A role change is not a join.
    do_add_member(org["acme"], newcomer, role="admin")
    assert len(members_notifications(org["admin"])) == before + 1


def test_a_member_leaving_notifies_the_remaining_admins(org):
    from accounts.models import Membership

    before = len(members_notifications(org["admin"]))
    do_remove_member(Membership.objects.get(tenant=org["acme"], user=org["bob"]))
    [left] = members_notifications(org["admin"])[before:]
    assert left.title == "bob@acme.test left Acme Corp" and left.level == "warning"


def test_deleting_a_tenant_or_a_user_does_not_break(org):
    """Cascades fire post_delete per membership: no notification may point at deleted rows."""
    org["bob"].delete()
    assert members_notifications(org["admin"])[-1].title == "bob@acme.test left Acme Corp"
    org["acme"].delete()
    assert not Notification.objects.filter(tenant_id=org["acme"].pk).exists()
