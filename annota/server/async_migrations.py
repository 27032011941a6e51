"""Async migrations: heavy SQL (e.g. ``CREATE INDEX CONCURRENTLY``) outside the migration
transaction, recorded in ``async_migrations`` as SCHEDULED / STARTED / IN_PROGRESS /
FINISHED / ERROR.

A revision calls ``apply(op, MIGRATION)``. By default the SQL runs right there, in an
autocommit block, and the row records FINISHED or ERROR (an error does not stop
``migrate``; ``async-migrations run NAME`` retries). With
``ANNOTA_ALLOW_SCHEDULED_MIGRATIONS=true`` the row is left SCHEDULED for
``async-migrations run``, unless the migration says ``execute_immediately``. An index
left INVALID by a failed concurrent build is dropped and rebuilt on retry.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

import sqlalchemy as sa

from annota.errors import AnnotaError, NotFoundError
from annota.server.database import first_line

SCHEDULED, STARTED, IN_PROGRESS, FINISHED, ERROR = (
    "SCHEDULED", "STARTED", "IN_PROGRESS", "FINISHED", "ERROR")

# A Core view of the table, not the ORM model: revisions import this module, and a
# revision must not change when the models do (and must not pay for the ORM at start-up).
TABLE = sa.table(
    "async_migrations",
    sa.column("name", sa.String), sa.column("revision", sa.String),
    sa.column("status", sa.String), sa.column("sql", sa.Text),
    sa.column("rollback_sql", sa.Text), sa.column("index_name", sa.String),
    sa.column("attempts", sa.Integer), sa.column("error", sa.Text),
    *(sa.column(f"{when}_at", sa.DateTime)
      for when in ("scheduled", "started", "finished", "inserted", "updated")),
)


def utcnow() -> datetime:
    return datetime.now(timezone.utc).replace(tzinfo=None)


@dataclass(frozen=True)
class AsyncMigration:
    name: str
    sql: str  # PostgreSQL, run in autocommit (CONCURRENTLY needs it)
    rollback_sql: str
    sqlite_sql: str | None = None  # what to run on SQLite instead, if apply_on_sqlite
    sqlite_rollback_sql: str | None = None
    apply_on_sqlite: bool = False
    execute_immediately: bool = False  # run during migrate even when scheduling is allowed
    index: str | None = None  # the index the SQL builds, checked for INVALID before a retry


def scheduling_allowed(attributes: dict | None = None) -> bool:
    value = (attributes or {}).get("allow_scheduled_migrations")
    if value is None:
        value = os.environ.get("ANNOTA_ALLOW_SCHEDULED_MIGRATIONS", "")
    return str(value).strip().lower() in ("1", "true", "yes", "on")


def _row(migration: AsyncMigration, revision: str, dialect: str) -> dict[str, Any]:
    sqlite = dialect == "sqlite"
    now = utcnow()
    return {
        "name": migration.name, "revision": revision, "status": SCHEDULED,
        "sql": (migration.sqlite_sql or migration.sql) if sqlite else migration.sql,
        "rollback_sql": ((migration.sqlite_rollback_sql or migration.rollback_sql) if sqlite
                         else migration.rollback_sql),
        "index_name": migration.index, "attempts": 0, "error": None,
        "scheduled_at": now, "inserted_at": now, "updated_at": now,
    }


def apply(op, migration: AsyncMigration, revision: str) -> None:  # noqa: ANN001 - alembic op
    """Call from a revision's ``upgrade()``."""
    context = op.get_context()
    dialect = context.dialect.name
    if dialect == "sqlite" and not migration.apply_on_sqlite:
        return
    op.execute(sa.delete(TABLE).where(TABLE.c.name == migration.name))
    op.execute(sa.insert(TABLE).values(**_row(migration, revision, dialect)))
    attributes = getattr(context.config, "attributes", {}) if context.config else {}
    if context.as_sql or (scheduling_allowed(attributes) and not migration.execute_immediately):
        return
    if dialect == "sqlite":  # no concurrent builds there: run inside the revision's transaction
        run_on(op.get_bind(), migration.name)
        return
    with context.autocommit_block():
        run_on(op.get_bind(), migration.name)


def revert(op, migration: AsyncMigration) -> None:  # noqa: ANN001
    """Call from a revision's ``downgrade()``: runs the rollback SQL, forgets the row."""
    context = op.get_context()
    dialect = context.dialect.name
    if dialect == "sqlite":
        if migration.apply_on_sqlite:
            op.execute(migration.sqlite_rollback_sql or migration.rollback_sql)
    elif context.as_sql:
        op.execute(migration.rollback_sql)
    else:
        with context.autocommit_block():
            op.get_bind().exec_driver_sql(migration.rollback_sql)
    op.execute(sa.delete(TABLE).where(TABLE.c.name == migration.name))


def _set(connection: sa.Connection, name: str, **values: Any) -> None:
    # on PostgreSQL the connection is in autocommit: each state is visible at once
    connection.execute(sa.update(TABLE).where(TABLE.c.name == name)
                       .values(updated_at=utcnow(), **values))


def run_on(connection: sa.Connection, name: str) -> bool:
    """Run one async migration on ``connection`` (autocommit on PostgreSQL). Claims it
    atomically (SCHEDULED or ERROR -> STARTED), so two runners never both run it.
    Returns True when FINISHED; an error is recorded, not raised."""
    claimed = connection.execute(
        sa.update(TABLE)
        .where(TABLE.c.name == name, TABLE.c.status.in_([SCHEDULED, ERROR]))
        .values(status=STARTED, attempts=TABLE.c.attempts + 1, started_at=utcnow(),
                updated_at=utcnow(), error=None)
    ).rowcount
    if not claimed:
        return False
    row = connection.execute(sa.select(TABLE).where(TABLE.c.name == name)).one()
    try:
        if row.index_name and connection.dialect.name == "postgresql":
            _drop_if_invalid(connection, row.index_name)
        _set(connection, name, status=IN_PROGRESS)
        connection.exec_driver_sql(row.sql)
    except sa.exc.DBAPIError as exc:
        _set(connection, name, status=ERROR, error=first_line(exc), finished_at=utcnow())
        return False
    _set(connection, name, status=FINISHED, finished_at=utcnow())
    return True


def _drop_if_invalid(connection: sa.Connection, index: str) -> None:
    valid = connection.execute(sa.text(
        "SELECT i.indisvalid FROM pg_class c JOIN pg_index i ON i.indexrelid = c.oid "
        "WHERE c.relname = :name"), {"name": index}).scalar_one_or_none()
    if valid is False:  # left by a failed concurrent build: IF NOT EXISTS would keep it
        connection.exec_driver_sql(f'DROP INDEX CONCURRENTLY IF EXISTS "{index}"')


def schedule(connection: sa.Connection, migration: AsyncMigration, revision: str = "") -> None:
    """Record ``migration`` as SCHEDULED (outside a revision: operators' own heavy SQL)."""
    connection.execute(sa.delete(TABLE).where(TABLE.c.name == migration.name))
    connection.execute(sa.insert(TABLE), _row(migration, revision, connection.dialect.name))


def listing(connection: sa.Connection) -> list[dict[str, Any]]:
    rows = connection.execute(sa.select(TABLE).order_by(TABLE.c.scheduled_at, TABLE.c.name))
    return [dict(r._mapping) for r in rows]


def run(engine: sa.Engine, name: str | None = None) -> list[dict[str, Any]]:
    """Run the named async migration, or every SCHEDULED and ERROR one; returns their rows."""
    with engine.connect() as connection:
        names = [r["name"] for r in listing(connection)
                 if (name is None and r["status"] in (SCHEDULED, ERROR)) or r["name"] == name]
    if name and not names:
        raise NotFoundError(f"no async migration named {name!r}")
    for each in names:
        with engine.connect() as connection:
            if connection.dialect.name == "sqlite":
                with connection.begin():
                    run_on(connection, each)
            else:
                run_on(connection.execution_options(isolation_level="AUTOCOMMIT"), each)
    with engine.connect() as connection:
        rows = [r for r in listing(connection) if r["name"] in names]
    failed = [r for r in rows if r["status"] == ERROR]
    if failed:
        raise AsyncMigrationError(
            f"async migration {failed[0]['name']} failed: {failed[0]['error']}", rows)
    return rows


class AsyncMigrationError(AnnotaError):
    def __init__(self, message: str, rows: list[dict[str, Any]]) -> None:
        super().__init__(message)
        self.rows = rows
