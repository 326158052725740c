"""Only the owner and the tenant's admins see a job, its events and its file; others get 404 and silence."""

from __future__ import annotations

import pytest

from tests.support.stream_log import from_the_start, streams_of
from tests.workers.helpers import client_for, follow, make_notifications
from workers import services
from workers.models import Job, JobState

pytestmark = [pytest.mark.stack]


def job_frames(frames: list[dict]) -> list[dict]:
    return [f for f in frames if f["type"].startswith("job.")]


def test_another_member_and_another_tenant_see_neither_the_job_nor_its_events_nor_its_file(live, celery_worker, cast):
    make_notifications(cast.acme, [cast.alice], 300)
    with (
        live.socket(cast.alice) as alice,
        live.socket(cast.admin) as admin,
        live.socket(cast.bob) as bob,
        live.socket(cast.gina) as gina,
    ):
        for sock in (alice, admin, bob, gina):
            sock.wait_type("hello")
        job = Job.objects.get(pk=services.do_start_job(cast.acme, cast.alice, "export").pk)
        assert follow(alice, job.pk)[-1]["data"]["state"] == "succeeded"
        assert follow(admin, job.pk)[-1]["data"]["state"] == "succeeded"  # tenant admins see every job
        assert job_frames(bob.drain(0.5)) == [] and job_frames(gina.drain(0.5)) == []
    # Nor by replay after a reconnect, from the start of every stream: theirs, and alice's and the
    # admins' (forged): the durable job events are not theirs.
    for user in (cast.bob, cast.gina):
        everything = from_the_start(streams_of(users=[user, cast.alice], tenants=[cast.acme, cast.globex]))
        with live.socket(user, positions=everything) as again:
            again.wait_type("hello")
            assert job_frames(again.drain(0.5)) == []

    job.refresh_from_db()
    base = f"/t/acme/jobs/{job.pk}/"
    owner, admin_client = client_for(cast.alice), client_for(cast.admin)
    assert owner.get(f"{base}download/").status_code == 200
    assert admin_client.get(f"{base}download/").status_code == 200
    for outsider in (client_for(cast.bob), client_for(cast.gina)):
        assert outsider.get(base).status_code == 404
        assert outsider.get(f"{base}download/").status_code == 404
        assert outsider.post(f"{base}retry/").status_code == 404
        assert outsider.get(f"/api/v1/jobs/{job.pk}", {"tenant": "acme"}).status_code == 404
        listing = outsider.get("/api/v1/jobs", {"tenant": "acme"})  # bob: his own jobs; gina: 404
        assert listing.status_code == 404 or job.pk not in [j["id"] for j in listing.json()]
    # Gina cannot reach it through her own tenant either, and the file has no public URL.
    gina = client_for(cast.gina)
    assert gina.get(f"/t/globex/jobs/{job.pk}/download/").status_code == 404
    assert gina.get(f"/media/{job.result_file}").status_code == 404
    jobs_table = client_for(cast.bob).get("/t/acme/jobs/").content.decode().split('id="jobs"')[1].split("</table>")[0]
    assert "Export notifications" not in jobs_table


def test_members_cannot_start_admin_only_kinds_or_cancel_others_jobs(db, cast):
    bob = client_for(cast.bob)
    assert bob.post("/t/acme/jobs/start/import_members/").status_code == 404
    assert bob.post("/t/acme/jobs/start/broadcast/", {"title": "hi"}).status_code == 404
    job = Job.objects.create(tenant=cast.acme, owner=cast.alice, kind="export", task_id="t")
    assert bob.post(f"/t/acme/jobs/{job.pk}/cancel/").status_code == 404
    assert Job.objects.get(pk=job.pk).state == JobState.QUEUED


def test_the_traceback_is_for_admins_and_the_message_for_the_owner(db, cast):
    job = Job.objects.create(
        tenant=cast.acme,
        owner=cast.alice,
        kind="export",
        state=JobState.FAILED,
        error="The job failed unexpectedly (RuntimeError).",
        traceback="Traceback (most recent call last):\n  secret internals",
    )
    owner_page = client_for(cast.alice).get(f"/t/acme/jobs/{job.pk}/").content.decode()
    admin_page = client_for(cast.admin).get(f"/t/acme/jobs/{job.pk}/").content.decode()
    assert "The job failed unexpectedly" in owner_page and "secret internals" not in owner_page
    assert "secret internals" in admin_page


def test_the_owner_retries_a_failed_job_as_a_new_attempt(db, cast, monkeypatch, django_capture_on_commit_callbacks):
    sent = []
    monkeypatch.setattr(services, "_send_task", lambda job, queue=None: sent.append(job.pk))
    failed = Job.objects.create(
        tenant=cast.acme, owner=cast.alice, kind="export", params={"note": "x"}, state=JobState.FAILED
    )
    with django_capture_on_commit_callbacks(execute=True):
        response = client_for(cast.alice).post(f"/t/acme/jobs/{failed.pk}/retry/")
    assert response.status_code == 302
    retry = Job.objects.get(retry_of=failed)
    assert retry.state == JobState.QUEUED and retry.params == {"note": "x"} and sent == [retry.pk]
    done = Job.objects.create(tenant=cast.acme, owner=cast.alice, kind="export", state=JobState.SUCCEEDED)
    client_for(cast.alice).post(f"/t/acme/jobs/{done.pk}/retry/")
    assert not Job.objects.filter(retry_of=done).exists()
