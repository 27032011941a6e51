"""annota as real processes: the main job, prompts on a terminal, concurrent runs, kill -9."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time

import pexpect
import pytest
import sqlalchemy as sa

from annota.config import Settings
from annota.server.schema import migrate as migrations
from annota.server.schema.history import history
from tests.conftest import Annota, make_env, sqlalchemy_url

HEAD = history().head.revision
R_SUGGESTIONS, R_STATUS = "85fb5a1c553f", "95afe52a5067"


def current_of(annota: Annota) -> str | None:
    return migrations.status(Settings.from_env(annota.env)).current


def test_the_main_job_on_the_embedded_default(tmp_path):
    annota = Annota(make_env(tmp_path, None))  # no ANNOTA_DATABASE_URL: SQLite in ANNOTA_HOME
    migrate = annota.run("server", "database", "migrate")
    assert migrate.returncode == 0, migrate.stderr
    assert (tmp_path / "home" / "annota.db").is_file()
    revisions = annota.run("server", "database", "revisions")
    assert revisions.returncode == 0
    assert f"* {HEAD}" in re.sub(" +", " ", revisions.stdout)
    assert "up to date" in revisions.stdout


def test_read_only_commands_do_not_import_the_heavy_stack(tmp_path):
    annota = Annota(make_env(tmp_path, None))
    for args in (["--help"], ["server", "database", "revisions", "--json"],
                 ["server", "database", "current"]):
        result = subprocess.run(
            [sys.executable, "-X", "importtime", "-m", "annota", *args],
            env=annota.env, capture_output=True, text=True, timeout=60,
        )
        assert result.returncode == 0, result.stderr
        imported = {line.split("|")[-1].strip().split(".")[0]
                    for line in result.stderr.splitlines() if line.startswith("import time:")}
        assert "click" in imported
        assert not imported & {"sqlalchemy", "alembic", "psycopg", "rich", "filelock"}, args


def spawn(annota: Annota, *args: str) -> pexpect.spawn:
    return pexpect.spawn(sys.executable, ["-m", "annota", *args], env=annota.env,
                         encoding="utf-8", timeout=60)


def test_a_downgrade_asks_on_a_terminal(sqlite_annota):
    sqlite_annota.run("server", "database", "migrate")
    child = spawn(sqlite_annota, "server", "database", "migrate", "--revision", "1.7")
    child.expect(r"LOSES DATA")
    child.expect(r"Downgrade \d+ revisions, \d+ of which lose data\? \[y/N\]")
    child.sendline("n")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 1 and "cancelled" in child.before
    assert current_of(sqlite_annota) == HEAD

    child = spawn(sqlite_annota, "server", "database", "migrate", "--revision", "1.7")
    child.expect(r"\[y/N\]")
    child.sendline("y")
    child.expect(r"Backed up the SQLite database to ")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0
    assert current_of(sqlite_annota) == history().resolve("1.7")


def test_two_concurrent_migrations_end_at_head(annota):
    processes = [annota.popen("server", "database", "migrate") for _ in range(2)]
    outputs = [p.communicate(timeout=120)[0] for p in processes]
    assert [p.returncode for p in processes] == [0, 0], outputs
    applied = [out.count("Applied ") for out in outputs]
    assert sorted(applied) == [0, len(history().revisions)], outputs
    assert any("Nothing to do" in out for out in outputs)
    assert current_of(annota) == HEAD


def bulk_responses(annota: Annota, users: int, records: int) -> int:
    """Fill the 1.1 schema with users x records responses, fast, in SQL."""
    db = sa.create_engine(sqlalchemy_url(annota.env["ANNOTA_DATABASE_URL"]))
    sqlite = db.dialect.name == "sqlite"
    new_id = "lower(hex(randomblob(16)))" if sqlite else "gen_random_uuid()"
    now = "'2024-01-01 00:00:00'"
    series = ("WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {}) "
              "SELECT {} FROM n") if sqlite else "SELECT {1} FROM generate_series(1, {0}) AS n(i)"
    with db.begin() as connection:
        run = connection.exec_driver_sql
        run("INSERT INTO workspaces (id, name, inserted_at, updated_at) "
            f"VALUES ({new_id}, 'ws', {now}, {now})")
        run("INSERT INTO datasets (id, name, status, workspace_id, inserted_at, updated_at) "
            f"SELECT {new_id}, 'ds', 'ready', id, {now}, {now} FROM workspaces")
        run("INSERT INTO users (id, first_name, username, role, api_key, password_hash, "
            "inserted_at, updated_at) " + series.format(
                users, f"{new_id}, 'u', 'u' || i, 'annotator', 'k' || i, 'x', {now}, {now}"))
        run("INSERT INTO records (id, fields, dataset_id, inserted_at, updated_at) "
            + series.format(records, f"{new_id}, '{{\"text\": \"t\"}}', "
                            f"(SELECT id FROM datasets), {now}, {now}"))
        run("INSERT INTO responses (id, \"values\", submitted, record_id, user_id, inserted_at,"
            f" updated_at) SELECT {new_id}, '{{\"label\": \"a\"}}', true, r.id, u.id, {now},"
            f" {now} FROM records r CROSS JOIN users u")
        count = connection.exec_driver_sql("SELECT COUNT(*) FROM responses").scalar_one()
    db.dispose()
    return count


@pytest.mark.slow
def test_a_migration_killed_mid_way_is_completed_by_a_rerun(annota):
    assert annota.run("server", "database", "migrate", "-r", R_SUGGESTIONS).returncode == 0
    count = bulk_responses(annota, users=300, records=1000)
    process = annota.popen("server", "database", "migrate")
    for line in process.stdout:  # kill -9 while the row-transforming revision runs
        if line.startswith(f"Applying {R_STATUS}"):
            time.sleep(0.3)
            os.kill(process.pid, signal.SIGKILL)
            break
    process.wait(timeout=60)
    assert process.returncode == -signal.SIGKILL
    # each revision is one transaction: the interrupted one left nothing behind
    assert current_of(annota) == R_SUGGESTIONS

    rerun = annota.run("server", "upgrade", "--exclude", "search", timeout=300)
    assert rerun.returncode == 0, rerun.stderr
    assert current_of(annota) == HEAD
    db = sa.create_engine(sqlalchemy_url(annota.env["ANNOTA_DATABASE_URL"]))
    with db.connect() as connection:
        statuses = connection.exec_driver_sql(
            "SELECT status, COUNT(*) FROM responses GROUP BY status").all()
    db.dispose()
    assert statuses == [("submitted", count)]


def test_check_wait_returns_once_the_schema_is_migrated(annota):
    started = time.monotonic()
    waiting = subprocess.Popen(
        [sys.executable, "-m", "annota", "server", "database", "check", "--wait", "90"],
        env=annota.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    time.sleep(1.5)
    assert waiting.poll() is None  # still waiting: the database is empty
    assert annota.run("server", "database", "migrate").returncode == 0
    out, err = waiting.communicate(timeout=60)
    assert waiting.returncode == 0, err
    assert "up to date" in out
    assert time.monotonic() - started < 60


def test_check_wait_gives_up_with_the_state_code(tmp_path):
    annota = Annota(make_env(tmp_path, "postgresql://a:Sup3r-s3cret@127.0.0.1:1/x"))
    started = time.monotonic()
    result = annota.run("server", "database", "check", "--wait", "2")
    assert result.returncode == 5
    assert 2 <= time.monotonic() - started < 30
    assert "Sup3r-s3cret" not in result.stderr
