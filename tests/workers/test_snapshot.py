"""The running jobs a socket is shown on connect: all of the tenant's for an admin, their own for a member."""

import pytest

from realtime.services import subscriptions_for
from workers.models import Job, JobState
from workers.services import active_jobs_snapshot

pytestmark = pytest.mark.django_db


def shown(user) -> list[tuple[str, int]]:
    return [(tenant, data["id"]) for _, tenant, data in active_jobs_snapshot(user, subscriptions_for(user))]


def test_a_socket_is_shown_the_active_jobs_its_user_may_see(cast, make_member):
    """Tests admins, members, another tenant, finished jobs and a user in both tenants."""
    mine = Job.objects.create(tenant=cast.acme, owner=cast.alice, kind="export", state=JobState.RUNNING)
    queued = Job.objects.create(tenant=cast.acme, owner=cast.bob, kind="export", state=JobState.QUEUED)
    Job.objects.create(tenant=cast.acme, owner=cast.alice, kind="export", state=JobState.SUCCEEDED)
    Job.objects.create(tenant=cast.acme, owner=cast.bob, kind="export", state=JobState.FAILED)
    elsewhere = Job.objects.create(tenant=cast.globex, owner=cast.gina, kind="export", state=JobState.RUNNING)

    assert shown(cast.admin) == [("acme", mine.pk), ("acme", queued.pk)]
    assert shown(cast.alice) == [("acme", mine.pk)]
    assert shown(cast.bob) == [("acme", queued.pk)]
    assert shown(cast.gina) == [("globex", elsewhere.pk)]
    make_member(cast.globex, user=cast.alice, role="admin")
    assert shown(cast.alice) == [("acme", mine.pk), ("globex", elsewhere.pk)]
    (_, _, payload), *_ = active_jobs_snapshot(cast.alice, subscriptions_for(cast.alice))
    assert payload["state"] == "running" and payload["owner"] == "alice@acme.test"


def test_a_user_without_a_tenant_is_shown_no_jobs(cast, make_user):
    """Tests that a user with no membership gets no job, whoever owns it."""
    Job.objects.create(tenant=cast.acme, owner=cast.alice, kind="export", state=JobState.RUNNING)
    assert shown(make_user("loner@nowhere.test")) == []
