"""Data of every release, seeded with the columns each release had, and the end state an
upgrade must reach, for tests/test_upgrade.py.

Ids are derived from names (uuid5), so two databases seeded alike hold the same rows and
their end states compare equal, row by row.
"""

from __future__ import annotations

import functools
import uuid
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa

from annota.server.schema.history import history
from tests.schema_tools import _value, db_uuid

NS = uuid.UUID("5b0e4a52-6f1d-4c1e-9a55-0f6f3c2b1d10")
T0 = datetime(2024, 3, 1, 9, 0, 0)
# where the tests seed data: every release before the first release gate (2.3), so that
# their upgrades cross every gate
_FIRST_GATE = min(history().position(r.revision) for r in history().revisions if r.gated)
RELEASES = [tag.release for tag in history().tags
            if history().position(tag.revision) < _FIRST_GATE]
DERIVED = {"backfill_jobs", "async_migrations", "revision_checksums", "record_agreements",
           "question_agreements", "index_changes"}


def uid(*parts: object) -> uuid.UUID:
    return uuid.uuid5(NS, "/".join(map(str, parts)))


def put(connection: sa.Connection, table: str, **values: Any) -> None:
    """Insert one row (``_put``), the table reflected now."""
    _put(connection, table, None, **values)


def _put(connection: sa.Connection, table: str, reflected_tables: dict | None = None,
        **values: Any) -> None:
    """Insert one row with the columns ``table`` has now: values it lacks a column for are
    dropped (``submitted`` before 1.2, ``status`` after); NOT NULL columns without a
    default that were not given get a plain value. ``reflected_tables``: a cache of the
    tables reflected so far, for many rows at one schema."""
    cache = {} if reflected_tables is None else reflected_tables
    if table not in cache:
        cache[table] = sa.Table(table, sa.MetaData(), autoload_with=connection)
    reflected = cache[table]
    row = {k: db_uuid(connection, v) if isinstance(v, uuid.UUID) else v
           for k, v in values.items() if k in reflected.c}
    for column in reflected.columns:
        if (column.name not in row and not column.nullable and column.server_default is None
                and column.name != "id"):
            row[column.name] = _value(column, table, 0, 0)
    connection.execute(reflected.insert(), [row])


def seed_release(connection: sa.Connection, release: str, records: int = 4) -> None:
    """One workspace, two annotators and a dataset (a text field, a label question) with
    ``records`` records answered in a pattern that gives each status and agreement case."""
    stamp = {"inserted_at": T0, "updated_at": T0}
    put = functools.partial(_put, reflected_tables={})  # one schema: reflect each table once
    users = [uid(release, "user", i) for i in range(2)]
    for i, user in enumerate(users):
        put(connection, "users", id=user, first_name=f"a{i}", username=f"a{i}-{release}",
            role="annotator", api_key=f"key-{release}-{i}", password_hash="-", **stamp)
    workspace, dataset = uid(release, "workspace"), uid(release, "dataset")
    put(connection, "workspaces", id=workspace, name=f"ws-{release}", **stamp)
    put(connection, "datasets", id=dataset, name=f"ds-{release}", status="ready",
        workspace_id=workspace, last_activity_at=T0,
        distribution={"strategy": "overlap", "min_submitted": 1}, **stamp)
    put(connection, "fields", id=uid(release, "field"), name="text", title="Text",
        required=True, settings={"type": "text"}, dataset_id=dataset, **stamp)
    put(connection, "questions", id=uid(release, "question"), name="label", title="Label",
        required=True, settings={"type": "label_selection", "options": ["a", "b"]},
        dataset_id=dataset, **stamp)
    for r in range(records):
        record = uid(release, "record", r)
        put(connection, "records", id=record, fields={"text": f"{release} #{r}"},
            external_id=f"{release}-{r}", dataset_id=dataset, status="pending",
            inserted_at=T0 + timedelta(seconds=r), updated_at=T0 + timedelta(seconds=r))
        for u, user in enumerate(users[: r % 3]):  # 0, 1 or 2 annotators
            submitted = (r + u) % 4 != 3
            put(connection, "responses", id=uid(release, "response", r, u),
                values={"label": {"value": "ab"[(r * u) % 2]}}, submitted=submitted,
                status="submitted" if submitted else "draft", record_id=record,
                user_id=user, **stamp)


def _plain(value: Any) -> Any:
    if isinstance(value, uuid.UUID):
        return value.hex
    if isinstance(value, float):
        return round(value, 9)
    return value


def end_state(connection: sa.Connection) -> dict[str, Any]:
    """Everything an upgrade decides: the revision; every row of every table, the derived
    and operational ones by their natural keys (their ids and clocks are the run's own);
    the indexes."""
    inspector = sa.inspect(connection)
    metadata = sa.MetaData()
    metadata.reflect(connection)
    state: dict[str, Any] = {"revision": connection.execute(
        sa.text("SELECT version_num FROM alembic_version")).scalar()}
    natural = {"record_agreements": ("record_id", "question_id"),
               "question_agreements": ("question_id",), "backfill_jobs": ("name", "dataset_id"),
               "async_migrations": ("name",), "revision_checksums": ("revision",)}
    volatile = {"id", "inserted_at", "updated_at", "started_at", "finished_at", "queued_at",
                "heartbeat_at", "scheduled_at", "applied_at", "worker", "attempts", "cursor",
                "error", "last_error", "processed", "total"}
    for table in metadata.sorted_tables:
        if table.name == "alembic_version":
            continue
        rows = [dict(r._mapping) for r in connection.execute(table.select())]
        if table.name in natural:
            key = natural[table.name]
            state[table.name] = {
                tuple(_plain(r[k]) for k in key):
                {k: _plain(v) for k, v in r.items() if k not in volatile and k not in key}
                for r in rows}
        else:
            # a revision that rewrites rows stamps updated_at with the time it ran
            state[table.name] = {_plain(r["id"]): {k: _plain(v) for k, v in r.items()
                                                   if k != "updated_at"} for r in rows}
        state[f"indexes of {table.name}"] = sorted(i["name"] for i in
                                                   inspector.get_indexes(table.name))
    return state


def expected_status(connection: sa.Connection) -> dict[str, str]:
    """Each record's status computed independently: completed once it has its dataset's
    min_submitted (1 here) submitted responses."""
    rows = connection.execute(sa.text(
        "SELECT r.external_id, (SELECT count(*) FROM responses s WHERE s.record_id = r.id "
        "AND s.status = 'submitted') FROM records r"))
    return {external_id: "completed" if n >= 1 else "pending" for external_id, n in rows}


def record_status(connection: sa.Connection) -> dict[str, str]:
    return dict(connection.execute(sa.text("SELECT external_id, status FROM records")).all())
