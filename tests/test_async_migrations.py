"""Async migrations: immediate by default, scheduled on request, errors and retries."""

from __future__ import annotations

import json
from datetime import datetime

import sqlalchemy as sa

from annota.config import Settings
from annota.server.schema import async_migrations as am
from annota.server.schema import migrate as migrations
from tests.conftest import Annota
from tests.schema_tools import insert_many

NAME = "responses_record_id_status_index"
NOW = datetime(2024, 1, 1)
INDEX = "ix_responses_record_id_status"


def indexes(db: sa.Engine, table: str) -> set[str]:
    with db.connect() as connection:
        return {i["name"] for i in sa.inspect(connection).get_indexes(table)}


def valid(db: sa.Engine, index: str) -> bool | None:
    with db.connect() as connection:
        return connection.execute(sa.text(
            "SELECT i.indisvalid FROM pg_class c JOIN pg_index i ON i.indexrelid = c.oid "
            "WHERE c.relname = :n"), {"n": index}).scalar_one_or_none()


def listed(annota: Annota) -> dict[str, dict]:
    result = annota.invoke("server", "database", "async-migrations", "list", "--json")
    assert result.exit_code == 0, result.output
    return {row["name"]: row for row in json.loads(result.stdout)}


def test_runs_during_migrate_by_default(annota, settings, db):
    migrations.migrate(settings)
    row = listed(annota)[NAME]
    assert (row["status"], row["attempts"], row["error"]) == ("FINISHED", 1, None)
    assert INDEX in indexes(db, "responses")
    if db.dialect.name == "postgresql":
        assert valid(db, INDEX) is True
    # and the downgrade takes it away again
    migrations.migrate(settings, "4700fbf00e8f", confirm=lambda plan: True, backup=False)
    assert INDEX not in indexes(db, "responses")
    assert NAME not in listed(annota)


def test_scheduled_when_allowed_then_run_by_command(settings, db, env):
    env = {**env, "ANNOTA_ALLOW_SCHEDULED_MIGRATIONS": "true"}
    annota = Annota(env)
    # release 2.3's gate waits for the index 2.2 scheduled: the schema stops before it
    assert annota.invoke("server", "database", "migrate").exit_code == 16
    rows = listed(annota)
    assert rows[NAME]["status"] == "SCHEDULED"
    scheduled = sum(row["status"] == "SCHEDULED" for row in rows.values())
    assert scheduled == len(rows)  # every async migration of the history waits
    assert INDEX not in indexes(db, "responses")
    current = annota.invoke("server", "database", "current")
    assert f"async migrations: {scheduled} SCHEDULED" in current.stdout
    check = annota.invoke("server", "database", "check")
    assert check.exit_code == 3 and f"async migrations: {scheduled} SCHEDULED" in check.stderr

    ran = annota.invoke("server", "database", "async-migrations", "run")
    assert ran.exit_code == 0 and f"{NAME}: FINISHED" in ran.stdout
    assert INDEX in indexes(db, "responses")
    assert "async migrations" not in annota.invoke("server", "database", "current").stdout
    assert annota.invoke("server", "database", "migrate").exit_code == 0
    assert annota.invoke("server", "database", "check").exit_code == 0


def test_a_failed_async_migration_shows_error_and_succeeds_on_retry(annota, settings, db):
    migrations.migrate(settings)
    postgres = db.dialect.name == "postgresql"
    with db.begin() as connection:
        dataset = _dataset(connection)
        insert_many(connection, "records", [
            {"fields": {"t": i}, "external_id": "dup", "dataset_id": dataset,
             "status": "pending", "inserted_at": NOW, "updated_at": NOW} for i in range(2)])
        concurrently = "CONCURRENTLY " if postgres else ""
        am.schedule(connection, am.AsyncMigration(
            name="unique_external_ids",
            sql=f"CREATE UNIQUE INDEX {concurrently}IF NOT EXISTS uq_ext ON records (external_id)",
            rollback_sql="DROP INDEX IF EXISTS uq_ext", apply_on_sqlite=True, index="uq_ext"))
    failed = annota.invoke("server", "database", "async-migrations", "run", "unique_external_ids")
    assert failed.exit_code == 1
    row = listed(annota)["unique_external_ids"]
    assert row["status"] == "ERROR" and row["attempts"] == 1
    assert "unique" in row["error"].lower() and row["error"] in failed.stderr
    if postgres:
        assert valid(db, "uq_ext") is False  # what a failed concurrent build leaves

    with db.begin() as connection:
        connection.execute(sa.text(
            "UPDATE records SET external_id = 'fixed' WHERE external_id = 'dup' "
            "AND fields = (SELECT fields FROM records WHERE external_id = 'dup' LIMIT 1)"))
    retried = annota.invoke("server", "database", "async-migrations", "run", "unique_external_ids")
    assert retried.exit_code == 0, retried.output
    row = listed(annota)["unique_external_ids"]
    assert (row["status"], row["attempts"], row["error"]) == ("FINISHED", 2, None)
    if postgres:
        assert valid(db, "uq_ext") is True  # the invalid one was dropped and rebuilt
    else:
        assert "uq_ext" in indexes(db, "records")


def _dataset(connection: sa.Connection):  # noqa: ANN202
    from annota.server.domain import datasets

    workspace = datasets.create_workspace(connection, "ws")
    return datasets.create_dataset(connection, workspace_id=workspace, name="d",
                                   fields=[{"name": "t", "type": "text"}], questions=[])


def test_unknown_async_migration(annota, settings):
    migrations.migrate(settings)
    result = annota.invoke("server", "database", "async-migrations", "run", "nope")
    assert result.exit_code == 11 and "no async migration named 'nope'" in result.stderr
    assert isinstance(Settings.from_env(annota.env), Settings)


def test_the_settings_decide_scheduling_not_the_process_environment(settings, monkeypatch, env):
    monkeypatch.delenv("ANNOTA_ALLOW_SCHEDULED_MIGRATIONS", raising=False)
    scheduled_env = {**env, "ANNOTA_ALLOW_SCHEDULED_MIGRATIONS": "true"}
    migrations.migrate(Settings.from_env(scheduled_env), "2.2")  # 2.3's gate waits for it
    assert listed(Annota(scheduled_env))[NAME]["status"] == "SCHEDULED"
