"""The platform's job kinds: export, import and a fan-out broadcast. Real work, no sleeps."""

from __future__ import annotations

import csv
import io
import logging
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.db import transaction
from django.utils import timezone

from accounts.models import Membership
from accounts.services import do_add_member, get_or_create_user

from . import services
from .conf import job_settings
from .jobs import DEFERRED, JobContext, JobError, job_kind
from .models import Job, JobState

logger = logging.getLogger(__name__)


# ------------------------------------------------------------------------------
# Export: the tenant's notifications to CSV, streamed chunk by chunk into media storage
# ------------------------------------------------------------------------------
EXPORT_HEADER = ["id", "created_at", "recipient", "category", "level", "title", "body", "link", "read_at"]


def _cell(value: Any) -> str:
    """A CSV cell that a spreadsheet will not run as a formula."""
    text = "" if value is None else (value.isoformat() if hasattr(value, "isoformat") else str(value))
    return "'" + text if text[:1] in ("=", "+", "-", "@") else text


@job_kind(
    "export",
    label="Export notifications",
    description="A CSV of the tenant's notifications (admins) or of your own (members).",
)
def export_notifications(ctx: JobContext) -> dict:
    """Write the notifications the owner may read to a CSV file, one chunk per query."""
    from notifications.models import Notification

    rows = Notification.objects.filter(tenant=ctx.tenant)
    if not Membership.objects.admins().filter(tenant=ctx.tenant, user=ctx.owner).exists():
        rows = rows.filter(recipient=ctx.owner)
    rows = rows.select_related("recipient").order_by("id")
    total = rows.count()
    ctx.progress(0, total, f"Exporting {total} notifications")
    filename = f"notifications-{ctx.tenant.slug}-{timezone.now():%Y%m%d-%H%M%S}.csv"
    path = ctx.output_path(filename)
    chunk_size = job_settings.EXPORT_CHUNK_SIZE
    done, last_id = 0, 0
    with open(path, "w", newline="", encoding="utf-8") as out:
        writer = csv.writer(out)
        writer.writerow(EXPORT_HEADER)
        while True:
            # Keyset pages: each chunk is one short query, whatever the table's size.
            chunk = list(rows.filter(id__gt=last_id)[:chunk_size])
            if not chunk:
                break
            writer.writerows(
                [
                    _cell(n.pk),
                    _cell(n.created_at),
                    _cell(n.recipient.email),
                    _cell(n.category),
                    _cell(n.level),
                    _cell(n.title),
                    _cell(n.body),
                    _cell(n.link),
                    _cell(n.read_at),
                ]
                for n in chunk
            )
            done += len(chunk)
            last_id = chunk[-1].pk
            ctx.progress(done, max(total, done), f"Wrote {done} of {max(total, done)} rows")
    return {"rows": done, "filename": filename, "bytes": path.stat().st_size}


# ------------------------------------------------------------------------------
# Import: add members from an uploaded CSV (email, role), row by row
# ------------------------------------------------------------------------------
IMPORT_HEADER = ["email", "role"]
MAX_REPORTED_ERRORS = 500


def upload_folder(tenant_id: int) -> Path:
    """Where uploaded import files wait for their job (never served)."""
    return Path(settings.MEDIA_ROOT) / "jobs" / str(tenant_id) / "uploads"


def read_import_rows(path: Path) -> list[list[str]]:
    """Parse the uploaded file into data rows, or fail the job with a message the admin can act on."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError as exc:
        raise JobError("The uploaded file is no longer available; upload it again.") from exc
    limit = job_settings.IMPORT_MAX_BYTES
    if len(raw) > limit:
        raise JobError(f"The file is too large ({len(raw) // 1024} KB); the limit is {limit // 1024} KB.")
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise JobError("The file is not a CSV text file (it is not UTF-8).") from exc
    if "\x00" in text:
        raise JobError("The file is not a CSV text file.")
    try:
        records = list(csv.reader(io.StringIO(text, newline="")))
    except csv.Error as exc:
        raise JobError(f"The file is not valid CSV: {exc}.") from exc
    if not records:
        raise JobError("The file is empty; the first line must be the header: email,role.")
    header = [cell.strip().lower() for cell in records[0]]
    if header != IMPORT_HEADER:
        raise JobError(f"The first line must be the header email,role (found: {','.join(records[0])[:80]}).")
    rows = records[1:]
    if len(rows) > job_settings.IMPORT_MAX_ROWS:
        raise JobError(f"The file has {len(rows)} rows; the limit is {job_settings.IMPORT_MAX_ROWS}.")
    return rows


@job_kind(
    "import_members",
    label="Import members",
    admin_only=True,
    description="Add members from a CSV file with the header email,role (role: admin or member).",
)
def import_members(ctx: JobContext) -> dict:
    """Validate each row, apply the good ones one transaction each, and report row errors."""
    rows = read_import_rows(Path(settings.MEDIA_ROOT) / ctx.params.get("upload", "missing"))
    total = len(rows)
    ctx.progress(0, total, f"Importing {total} rows")
    errors: list[dict[str, Any]] = []
    counts = {"added": 0, "updated": 0, "unchanged": 0}
    seen: dict[str, int] = {}
    for index, row in enumerate(rows):
        number = index + 2  # as a spreadsheet shows it: the header is row 1
        error = _import_row(ctx, row, number, seen, counts)
        if error:
            errors.append({"row": number, "email": (row[0].strip() if row else "")[:254], "error": error})
        ctx.progress(index + 1, total, f"Row {index + 1} of {total}")
    return {
        "rows": total,
        **counts,
        "error_count": len(errors),
        "errors": errors[:MAX_REPORTED_ERRORS],
        "filename": ctx.params.get("filename", ""),
    }


def _import_row(ctx: JobContext, row: list[str], number: int, seen: dict[str, int], counts: dict[str, int]) -> str:
    """Apply one row; the reason it was refused, or "" when it was applied."""
    if len(row) != 2:
        return f"expected 2 columns (email, role), found {len(row)}"
    email, role = row[0].strip().lower(), row[1].strip().lower()
    try:
        validate_email(email)
    except ValidationError:
        return "not a valid email address"
    if role not in Membership.Role.values:
        return f"role must be admin or member, not {role[:20]!r}"
    if email in seen:
        return f"duplicate of row {seen[email]}"
    seen[email] = number
    if email == ctx.owner.email.lower():
        return "you cannot change your own membership by import"
    try:
        with transaction.atomic():
            user, _ = get_or_create_user(email)
            previous = Membership.objects.filter(tenant=ctx.tenant, user=user).values_list("role", flat=True).first()
            do_add_member(ctx.tenant, user, role=role, actor=ctx.owner)
    except Exception:
        logger.exception("import job %s: row %s could not be applied", ctx.job.pk, number)
        return "could not be applied (nothing was changed for this row)"
    counts["added" if previous is None else ("unchanged" if previous == role else "updated")] += 1
    return ""


# ------------------------------------------------------------------------------
# Fan-out: notify every member of the tenant, in parallel batches (a chord)
# ------------------------------------------------------------------------------
@job_kind(
    "broadcast",
    label="Notify every member",
    admin_only=True,
    description="Send a notification to every member of the tenant, in parallel batches.",
    retry_on_crash=False,  # re-running would notify some members twice
)
def broadcast(ctx: JobContext) -> Any:
    """Split the member list into batches and run them in parallel; the chord callback ends the job."""
    from celery import chord, group

    from .tasks import finish_fanout, notify_batch

    title = str(ctx.params.get("title") or "").strip()[:200]
    if not title:
        raise JobError("A broadcast needs a title.")
    user_ids = list(Membership.objects.filter(tenant=ctx.tenant).order_by("user_id").values_list("user_id", flat=True))
    size = max(1, min(1000, int(ctx.params.get("batch_size") or job_settings.FANOUT_BATCH_SIZE)))
    batches = [user_ids[i : i + size] for i in range(0, len(user_ids), size)]
    ctx.progress(0, len(user_ids), f"Notifying {len(user_ids)} members in {len(batches)} parts")
    if not batches:
        return {"notified": 0, "parts": 0}
    job_id, tenant_id = ctx.job.pk, ctx.tenant.pk
    chord(group(notify_batch.s(job_id, tenant_id, batch) for batch in batches))(finish_fanout.s(job_id, tenant_id))
    return DEFERRED


def run_notify_batch(job_id: int, tenant_id: int, user_ids: list[int]) -> dict[str, int]:
    """One fan-out part: skip if the job stopped, else notify current members of the slice."""
    from notifications.services import notify

    job = Job.objects.select_related("tenant", "owner").filter(pk=job_id, tenant_id=tenant_id).first()
    if job is None or job.state != JobState.RUNNING or job.cancel_requested_at:
        return {"sent": 0, "failed": 0, "skipped": len(user_ids)}
    members = list(
        Membership.objects.filter(tenant_id=tenant_id, user_id__in=user_ids).values_list("user_id", flat=True)
    )
    try:
        sent = notify(
            job.tenant,
            members,
            category="general",
            title=job.params.get("title", "")[:200],
            body=job.params.get("body", "")[:5000],
            actor=job.owner,
        )
        failed = 0
    except Exception:
        logger.exception("fan-out job %s: a batch of %d failed", job_id, len(user_ids))
        sent, failed = 0, len(user_ids)
    services.add_job_progress(job_id, len(user_ids), "Notifying members")
    return {"sent": sent, "failed": failed, "skipped": 0}


def finish_fanout_job(results: list[dict[str, int]], job_id: int, tenant_id: int) -> str:
    """End a fan-out job once, from the sum of its parts."""
    job = Job.objects.select_related("tenant", "owner").filter(pk=job_id, tenant_id=tenant_id).first()
    if job is None:
        return "missing"
    sent = sum(r.get("sent", 0) for r in results)
    failed = sum(r.get("failed", 0) for r in results)
    summary = {"notified": sent, "failed": failed, "parts": len(results)}
    if job.cancel_requested_at:
        state, message, error = JobState.CANCELLED, f"Cancelled after notifying {sent}", ""
    elif failed and not sent:
        state, message, error = JobState.FAILED, "No batch could be sent", "Sending the notifications failed."
    else:
        state, message, error = JobState.SUCCEEDED, f"Notified {sent} members", ""
        if failed:
            message += f"; {failed} could not be notified"
    total = job.progress_total
    done = total if state == JobState.SUCCEEDED else job.progress_done
    services.finish_job(job, state, done=done, total=total, message=message, result=summary, error=error)
    return state
