"""A backfill writes only the rows whose derived values change, and never moves a record's
``updated_at`` (the version its search document carries): generated datasets, with some
derived values broken on purpose, on SQLite and PostgreSQL; then the index, which a
backfill must leave equal to the database by identity."""

from __future__ import annotations

import uuid

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from annota.config import Settings
from annota.server.db import open_database
from annota.server.domain import datasets
from annota.server.jobs import runner
from annota.server.jobs.backfills import BACKFILLS
from annota.server.schema import migrate as migrations
from tests.conftest import Annota
from tests.schema_tools import snapshot
from tests.search_tools import new_user
from tests.upgrade_tools import T0, put, uid

RESPONSE = st.tuples(st.integers(0, 2), st.sampled_from(["submitted", "draft", "discarded"]),
                     st.sampled_from(["a", "b"]))
DATASET = st.fixed_dictionaries({
    "min_submitted": st.integers(1, 2),
    # per record, its responses (one per user at most)
    "records": st.lists(st.lists(RESPONSE, max_size=3, unique_by=lambda r: r[0]),
                        min_size=1, max_size=12),
    # which records get a wrong status, and which lose their agreement rows, before the run
    "wrong_status": st.sets(st.integers(0, 11)),
    "lost_agreement": st.sets(st.integers(0, 11)),
})
OPERATIONAL = {"backfill_jobs"}


def q(sql: str) -> sa.TextClause:
    """``sql`` with its ``:d`` (dataset) and ``:id`` (record) parameters bound as UUIDs."""
    return sa.text(sql).bindparams(*(sa.bindparam(k, type_=sa.Uuid) for k in ("d", "id")
                                     if f":{k}" in sql))


def _seed(connection: sa.Connection, case: dict) -> uuid.UUID:
    users = [new_user(connection, f"u-{uuid.uuid4().hex[:8]}") for _ in range(3)]
    workspace = datasets.create_workspace(connection, f"ws-{uuid.uuid4().hex[:8]}")
    dataset = datasets.create_dataset(
        connection, workspace_id=workspace, name="d",
        fields=[{"name": "text", "type": "text"}],
        questions=[{"name": "label", "type": "label_selection", "options": ["a", "b"]}],
        min_submitted=case["min_submitted"])
    datasets.import_records(connection, dataset, [
        {"fields": {"text": f"#{i}"}, "external_id": f"r{i}",
         "responses": [{"user_id": users[u], "status": status,
                        "values": {"label": {"value": label}}}
                       for u, status, label in responses]}
        for i, responses in enumerate(case["records"])])
    return dataset


def _break(connection: sa.Connection, dataset: uuid.UUID, case: dict) -> None:
    """Derived values made wrong behind the code's back (their clocks left alone)."""
    ids = connection.execute(q(
        "SELECT id, external_id FROM records WHERE dataset_id = :d"),
        {"d": dataset}).all()
    by_name = {external_id: uuid.UUID(str(record_id)) for record_id, external_id in ids}
    for i in case["wrong_status"]:
        if f"r{i}" in by_name:
            connection.execute(q(
                "UPDATE records SET status = CASE status WHEN 'completed' THEN 'pending' "
                "ELSE 'completed' END WHERE id = :id"), {"id": by_name[f"r{i}"]})
    for i in case["lost_agreement"]:
        if f"r{i}" in by_name:
            connection.execute(q("DELETE FROM record_agreements WHERE record_id = :id"),
                               {"id": by_name[f"r{i}"]})


def _run(settings_: Settings, dataset: uuid.UUID) -> None:
    for name in BACKFILLS:
        run = runner.run(settings_, name, dataset_id=str(dataset), force=True, inline=True,
                         poll=0.05)
        assert run.ok, run.final


def _without(state: dict, tables: set[str]) -> dict:
    return {k: v for k, v in state.items() if k not in tables}


def _expected_status(connection: sa.Connection, dataset: uuid.UUID, minimum: int) -> dict:
    rows = connection.execute(q(
        "SELECT r.external_id, (SELECT count(*) FROM responses s WHERE s.record_id = r.id "
        "AND s.status = 'submitted') FROM records r WHERE r.dataset_id = :d"), {"d": dataset})
    return {e: "completed" if n >= minimum else "pending" for e, n in rows}


@pytest.fixture
def head(env: dict[str, str]) -> Settings:
    loaded = Settings.from_env(env)
    migrations.migrate(loaded)
    return loaded


@settings(max_examples=15, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(case=DATASET)
def test_a_backfill_writes_only_what_is_wrong_and_a_rerun_writes_nothing(head, case):
    db = open_database(head.database_url)
    try:
        with db.begin() as connection:
            dataset = _seed(connection, case)
            _break(connection, dataset, case)
        with db.connect() as connection:
            before = snapshot(connection)
            wrong = {e for e, s in _expected_status(connection, dataset,
                                                    case["min_submitted"]).items()
                     if s != connection.execute(q(
                         "SELECT status FROM records WHERE external_id = :e AND "
                         "dataset_id = :d"), {"e": e, "d": dataset}).scalar_one()}
        _run(head, dataset)
        with db.connect() as connection:
            after = snapshot(connection)
            assert {e: s for e, s in connection.execute(q(
                "SELECT external_id, status FROM records WHERE dataset_id = :d"),
                {"d": dataset})} == _expected_status(connection, dataset,
                                                     case["min_submitted"])
        # records: only the wrong statuses were written, and no clock moved
        changed = {k for k, row in after["records"].items() if row != before["records"][k]}
        assert {after["records"][k]["external_id"] for k in changed} == wrong
        for k in changed:
            assert after["records"][k]["updated_at"] == before["records"][k]["updated_at"]
        # agreement rows: those that were there and right are untouched, ids and clocks too
        kept = {k: row for k, row in before["record_agreements"].items()}
        for k, row in kept.items():
            assert after["record_agreements"].get(k) == row
        # every other table but the jobs': as it was, but for the derived count and alpha
        for table in set(before) - OPERATIONAL - {"records", "record_agreements",
                                                  "question_agreements", "datasets"}:
            assert after[table] == before[table], table
        # a second run changes nothing at all
        _run(head, dataset)
        with db.connect() as connection:
            again = snapshot(connection)
        assert _without(again, OPERATIONAL) == _without(after, OPERATIONAL)
    finally:
        db.dispose()


def test_an_upgrade_from_1_0_moves_no_record_clock(annota: Annota):
    """The issue's case: 200 records at 1.0, the responses of 100 removed, then the
    upgrade. It once gave all 200 a new updated_at (the record-status backfill)."""
    loaded = Settings.from_env(annota.env)
    migrations.migrate(loaded, "1.0")
    db = open_database(loaded.database_url)
    try:
        with db.begin() as connection:
            seed_at_1_0(connection, 200)
            connection.execute(q(
                "DELETE FROM responses WHERE record_id IN (SELECT id FROM records WHERE "
                "external_id LIKE 'x%')"))
        with db.connect() as connection:
            clocks = dict(connection.execute(q("SELECT id, updated_at FROM records")).all())
        result = annota.run("server", "upgrade", "--yes", "--exclude", "search")
        assert result.returncode == 0, result.stdout + result.stderr
        with db.connect() as connection:
            assert dict(connection.execute(
                q("SELECT id, updated_at FROM records")).all()) == clocks
            statuses = dict(connection.execute(
                q("SELECT external_id, status FROM records")).all())
        assert {s for e, s in statuses.items() if e.startswith("x")} == {"pending"}
        assert {s for e, s in statuses.items() if e.startswith("y")} == {"completed"}
    finally:
        db.dispose()


def seed_at_1_0(connection: sa.Connection, n: int) -> None:
    """``n`` records as release 1.0 stored them, each with a submitted response; half are
    named x (their responses are removed by the caller), half y."""
    stamp = {"inserted_at": T0, "updated_at": T0}
    user, workspace, dataset = uid("1.0", "user"), uid("1.0", "ws"), uid("1.0", "ds")
    put(connection, "users", id=user, first_name="a", username="a", role="annotator",
        api_key="key-a", password_hash="-", **stamp)
    put(connection, "workspaces", id=workspace, name="ws", **stamp)
    put(connection, "datasets", id=dataset, name="ds", status="ready", workspace_id=workspace,
        **stamp)
    put(connection, "fields", id=uid("1.0", "field"), name="text", title="Text",
        required=True, settings={"type": "text"}, dataset_id=dataset, **stamp)
    put(connection, "questions", id=uid("1.0", "q"), name="label", title="Label",
        required=True, settings={"type": "label_selection", "options": ["a", "b"]},
        dataset_id=dataset, **stamp)
    for i in range(n):
        record = uid("1.0", "record", i)
        put(connection, "records", id=record, fields={"text": f"#{i}"},
            external_id=f"{'xy'[i % 2]}{i}", dataset_id=dataset, **stamp)
        put(connection, "responses", id=uid("1.0", "response", i), submitted=True,
            values={"label": {"value": "a"}}, record_id=record, user_id=user, **stamp)


@pytest.fixture
def es_env(tmp_path, database_url, elasticsearch_url):
    from tests.conftest import _drop_indices, engine_env

    env = engine_env(tmp_path, database_url, elasticsearch_url)
    yield env
    _drop_indices(env)


def test_after_a_backfill_the_index_equals_the_database_and_status_verify_says_so(es_env):
    """Backfills run on an indexed dataset whose statuses were broken: every document keeps
    its version. ``status --verify`` compares by identity and catches a moved version that
    the count alone does not."""
    from tests.search_tools import create_dataset, migrated

    annota = Annota(es_env)
    loaded = migrated(es_env)
    dataset = create_dataset(loaded, 40)
    assert annota.run("server", "search-engine", "reindex").returncode == 0
    db = open_database(loaded.database_url)
    try:
        with db.begin() as connection:
            connection.execute(q("UPDATE records SET status = 'pending' WHERE dataset_id = :d"),
                               {"d": dataset})
        for name in BACKFILLS:
            result = annota.run("server", "database", "backfills", "run", name, "--all",
                                "--force")
            assert result.returncode == 0, result.stderr
        with db.connect() as connection:
            assert set(connection.execute(q(
                "SELECT status FROM records WHERE dataset_id = :d"), {"d": dataset}).scalars()
            ) == {"completed"}  # it did write: every record has submitted responses
        verified = annota.run("server", "search-engine", "status", "--verify", "--json")
        assert verified.returncode == 0, verified.stdout + verified.stderr
        # a version moved behind the index's back: the count agrees, the identity does not
        with db.begin() as connection:
            connection.execute(q("UPDATE records SET updated_at = :t WHERE id = (SELECT id "
                                 "FROM records WHERE dataset_id = :d ORDER BY id LIMIT 1)"),
                               {"d": dataset, "t": T0})
        assert annota.run("server", "search-engine", "status").returncode == 0
        drift = annota.run("server", "search-engine", "status", "--verify")
        assert drift.returncode == 12, drift.stdout + drift.stderr
        assert "1 records without their document at their version, 0 documents of no " \
               "record" in drift.stdout
    finally:
        db.dispose()
