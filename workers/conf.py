"""The workers app's settings: one object, a property per setting, each with a default.

Override any of them in Django settings with ``JOBS = {"STALE_AFTER_SECONDS": 30, ...}``.

The crash bound: a job whose worker died (kill -9, OOM, lost machine) stops writing
its heartbeat. The reaper (``workers.tasks.reap_stale_jobs``, run by beat every
``REAP_INTERVAL_SECONDS``) re-queues a running job whose heartbeat is older than
``STALE_AFTER_SECONDS`` (up to ``CRASH_RETRIES`` times, then marks it failed). So a
crashed job leaves ``running`` within ``STALE_AFTER_SECONDS + REAP_INTERVAL_SECONDS``.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings


class JobSettings:
    """Typed access to ``settings.JOBS`` with defaults."""

    def _get(self, name: str, default: Any) -> Any:
        return getattr(settings, "JOBS", {}).get(name, default)

    @property
    def HEARTBEAT_SECONDS(self) -> float:
        """How often a running job's worker stamps ``heartbeat_at`` (a thread beside the task)."""
        return float(self._get("HEARTBEAT_SECONDS", 5.0))

    @property
    def STALE_AFTER_SECONDS(self) -> float:
        """A running job without a heartbeat for this long is presumed dead."""
        return float(self._get("STALE_AFTER_SECONDS", 60.0))

    @property
    def REAP_INTERVAL_SECONDS(self) -> float:
        """How often beat runs the reaper."""
        return float(self._get("REAP_INTERVAL_SECONDS", 15.0))

    @property
    def CRASH_RETRIES(self) -> int:
        """How many times a job whose worker died is re-queued before it is marked failed."""
        return int(self._get("CRASH_RETRIES", 1))

    @property
    def UNSENT_GIVE_UP_SECONDS(self) -> float:
        """A job whose task could not reach the broker (Redis down) is failed after this long queued."""
        return float(self._get("UNSENT_GIVE_UP_SECONDS", 3600.0))

    @property
    def PROGRESS_MIN_INTERVAL(self) -> float:
        """At most one progress update per this many seconds per job (0.1 = 10/s)."""
        return float(self._get("PROGRESS_MIN_INTERVAL", 0.1))

    @property
    def CANCEL_POLL_SECONDS(self) -> float:
        """``check_cancelled()`` reads the row at most this often."""
        return float(self._get("CANCEL_POLL_SECONDS", 0.25))

    @property
    def EXPORT_CHUNK_SIZE(self) -> int:
        """Rows fetched per database round trip by exports (and one progress tick per chunk)."""
        return int(self._get("EXPORT_CHUNK_SIZE", 500))

    @property
    def IMPORT_MAX_BYTES(self) -> int:
        """The largest CSV a tenant admin may upload for an import."""
        return int(self._get("IMPORT_MAX_BYTES", 2 * 1024 * 1024))

    @property
    def IMPORT_MAX_ROWS(self) -> int:
        """The most rows one import may hold."""
        return int(self._get("IMPORT_MAX_ROWS", 20_000))

    @property
    def FANOUT_BATCH_SIZE(self) -> int:
        """Members per subtask of a fan-out job."""
        return int(self._get("FANOUT_BATCH_SIZE", 100))


job_settings = JobSettings()
