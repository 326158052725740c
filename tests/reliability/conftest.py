"""The fault tests' fixtures: a stack of their own and the people on it.

The PostgreSQL outage test is collected only when the suite runs on PostgreSQL (never skipped).
"""

import os

import pytest

from tests.reliability.harness import PER_TENANT, OwnStack, make_cast

collect_ignore = [] if os.environ.get("DATABASE_URL", "").startswith("postgres") else ["test_faults_postgres.py"]


@pytest.fixture
def cast(transactional_db, make_tenant, make_member):
    """Two tenants of PER_TENANT members each, an admin and an API key per tenant."""
    return make_cast(make_tenant, make_member, PER_TENANT)


@pytest.fixture
def stack(subprocess_env):
    """Redis, daphne and a Celery worker of the test's own."""
    own = OwnStack(subprocess_env)
    yield own
    own.stop()


@pytest.fixture
def relaying_stack(subprocess_env):
    """A stack with beat, as in production: its outbox relay publishes what a refused publish left."""
    own = OwnStack(subprocess_env, beat=True)
    yield own
    own.stop()
