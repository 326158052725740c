"""``python -m bench --database``: a database of the suite's own on a PostgreSQL server, dropped after.

Collected only when the suite runs on PostgreSQL (tests/bench/conftest.py); the SQLite
default is what ``test_smoke.py`` runs.
"""

import os

from bench.run import BenchDatabase

SERVER_URL = os.environ["DATABASE_URL"]


def test_on_postgresql_the_suite_creates_its_own_database_and_drops_it(tmp_path):
    """Tests that --database leaves the server's other databases alone and removes its own at the end."""
    import psycopg

    server = SERVER_URL.replace("postgres://", "postgresql://", 1)
    database = BenchDatabase(SERVER_URL, tmp_path)
    url = database.create()
    try:
        assert url.rsplit("/", 1)[1] == database.name != SERVER_URL.rsplit("/", 1)[1]
        with psycopg.connect(url.replace("postgres://", "postgresql://", 1)) as conn:
            conn.execute("CREATE TABLE probe (id int)")  # a database of its own, writable
    finally:
        database.drop()
    with psycopg.connect(server, autocommit=True) as conn:
        names = {row[0] for row in conn.execute("SELECT datname FROM pg_database")}
    assert database.name not in names
    assert SERVER_URL.rsplit("/", 1)[1] in names
