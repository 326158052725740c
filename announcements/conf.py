"""Settings of the announcements app: one object, a property per setting, each with a default."""

from __future__ import annotations

import os

from django.conf import settings


class AppSettings:
    @property
    def RECONCILE_SECONDS(self) -> float:
        """How often beat checks for announcements due to start or end (the safety net for eta tasks)."""
        value = getattr(settings, "ANNOUNCEMENTS_RECONCILE_SECONDS", None)
        if value is None:
            value = os.environ.get("ANNOUNCEMENTS_RECONCILE_SECONDS") or 5
        return float(value)


app_settings = AppSettings()
