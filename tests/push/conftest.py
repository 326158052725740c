"""Fixtures of the push tests: the notifications tests' two tenants."""

from tests.notifications.conftest import org  # noqa: F401
