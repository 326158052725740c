"""The benchmark's own database: created for one run and gone after it."""

import os

import pytest

from bench.run import BenchDatabase

SERVER_URL = os.environ.get("DATABASE_URL", "")


def test_by_default_the_suite_uses_a_sqlite_file_in_its_work_folder(tmp_path):
    """Tests that without a server URL the suite needs no database server, like `make run`."""
    database = BenchDatabase("", tmp_path)
    assert database.create() == f"sqlite:///{tmp_path / 'bench.sqlite3'}"
    database.drop()  # nothing to drop: the file goes with the work folder


@pytest.mark.skipif(not SERVER_URL.startswith("postgres"), reason="needs DATABASE_URL of a PostgreSQL server")
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
