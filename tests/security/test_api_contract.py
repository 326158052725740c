"""The HTTP API keeps its published contract: schemathesis, all checks, against a real server's document.

schemathesis reads /api/v1/openapi.json as the running server serves it and calls
every operation with examples, boundary values and random input, valid and invalid,
with and without credentials (a real API key, a real session with its CSRF token).
Every answer must be one the document lists, with the body it describes; a valid
request must be accepted and an invalid one refused.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.ws import session_cookie_for

pytestmark = pytest.mark.stack

ROOT = Path(__file__).resolve().parents[2]
# Per operation and phase; search longer with e.g. API_FUZZ_EXAMPLES=200 API_FUZZ_SEED=7.
MAX_EXAMPLES = int(os.environ.get("API_FUZZ_EXAMPLES", "10"))
SEED = os.environ.get("API_FUZZ_SEED", "15")


def test_every_operation_keeps_the_published_contract(live, make_tenant, make_member, tmp_path):
    """Tests the served OpenAPI document against the server's behaviour: zero schemathesis failures."""
    from django.middleware.csrf import _get_new_csrf_string

    from accounts.api_keys import do_create_api_key

    acme = make_tenant("acme")
    admin = make_member(acme, role="admin", email="admin@acme.test")
    make_member(acme, email="alice@acme.test")  # the document's request examples name her
    make_member(acme, email="bob@acme.test")
    _, key = do_create_api_key(acme, "contract")
    csrf = _get_new_csrf_string()
    config = tmp_path / "schemathesis.toml"
    config.write_text(
        f"""
[auth.openapi.ApiKeyAuth]
bearer = "{key}"

[auth.openapi.SessionAuth]
api_key = "{session_cookie_for(admin)}"

# Most generated requests name the caller's tenant, so they reach the views, not only the 404.
[dictionaries.tenants]
values = ["acme"]

[parameters]
"query.tenant" = {{ dictionary = "tenants", probability = 0.8 }}

# The API ignores query parameters it does not know (a cache-buster, a proxy's tag), as
# clients expect of HTTP; schemathesis would otherwise count that as accepting invalid input.
[generation]
allow-extra-parameters = false

# Rules no schema can state, answered 400 with messages per field: a recipient who is not
# a member of the key's tenant; a session caller's announcement without its tenant; an end
# before the start. And 422: the generated Idempotency-Key was used before with another
# body. Everything else a schema-valid request gets is checked as usual.
[[operations]]
include-path-regex = "^/api/v1/(notifications|announcements)$"
include-method = "POST"
checks.positive_data_acceptance.expected-statuses = ["2xx", "400", "401", "403", "404", "409", "422", "429"]

[[operations]]
include-path = "/api/v1/announcements/{{announcement_id}}"
include-method = "PATCH"
checks.positive_data_acceptance.expected-statuses = ["2xx", "400", "401", "403", "404", "409", "429"]
"""
    )
    result = subprocess.run(
        [
            sys.executable, "-m", "schemathesis.cli", "--config-file", str(config), "--no-color",
            "run", f"{live.http_url}/api/v1/openapi.json", "--checks", "all",
            "--max-examples", str(MAX_EXAMPLES), "--seed", SEED, "--workers", "1", "--request-timeout", "10",
        ],
        cwd=tmp_path,
        env={
            **os.environ,
            "SCHEMATHESIS_HOOKS": "tests.security.schemathesis_hooks",
            "PYTHONPATH": str(ROOT),
            "LIVEPLATFORM_FUZZ_CSRF": csrf,
        },
        capture_output=True,
        text=True,
        timeout=300,
    )  # fmt: skip
    (tmp_path / "schemathesis.out").write_text(result.stdout + result.stderr)
    assert result.returncode == 0, result.stdout[-20000:] + result.stderr[-3000:]
