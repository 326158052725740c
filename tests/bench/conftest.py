"""The PostgreSQL bench-database test is collected only when the suite runs on PostgreSQL (never skipped)."""

import os

collect_ignore = [] if os.environ.get("DATABASE_URL", "").startswith("postgres") else ["test_database_postgres.py"]
