"""schemathesis hooks for tests/security/test_api_contract.py (loaded by the CLI through SCHEMATHESIS_HOOKS).

Session routes need Django's CSRF token on unsafe methods: the session cookie is the
``SessionAuth`` scheme (schemathesis adds or removes it as the document says); the
CSRF cookie and header ride along on every request, as a browser page sends them.
"""

from __future__ import annotations

import os

import schemathesis


@schemathesis.hook
def before_call(context, case, kwargs) -> None:
    """Send the CSRF cookie and header a logged-in page would send."""
    token = os.environ["LIVEPLATFORM_FUZZ_CSRF"]
    case.headers = {**(case.headers or {}), "X-CSRFToken": token}
    case.cookies = {**(case.cookies or {}), "csrftoken": token}
