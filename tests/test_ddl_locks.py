"""DDL that never queues for long on a busy PostgreSQL: each revision runs with a lock
timeout, is rolled back and tried again with backoff, and in the end fails naming the
session that blocked it, with the database at the previous revision."""

from __future__ import annotations

import threading
import time

import pytest
import sqlalchemy as sa

from tests.conftest import sqlalchemy_url

BEFORE = "2dc006381611"  # 2.0's jsonb revision; the next one indexes records (SHARE lock)
NEXT = "0901a4f98754"


@pytest.fixture
def at_before(pg_annota, postgres_url):
    migrated = pg_annota.invoke("server", "database", "migrate", "--revision", BEFORE)
    assert migrated.exit_code == 0, migrated.output
    db = sa.create_engine(sqlalchemy_url(postgres_url),
                          connect_args={"application_name": "the-blocker"})
    yield db
    db.dispose()


def revision(db: sa.Engine) -> str:
    with db.connect() as connection:
        return connection.exec_driver_sql("SELECT version_num FROM alembic_version").scalar()


def test_a_blocked_revision_is_retried_then_fails_naming_the_blocker(pg_annota, at_before):
    blocker = at_before.connect()
    blocker.exec_driver_sql("LOCK TABLE records IN ROW EXCLUSIVE MODE")  # an open writer
    pid = blocker.exec_driver_sql("SELECT pg_backend_pid()").scalar()
    try:
        started = time.monotonic()
        result = pg_annota.run("server", "database", "migrate",
                               ANNOTA_MIGRATION_LOCK_TIMEOUT="0.3",
                               ANNOTA_MIGRATION_RETRIES="2", timeout=120)
        took = time.monotonic() - started
        assert revision(at_before) == BEFORE  # nothing past the blocked revision
    finally:
        blocker.rollback()
        blocker.close()
    assert result.returncode == 6, result.stderr
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith("Error: ") and NEXT in line and f"stays at {BEFORE}" in line
    assert f"pid {pid}" in line and "'the-blocker'" in line and "3 times" in line
    assert result.stdout.count("trying again") == 2
    assert took < 30  # 3 tries of 0.3 s and backoffs of 0.5 s and 1 s, not a long queue
    # once the writer is gone, the same command finishes the job
    again = pg_annota.run("server", "database", "migrate", ANNOTA_MIGRATION_LOCK_TIMEOUT="0.3")
    assert again.returncode == 0, again.stderr
    assert f"Applied {NEXT}" in again.stdout


def test_a_revision_blocked_for_a_moment_succeeds_on_a_retry(pg_annota, at_before):
    blocker = at_before.connect()
    blocker.exec_driver_sql("LOCK TABLE records IN ROW EXCLUSIVE MODE")

    def release() -> None:
        time.sleep(1.5)
        blocker.rollback()
        blocker.close()

    releaser = threading.Thread(target=release)
    releaser.start()
    try:
        result = pg_annota.run("server", "database", "migrate",
                               ANNOTA_MIGRATION_LOCK_TIMEOUT="0.3",
                               ANNOTA_MIGRATION_RETRIES="6", timeout=120)
    finally:
        releaser.join()
    assert result.returncode == 0, result.stderr
    assert "trying again" in result.stdout and f"Applied {NEXT}" in result.stdout
    assert revision(at_before) != BEFORE


def test_no_lock_timeout_is_left_on_the_session_or_the_database(pg_annota, at_before):
    """The timeouts are the migration's session settings, never the database's."""
    assert pg_annota.invoke("server", "database", "migrate").exit_code == 0
    with at_before.connect() as connection:
        assert connection.exec_driver_sql("SHOW lock_timeout").scalar() == "0"
        assert connection.exec_driver_sql("SHOW statement_timeout").scalar() == "0"
