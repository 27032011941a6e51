"""Loading big tables without their indexes (PostgreSQL): the schema ends as it began, a
load that breaks a constraint fails as the insert would have, and a rollback keeps
everything as it was."""

from __future__ import annotations

import uuid
from datetime import datetime

import pytest
import sqlalchemy as sa

from annota.server.archive.rebuild import indexes_built_after
from annota.server.schema.migrate import migrate
from tests.archive_tools import settings_for
from tests.conftest import sqlalchemy_url

SCHEMA = """
SELECT 'index', t.relname, i.relname, pg_get_indexdef(i.oid)
FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid JOIN pg_class t ON t.oid = x.indrelid
WHERE t.relnamespace = current_schema()::regnamespace
UNION ALL
SELECT 'constraint', t.relname, c.conname, pg_get_constraintdef(c.oid)
FROM pg_constraint c JOIN pg_class t ON t.oid = c.conrelid
WHERE t.relnamespace = current_schema()::regnamespace
ORDER BY 1, 2, 3
"""


@pytest.fixture
def pg_at_head(tmp_path, postgres_url):
    migrate(settings_for(tmp_path, postgres_url), "head")
    engine = sa.create_engine(sqlalchemy_url(postgres_url))
    yield engine
    engine.dispose()


def _schema(connection: sa.Connection) -> list[tuple]:
    return [tuple(r) for r in connection.execute(sa.text(SCHEMA)).all()]


def _parents(connection: sa.Connection) -> uuid.UUID:
    now = datetime(2025, 1, 1)
    workspace, dataset = uuid.uuid4(), uuid.uuid4()
    connection.execute(sa.text(
        "INSERT INTO workspaces (id, name, inserted_at, updated_at) VALUES (:w, 'w', :t, :t)"),
        {"w": workspace, "t": now})
    connection.execute(sa.text(
        "INSERT INTO datasets (id, name, status, workspace_id, allow_extra_metadata, distribution, "
        "completed_records, last_activity_at, inserted_at, updated_at) VALUES "
        "(:d, 'd', 'ready', :w, true, '{}', 0, :t, :t, :t)"),
        {"d": dataset, "w": workspace, "t": now})
    return dataset


def _records(connection: sa.Connection, dataset: uuid.UUID, ids: list[uuid.UUID]) -> None:
    connection.execute(sa.text(
        "INSERT INTO records (id, fields, dataset_id, status, inserted_at, updated_at) "
        "VALUES (:id, '{}', :d, 'pending', :t, :t)"),
        [{"id": i, "d": dataset, "t": datetime(2025, 1, 1)} for i in ids])


def test_indexes_dropped_during_the_load_and_built_again(pg_at_head):
    with pg_at_head.connect() as connection:
        before = _schema(connection)
        dataset = _parents(connection)
        with indexes_built_after(connection, {"records": 100, "responses": 100,
                                              "workspaces": 1}, min_rows=50) as dropped:
            assert sorted(dropped) == ["records", "responses"]  # workspaces: too few
            during = _schema(connection)
            assert not [r for r in during if r[1] in dropped]
            assert [r for r in during if r[1] == "workspaces"] == [
                r for r in before if r[1] == "workspaces"]
            _records(connection, dataset, [uuid.uuid4() for _ in range(100)])
        assert _schema(connection) == before
        connection.commit()
        assert connection.execute(sa.text("SELECT count(*) FROM records")).scalar() == 100


def test_a_table_with_rows_keeps_its_indexes(pg_at_head):
    with pg_at_head.connect() as connection:
        _records(connection, _parents(connection), [uuid.uuid4()])
        with indexes_built_after(connection, {"records": 10_000}, min_rows=1) as dropped:
            assert dropped == []
        connection.rollback()


def test_rows_that_break_a_constraint_fail_and_roll_back_whole(pg_at_head):
    """A duplicate key goes in (no index to stop it), the rebuild refuses it, and the
    rollback restores every index and constraint and leaves no row."""
    with pg_at_head.connect() as connection:
        before = _schema(connection)
        dataset = _parents(connection)
        connection.commit()
        twice = uuid.uuid4()
        with pytest.raises(sa.exc.IntegrityError), indexes_built_after(
                connection, {"records": 3}, min_rows=1):
            _records(connection, dataset, [twice, uuid.uuid4(), twice])
        connection.rollback()
        assert _schema(connection) == before
        assert connection.execute(sa.text("SELECT count(*) FROM records")).scalar() == 0


def test_off_postgresql_nothing_is_dropped(tmp_path):
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'x.db'}")
    with engine.connect() as connection, indexes_built_after(
            connection, {"records": 10**6}) as dropped:
        assert dropped == []
    engine.dispose()
