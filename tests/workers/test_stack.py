"""Jobs through the real stack: a Celery worker process runs them, daphne carries their events."""

from __future__ import annotations

import csv
import io

import pytest
from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.files.uploadedfile import SimpleUploadedFile

from accounts.models import Membership
from notifications.models import Notification
from tests.support.processes import wait_for
from tests.workers.helpers import FINAL, client_for, durable_states, follow, make_notifications, wait_job_frame
from workers import services
from workers.conf import job_settings
from workers.models import Job, JobState

User = get_user_model()

pytestmark = [pytest.mark.stack]


def start(client, tenant, kind: str, data: dict | None = None) -> Job:
    before = set(Job.objects.values_list("id", flat=True))
    response = client.post(f"/t/{tenant.slug}/jobs/start/{kind}/", data or {})
    assert response.status_code == 302, response.content[:500]
    return Job.objects.exclude(id__in=before).get()


def test_export_streams_a_csv_with_live_progress_and_a_checked_download(live, celery_worker, cast):
    """The admin's export: ticks while it runs, one final state, the file holds every row."""
    make_notifications(cast.acme, [cast.alice, cast.bob], 3000)
    make_notifications(cast.globex, [cast.gina], 50, prefix="Globex secret")
    expected = Notification.objects.filter(tenant=cast.acme).count()  # with the "member joined" ones
    with live.socket(cast.admin) as sock:
        sock.wait_type("hello")
        client = client_for(cast.admin)
        job = start(client, cast.acme, "export")
        frames = follow(sock, job.pk)
    states = durable_states(frames)
    assert states == ["queued", "running", "succeeded"]
    assert all("stream" in f and f["offset"] > 0 for f in frames if f["type"] == "job.state")  # durable
    ticks = [f for f in frames if f["type"] == "job.progress"]
    assert ticks and all("stream" not in f and f["id"] is None for f in ticks)  # ephemeral
    assert ticks[-1]["data"]["done"] == expected == ticks[-1]["data"]["total"]
    final = frames[-1]["data"]
    assert final["percent"] == 100 and final["result"]["rows"] == expected
    assert final["download_url"] == f"/t/acme/jobs/{job.pk}/download/"

    response = client.get(final["download_url"])
    assert response.status_code == 200
    assert response["Content-Disposition"].startswith("attachment")
    rows = list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert rows[0][:3] == ["id", "created_at", "recipient"]
    assert len(rows) == expected + 1
    titles = {row[5] for row in rows[1:]}
    assert "Item 1" in titles and "Item 3000" in titles
    assert not any(t.startswith("Globex") for t in titles)
    first = next(row for row in rows if row[5] == "Item 1")
    assert first[6] == "'=SUM(A1:A2)" and first[2] == "alice@acme.test"  # formulas are neutralised
    # The file lives in media storage, outside any public URL.
    job.refresh_from_db()
    assert (settings.MEDIA_ROOT / job.result_file).is_file()
    # The owner hears of it from any page: a notification linking to the file.
    note = wait_for(
        lambda: Notification.objects.filter(tenant=cast.acme, recipient=cast.admin, category="jobs").first(),
        timeout=30,
        message="job-finished notification",
    )
    assert note.link == final["download_url"] and note.level == "success"


def upload(client, tenant, content: bytes, name: str = "members.csv") -> Job:
    return start(client, tenant, "import_members", {"file": SimpleUploadedFile(name, content, "text/csv")})


def test_import_applies_good_rows_and_reports_bad_ones_by_row_number(live, celery_worker, cast):
    content = (
        b"email,role\n"
        b"new.person@acme.test,member\n"  # row 2: added
        b"bob@acme.test,admin\n"  # row 3: role changed
        b"not-an-email,member\n"  # row 4
        b"carol@acme.test,owner\n"  # row 5: bad role
        b"NEW.person@acme.test,admin\n"  # row 6: duplicate of row 2
        b"dave@acme.test\n"  # row 7: one column
        b"erin@acme.test,admin\n"  # row 8: added as admin
    )
    with live.socket(cast.admin) as sock:
        sock.wait_type("hello")
        client = client_for(cast.admin)
        job = upload(client, cast.acme, content)
        frames = follow(sock, job.pk)
    final = frames[-1]["data"]
    assert final["state"] == "succeeded" and final["done"] == final["total"] == 7
    result = final["result"]
    assert (result["added"], result["updated"], result["error_count"]) == (2, 1, 4)
    assert [(e["row"], e["error"].split(" ")[0]) for e in result["errors"]] == [
        (4, "not"),
        (5, "role"),
        (6, "duplicate"),
        (7, "expected"),
    ]
    roles = dict(Membership.objects.filter(tenant=cast.acme).values_list("user__email", "role"))
    assert roles["new.person@acme.test"] == "member" and roles["erin@acme.test"] == "admin"
    assert roles["bob@acme.test"] == "admin"
    # A refused row wrote nothing: no user, no membership.
    assert not User.objects.filter(email__in=["carol@acme.test", "dave@acme.test"]).exists()
    # The summary page lists each refused row with its number.
    page = client.get(f"/t/acme/jobs/{job.pk}/").content.decode()
    assert "duplicate of row 2" in page and "not a valid email address" in page


@pytest.mark.parametrize(
    "content, message",
    [
        (b"\x89PNG\r\n\x1a\n\x00\x00binary", "not a CSV text file"),
        (b"name,email\nx,y@acme.test\n", "header email,role"),
    ],
)
def test_a_malformed_import_fails_with_a_clear_message(live, celery_worker, cast, content, message):
    with live.socket(cast.admin) as sock:
        sock.wait_type("hello")
        job = upload(client_for(cast.admin), cast.acme, content)
        final = follow(sock, job.pk)[-1]["data"]
    assert final["state"] == "failed" and message in final["error"]
    job.refresh_from_db()
    assert job.state == JobState.FAILED and job.traceback  # admins can read what happened


def test_an_import_larger_than_the_limit_fails_the_job(live, celery_worker, cast):
    limit = job_settings.IMPORT_MAX_BYTES
    content = b"email,role\n" + b"someone@acme.test,member\n" * (limit // 25 + 10)
    job = upload(client_for(cast.admin), cast.acme, content)
    wait_for(lambda: Job.objects.get(pk=job.pk).is_final, timeout=60, message="import to end")
    job.refresh_from_db()
    assert job.state == JobState.FAILED and "too large" in job.error


def test_fan_out_progress_adds_up_across_parallel_parts_and_ends_once(live, celery_worker, cast):
    """A broadcast to 63 members in batches of 10: seven parts, one bar reaching 100 %, one final state."""
    extra = [User(username=f"m{i}@acme.test", email=f"m{i}@acme.test") for i in range(60)]
    User.objects.bulk_create(extra)
    Membership.objects.bulk_create(
        [
            Membership(tenant=cast.acme, user=u)
            for u in User.objects.filter(email__startswith="m", email__endswith="@acme.test")
        ]
    )
    members = Membership.objects.filter(tenant=cast.acme).count()
    assert members == 63
    with live.socket(cast.admin) as sock:
        sock.wait_type("hello")
        job = services.do_start_job(
            cast.acme, cast.admin, "broadcast", {"title": "Office closed Friday", "body": "", "batch_size": 10}
        )
        frames = follow(sock, job.pk)
        trailing = sock.listen(1.0)
    ticks = [f["data"]["done"] for f in frames if f["type"] == "job.progress"]
    assert max(ticks) == members and len(ticks) >= 7
    states = durable_states(frames)
    assert states == ["queued", "running", "succeeded"]
    assert not [f for f in trailing if f["type"] == "job.state" and f["data"]["id"] == job.pk]  # exactly once
    final = frames[-1]["data"]
    assert final["percent"] == 100 and final["result"] == {"notified": members, "failed": 0, "parts": 7}
    got = Notification.objects.filter(tenant=cast.acme, title="Office closed Friday")
    assert got.count() == members and got.values("recipient").distinct().count() == members


def test_cancelling_a_running_export_stops_it_and_removes_the_partial_file(live, celery_worker, cast):
    make_notifications(cast.acme, [cast.alice], 20_000)
    with live.socket(cast.alice) as sock:
        sock.wait_type("hello")
        client = client_for(cast.alice)
        job = start(client, cast.acme, "export")
        wait_job_frame(sock, job.pk, lambda f: f["type"] == "job.progress" and f["data"]["done"] > 0)
        assert client.post(f"/t/acme/jobs/{job.pk}/cancel/").status_code == 302
        frames = follow(sock, job.pk, timeout=30)
    final = frames[-1]["data"]
    assert final["state"] == "cancelled" and final["done"] < 20_000
    assert "cancelling" in [f["data"]["message"].lower() for f in frames if f["type"] == "job.state"]
    job.refresh_from_db()
    folder = settings.MEDIA_ROOT / "jobs" / str(cast.acme.pk) / f"{job.pk}-{job.attempt}"
    assert not folder.exists() and job.result_file == ""
    assert client.get(f"/t/acme/jobs/{job.pk}/download/").status_code == 404


def test_cancelling_a_queued_job_means_it_never_runs(live, cast):
    """No worker listens on this queue: the job stays queued until it is cancelled, then never starts."""
    job = services.do_start_job(cast.acme, cast.alice, "export", queue="jobs-nobody-listens")
    with live.socket(cast.alice) as sock:
        sock.wait_type("hello")
        client_for(cast.admin).post(f"/t/acme/jobs/{job.pk}/cancel/")  # a tenant admin may cancel it
        final = wait_job_frame(sock, job.pk, lambda f: f["type"] == "job.state" and f["data"]["state"] in FINAL)
    assert final["data"]["state"] == "cancelled" and final["data"]["started_at"] is None
