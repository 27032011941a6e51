"""``annota server upgrade`` end to end, as a real process, on SQLite and PostgreSQL: from
1.0 with data written at every release; killed with SIGKILL at several points and run
again; release gates refused, then passed."""

from __future__ import annotations

import json
import os
import signal

import pytest
import sqlalchemy as sa

from annota.config import Settings
from annota.server.db import open_database
from annota.server.schema import migrate as migrations
from annota.server.schema.history import history
from tests.api_tools import pg_database
from tests.conftest import Annota, make_env
from tests.schema_tools import insert_many
from tests.upgrade_tools import (
    DERIVED,
    RELEASES,
    T0,
    end_state,
    expected_status,
    record_status,
    seed_release,
    uid,
)

R_DROP_INDEX, R_STATUS_CONTRACT = "3b9e5f1c7a42", "6d4a2c8e9f15"
NO_SEARCH = ("--exclude", "search")


def seed_at(settings: Settings, release: str) -> None:
    """Migrate to ``release`` and write its dataset there."""
    migrations.migrate(settings, release)
    database = open_database(settings.database_url)
    try:
        with database.begin() as connection:
            seed_release(connection, release)
    finally:
        database.dispose()


def seed_every_release(settings: Settings) -> None:
    """Walk the history release by release, writing a dataset at each."""
    for release in RELEASES:
        seed_at(settings, release)


def read(settings: Settings, what):  # noqa: ANN001, ANN201
    database = open_database(settings.database_url)
    try:
        with database.connect() as connection:
            return what(connection)
    finally:
        database.dispose()


def at_head_and_complete(settings: Settings) -> None:
    """What every finished upgrade leaves: head; every job done; statuses right."""
    state = read(settings, end_state)
    assert state["revision"] == history().head.revision
    assert {v["status"] for v in state["backfill_jobs"].values()} == {"COMPLETED"}
    assert {v["status"] for v in state["async_migrations"].values()} == {"FINISHED"}
    assert read(settings, record_status) == read(settings, expected_status)
    assert "ix_records_dataset_id" not in state["indexes of records"]
    completed = read(settings, lambda c: dict(c.execute(sa.text(
        "SELECT d.name, (SELECT count(*) FROM records r WHERE r.dataset_id = d.id AND "
        "r.status = 'completed') FROM datasets d")).all()))
    assert {row["name"]: row["completed_records"] for row in state["datasets"].values()} \
        == completed
    assert sum(completed.values()) > 0
    # agreement: one row per label question, computed
    assert len(state["question_agreements"]) == len(RELEASES)


def test_upgrade_from_1_0_with_data_at_every_release(annota, settings):
    seed_every_release(settings)
    before = read(settings, end_state)

    dry = annota.run("server", "upgrade", "--dry-run", "--json", *NO_SEARCH)
    assert dry.returncode == 0, dry.stderr
    plan = json.loads(dry.stdout)["plan"]
    hist = history()
    assert [r["release"] for r in plan["revisions"]] == [
        r.release for r in hist.revisions
        if hist.position(r.revision) > hist.position(hist.resolve(RELEASES[-1]))]
    assert [r["release"] for r in plan["revisions"]][:2] == ["2.3", "2.3"]  # the gates
    assert [g["revision"] for g in plan["gates"]] == [R_DROP_INDEX, R_STATUS_CONTRACT]
    # every dataset written before 2.1 still owes both backfills, with its record count
    owed = {(b["name"], b["dataset"]): b["records"] for b in plan["backfills"]}
    assert owed == {(name, f"ds-{release}"): 4 for name in ("record-status", "agreement")
                    for release in RELEASES}
    statuses = {b["dataset"]: b["status"] for b in plan["backfills"]}
    assert statuses["ds-2.0"] == "PENDING"  # registered by 2.1 for the datasets it found
    assert statuses["ds-2.2"] == "no job yet"  # written raw, after: the backfill covers it
    assert read(settings, end_state) == before  # a dry run changes nothing

    run = annota.run("server", "upgrade", *NO_SEARCH, timeout=300)
    assert run.returncode == 0, run.stdout + run.stderr
    assert f"Release gate at {R_STATUS_CONTRACT}" in run.stdout
    at_head_and_complete(settings)
    after = read(settings, end_state)
    for table, rows in before.items():  # every row written at every release is there
        if table.startswith("indexes") or table in DERIVED or table == "revision":
            continue
        assert set(after[table]) == set(rows), table
    check = annota.run("server", "database", "check")
    assert check.returncode == 0, check.stderr

    again = annota.run("server", "upgrade", *NO_SEARCH)
    assert again.returncode == 0
    assert "Nothing to do" in again.stdout
    assert read(settings, end_state) == after


def _twin_url(request: pytest.FixtureRequest, database_url: str, tmp_path) -> str:  # noqa: ANN001
    """A second fresh database on the same backend."""
    if database_url.startswith("sqlite"):
        return f"sqlite:///{tmp_path / 'twin.db'}"
    url, drop = pg_database(request.getfixturevalue("postgres_server_url"))
    request.addfinalizer(drop)
    return url


def _seed_for_kills(settings: Settings) -> None:
    """Releases 1.0 and 2.0 with 1,500 records each: enough for the backfills to be
    killed mid-way."""
    database = open_database(settings.database_url)
    try:
        for release in ("1.0", "2.0"):
            migrations.migrate(settings, release)
            with database.begin() as connection:
                seed_release(connection, release, records=4)
                dataset = uid(release, "dataset")
                insert_many(connection, "records", [
                    {"id": uid(release, "bulk", i), "fields": {"text": str(i)},
                     "external_id": f"{release}-bulk-{i}", "dataset_id": dataset,
                     "inserted_at": T0, "updated_at": T0} for i in range(1500)])
                responses = sa.Table("responses", sa.MetaData(), autoload_with=connection)
                user = uid(release, "user", 0)
                insert_many(connection, "responses", [
                    {"id": uid(release, "bulk-response", i), "values": {"label": {"value": "a"}},
                     "record_id": uid(release, "bulk", i), "user_id": user,
                     "inserted_at": T0, "updated_at": T0,
                     **({"submitted": i % 2 == 0} if "submitted" in responses.c
                        else {"status": "submitted" if i % 2 == 0 else "draft"})}
                    for i in range(0, 1500, 3)])
    finally:
        database.dispose()


def _run_until(annota: Annota, marker: str, *args: str) -> bool:
    """Run the upgrade and SIGKILL it as soon as it prints a line with ``marker``; True
    if it was killed (False: it ended first)."""
    process = annota.popen("server", "upgrade", *(args or NO_SEARCH))
    try:
        for line in process.stdout:
            if marker in line:
                os.kill(process.pid, signal.SIGKILL)
                process.wait(30)
                return True
        process.wait(30)
        assert process.returncode == 0, f"the upgrade failed before {marker!r}"
        return False
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


@pytest.mark.slow
def test_an_upgrade_killed_at_several_points_reaches_the_same_end_state(
        request, database_url, tmp_path, settings, annota):
    # the reference: the same data, upgraded without interruption
    twin = Annota(make_env(tmp_path / "twin", _twin_url(request, database_url, tmp_path)))
    twin_settings = Settings.from_env(twin.env)
    _seed_for_kills(twin_settings)
    done = twin.run("server", "upgrade", *NO_SEARCH, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    reference = read(twin_settings, end_state)

    _seed_for_kills(settings)
    fast = {"ANNOTA_BACKFILL_BATCH_SECONDS": "0.001"}  # small batches: a long backfill
    annota.env.update(fast)
    killed = []
    for marker in ("Applying 4700fbf00e8f", f"Release gate at {R_STATUS_CONTRACT}",
                   "record-status: 0/", "agreement: 0/"):
        killed.append(_run_until(annota, marker))
        if marker == "record-status: 0/":  # really mid-backfill: some work left undone
            jobs = read(settings, lambda c: dict(c.execute(sa.text(
                "SELECT dataset_id, status FROM backfill_jobs WHERE name = 'record-status'"
            )).all()))
            assert set(jobs.values()) - {"COMPLETED"}, jobs
    assert killed[:3] == [True, True, True], killed
    final = annota.run("server", "upgrade", *NO_SEARCH, timeout=600)
    assert final.returncode == 0, final.stdout + final.stderr
    state = read(settings, end_state)
    # checksums are recorded for the revisions applied in the run that made their table
    # (2.2) and after; which those are depends on where the runs were cut. All match:
    assert annota.run("server", "database", "check").returncode == 0
    state.pop("revision_checksums"), reference.pop("revision_checksums")
    for table in reference:
        if state[table] != reference[table]:
            rows = {k: (v, reference[table].get(k)) for k, v in state[table].items()
                    if reference[table].get(k) != v} if isinstance(state[table], dict) else {}
            raise AssertionError(f"{table} differs: {list(rows.items())[:3]}")
    assert state == reference


def test_a_gate_refuses_then_passes_once_its_backfill_is_done(annota, settings):
    seed_at(settings, "2.0")
    migrations.migrate(settings, "2.2")
    before = read(settings, end_state)

    refused = annota.run("server", "database", "migrate")
    assert refused.returncode == 16, refused.stdout + refused.stderr
    assert "record-status on dataset ds-2.0 (PENDING)" in refused.stderr
    assert "annota server upgrade" in refused.stderr
    assert "annota server database backfills run record-status --all" in refused.stderr
    # the schema stopped right before the gate; no row changed
    after = read(settings, end_state)
    assert after["revision"] == R_DROP_INDEX
    for table, rows in before.items():
        if table != "revision" and not table.startswith("indexes") and table != (
                "revision_checksums"):
            assert after[table] == rows, table
    assert migrations.status(settings).current == R_DROP_INDEX

    ran = annota.run("server", "database", "backfills", "run", "record-status", "--all")
    assert ran.returncode == 0, ran.stderr
    passed = annota.run("server", "database", "migrate")
    assert passed.returncode == 0, passed.stderr
    assert migrations.status(settings).current == history().head.revision
    assert read(settings, record_status) == read(settings, expected_status)


def test_force_crosses_a_gate_and_says_so(annota, settings):
    seed_at(settings, "2.0")
    forced = annota.run("server", "database", "migrate", "--force")
    assert forced.returncode == 0, forced.stderr
    assert f"Crossing the release gate at {R_STATUS_CONTRACT}" in forced.stdout
    assert migrations.status(settings).current == history().head.revision


def test_an_async_gate_waits_for_its_index_then_upgrade_builds_it(annota, settings):
    migrations.migrate(settings, "2.1")
    scheduled = {"ANNOTA_ALLOW_SCHEDULED_MIGRATIONS": "true"}
    refused = annota.run("server", "database", "migrate", **scheduled)
    assert refused.returncode == 16, refused.stderr
    assert "async migration records_dataset_id_id_index (SCHEDULED)" in refused.stderr
    assert migrations.status(settings).current == "8c2f4e6a1d07"

    upgraded = annota.run("server", "upgrade", *NO_SEARCH, **scheduled)
    assert upgraded.returncode == 0, upgraded.stdout + upgraded.stderr
    assert f"Release gate at {R_DROP_INDEX}" in upgraded.stdout
    at_head = read(settings, end_state)
    assert at_head["revision"] == history().head.revision
    assert "ix_records_dataset_id_id" in at_head["indexes of records"]
    assert "ix_records_dataset_id" not in at_head["indexes of records"]


def test_without_the_backfills_part_only_the_gates_jobs_run(annota, settings):
    """What the container's entrypoint does: the schema moves to head, finishing the
    gate's record-status; the agreement backfill is left to the operator or workers."""
    seed_at(settings, "2.0")
    run = annota.run("server", "upgrade", "--include", "schema")
    assert run.returncode == 0, run.stdout + run.stderr
    assert migrations.status(settings).current == history().head.revision
    jobs = read(settings, end_state)["backfill_jobs"]
    assert {k[0]: v["status"] for k, v in jobs.items()} == {
        "record-status": "COMPLETED", "agreement": "PENDING"}


@pytest.mark.parametrize("flags", [("--include", "nothing"), ("--include", ""),
                                   ("--include", "schema", "--exclude", "schema")])
def test_unknown_or_empty_parts_are_usage_errors(annota, settings, flags):
    run = annota.run("server", "upgrade", *flags)
    assert run.returncode == 2, run.stderr
    assert run.stderr.startswith("Error: ")
    assert migrations.status(settings).state == migrations.EMPTY  # nothing created


def test_a_downgrade_asks_like_migrate(annota, settings):
    migrations.migrate(settings)
    refused = annota.run("server", "upgrade", "--to", "2.2", *NO_SEARCH)
    assert refused.returncode == 7, refused.stderr
    assert migrations.status(settings).current == history().head.revision
    done = annota.run("server", "upgrade", "--to", "2.2", "--yes", *NO_SEARCH)
    assert done.returncode == 0, done.stderr
    assert migrations.status(settings).current_release == "2.2"


def test_an_unreachable_search_engine_stops_the_upgrade_before_it_starts(annota, settings):
    migrations.migrate(settings, "2.0")
    run = annota.run("server", "upgrade", ANNOTA_ELASTICSEARCH="http://127.0.0.1:9")
    assert run.returncode == 23, run.stdout + run.stderr  # preflight: the search engine
    assert "search-engine: cannot reach Elasticsearch" in run.stderr
    assert "--exclude search" in run.stderr
    assert migrations.status(settings).current_release == "2.0"


def test_upgrade_with_search_rebuilds_every_index_and_survives_a_kill(search_env):
    annota = Annota(search_env)
    settings = Settings.from_env(search_env)
    seed_every_release(settings)
    dry = annota.run("server", "upgrade", "--dry-run", "--json")
    assert dry.returncode == 0, dry.stderr
    planned = json.loads(dry.stdout)["plan"]["search"]
    assert {i["dataset"] for i in planned} == {f"ds-{r}" for r in RELEASES}
    assert all(i["reasons"] == ["no index"] for i in planned)

    assert _run_until(annota, "Reindexing", "--include", "schema,async,backfills,search")
    run = annota.run("server", "upgrade", timeout=300)
    assert run.returncode == 0, run.stdout + run.stderr
    at_head_and_complete(settings)
    status = annota.run("server", "search-engine", "status", "--json")
    assert status.returncode == 0, status.stdout + status.stderr
    state = json.loads(status.stdout)
    assert state["orphans"] == []
    assert {d["name"]: d["documents"] for d in state["datasets"]} == {
        f"ds-{r}": 4 for r in RELEASES}
