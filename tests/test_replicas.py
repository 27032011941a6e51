"""Replicas starting at once, each running the container entrypoint's upgrade: at a release
gate whose jobs another replica is running, an upgrade waits for them (or takes them over),
then goes on. Every process exits 0, the schema reaches head, every job is done once.
Real processes on SQLite and PostgreSQL, the later ones started while the first one's
backfill is provably running."""

from __future__ import annotations

import re
import time

import pytest
import sqlalchemy as sa

from annota.config import Settings
from annota.server.db import open_database
from annota.server.schema import migrate as migrations
from annota.server.schema.history import history
from tests.conftest import Annota
from tests.schema_tools import insert_many
from tests.upgrade_tools import T0, expected_status, put, record_status, uid

STAMP = {"inserted_at": T0, "updated_at": T0}
# long enough jobs: batches at their floor (10 records), so the processes overlap
SLOW_BATCHES = {"ANNOTA_BACKFILL_BATCH_SECONDS": "0.000001"}


def seed_1_0(settings: Settings, datasets: int, records: int) -> None:
    """Release 1.0, with ``datasets`` datasets of ``records`` records, each answered."""
    migrations.migrate(settings, "1.0")
    db = open_database(settings.database_url)
    try:
        with db.begin() as connection:
            user, workspace = uid("replicas", "user"), uid("replicas", "ws")
            put(connection, "users", id=user, first_name="a", username="a", role="annotator",
                api_key="key-a", password_hash="-", **STAMP)
            put(connection, "workspaces", id=workspace, name="ws", **STAMP)
            for d in range(datasets):
                dataset = uid("replicas", "dataset", d)
                put(connection, "datasets", id=dataset, name=f"ds-{d}", status="ready",
                    workspace_id=workspace, **STAMP)
                put(connection, "questions", id=uid("replicas", "q", d), name="label",
                    title="Label", required=True, dataset_id=dataset,
                    settings={"type": "label_selection", "options": ["a", "b"]}, **STAMP)
                ids = insert_many(connection, "records", [
                    {"fields": {"text": f"{d}/{i}"}, "external_id": f"{d}-{i}",
                     "dataset_id": dataset, **STAMP} for i in range(records)])
                insert_many(connection, "responses", [
                    {"submitted": i % 3 != 0, "values": {"label": {"value": "ab"[i % 2]}},
                     "record_id": record, "user_id": user, **STAMP}
                    for i, record in enumerate(ids)])
    finally:
        db.dispose()


def wait_until_a_backfill_runs(settings: Settings, timeout: float = 120) -> None:
    db = open_database(settings.database_url)
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            with db.connect() as connection:
                if "backfill_jobs" in sa.inspect(connection).get_table_names() and \
                        connection.execute(sa.text(
                            "SELECT count(*) FROM backfill_jobs WHERE status = 'RUNNING' "
                            "AND processed > 0")).scalar_one():
                    return
            time.sleep(0.05)
    finally:
        db.dispose()
    raise AssertionError("the first upgrade never started a backfill")


def at_head_with_statuses_right(settings: Settings) -> list[sa.Row]:
    """Asserts the schema at head and every record's status right; returns the jobs
    (name, status, attempts, processed, total: the records of its dataset)."""
    db = open_database(settings.database_url)
    try:
        with db.connect() as connection:
            revision = connection.execute(
                sa.text("SELECT version_num FROM alembic_version")).scalar_one()
            assert record_status(connection) == expected_status(connection)
            jobs = connection.execute(sa.text(
                "SELECT j.name, j.status, j.attempts, j.processed, (SELECT count(*) FROM "
                "records r WHERE r.dataset_id = j.dataset_id) AS total "
                "FROM backfill_jobs j")).all()
    finally:
        db.dispose()
    assert revision == history().head.revision
    return jobs


@pytest.mark.parametrize("replicas,parts", [
    (2, ("--include", "schema")),  # the container entrypoint's command
    (4, ("--include", "schema")),
    (2, ("--exclude", "search")),  # the backfills part waits for the others' jobs too
], ids=lambda v: v if isinstance(v, int) else " ".join(v))
def test_replicas_at_a_release_gate_all_finish(annota: Annota, settings: Settings, replicas,
                                               parts):
    # batches go 1000, 500, ... 10: then 10 records a batch (SQLite pauses 0.15 s after each)
    records = 2500 if settings.database_url.backend == "sqlite" else 12000
    seed_1_0(settings, 2, records)
    command = ("server", "upgrade", "--yes", *parts)
    first = annota.popen(*command, **SLOW_BATCHES)
    wait_until_a_backfill_runs(settings)
    others = [annota.popen(*command, **SLOW_BATCHES) for _ in range(replicas - 1)]
    outputs = []
    for process in [first, *others]:
        out, _ = process.communicate(timeout=300)
        outputs.append(out)
        assert process.returncode == 0, out
    # a later one reached the gate while the first one's job ran (it waited for it, or
    # shared the jobs not yet started: a QUEUED job goes to whoever claims it first)
    assert any(re.search(r"Release gate at [^\n]*\(RUNNING\)", out) for out in outputs[1:]), \
        outputs
    jobs = at_head_with_statuses_right(settings)
    ran = {"record-status"} if "--include" in parts else {"record-status", "agreement"}
    done = [job for job in jobs if job.name in ran]
    assert len(done) == 2 * len(ran)  # one job per backfill and dataset
    for name, status, attempts, processed, total in done:
        # claimed once, each record processed once
        assert (status, attempts, processed) == ("COMPLETED", 1, total), name


def test_a_replica_killed_at_the_gate_has_its_jobs_taken_over(annota: Annota,
                                                              settings: Settings):
    """SIGKILL of the replica whose job runs: the other takes the job over (its worker is
    a process of this host that no longer exists: no stale limit to wait for) and ends."""
    records = 2500 if settings.database_url.backend == "sqlite" else 12000
    seed_1_0(settings, 2, records)
    command = ("server", "upgrade", "--yes", "--include", "schema")
    first = annota.popen(*command, **SLOW_BATCHES)
    wait_until_a_backfill_runs(settings)
    second = annota.popen(*command, **SLOW_BATCHES)
    time.sleep(1.0)
    first.kill()
    first.communicate(timeout=30)
    out, _ = second.communicate(timeout=300)
    assert second.returncode == 0, out
    jobs = [job for job in at_head_with_statuses_right(settings) if job.name == "record-status"]
    # each COMPLETED, every record processed (the killed one's last batch maybe twice)
    assert [(job.status, job.processed >= job.total) for job in jobs] == [("COMPLETED", True)] * 2
