"""Demo content: nothing active by default, so the demo admin's first publish is what members see."""

from __future__ import annotations


def seed() -> None:
    """Nothing to create: log in as admin@acme.test, open Announcements and publish one."""
    return None
