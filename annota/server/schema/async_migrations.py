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

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

import sqlalchemy as sa

from annota.errors import AsyncMigrationError, NotFoundError
from annota.server.db import dialect_named, dialect_of, first_line
from annota.urls import DatabaseURL

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
    """What ``migrate``'s settings said (``ANNOTA_ALLOW_SCHEDULED_MIGRATIONS``), handed to
    the revisions through Alembic's config attributes; no settings means no scheduling."""
    return bool((attributes or {}).get("allow_scheduled_migrations"))


def _row(migration: AsyncMigration, revision: str, sql: tuple[str, str]) -> dict[str, Any]:
    now = utcnow()
    return {
        "name": migration.name, "revision": revision, "status": SCHEDULED,
        "sql": sql[0], "rollback_sql": sql[1],
        "index_name": migration.index, "attempts": 0, "error": None,
        "scheduled_at": now, "inserted_at": now, "updated_at": now,
    }


def apply(op, migration: AsyncMigration, revision: str) -> None:  # noqa: ANN001 - alembic op
    """Call from a revision's ``upgrade()``."""
    context = op.get_context()
    dialect = dialect_named(context.dialect.name)
    if not dialect.applies(migration):
        return
    sql = dialect.heavy_sql(migration)
    op.execute(sa.delete(TABLE).where(TABLE.c.name == migration.name))
    op.execute(sa.insert(TABLE).values(**_row(migration, revision, sql)))
    attributes = getattr(context.config, "attributes", {}) if context.config else {}
    if context.as_sql or (scheduling_allowed(attributes) and not migration.execute_immediately):
        return
    dialect.run_heavy(context, lambda: run_on(op.get_bind(), migration.name))


def revert(op, migration: AsyncMigration) -> None:  # noqa: ANN001
    """Call from a revision's ``downgrade()``: runs the rollback SQL, forgets the row."""
    dialect = dialect_named(op.get_context().dialect.name)
    if dialect.applies(migration):
        dialect.revert_heavy(op, dialect.heavy_sql(migration)[1])
    op.execute(sa.delete(TABLE).where(TABLE.c.name == migration.name))


def _set(connection: sa.Connection, name: str, **values: Any) -> None:
    # on PostgreSQL the connection is in autocommit: each state is visible at once
    connection.execute(sa.update(TABLE).where(TABLE.c.name == name)
                       .values(updated_at=utcnow(), **values))


def run_on(connection: sa.Connection, name: str, claimable: tuple[str, ...] = (SCHEDULED, ERROR)
           ) -> bool:
    """Run one async migration on ``connection`` (autocommit on PostgreSQL). Claims it
    atomically (SCHEDULED or ERROR -> STARTED), so two runners never both run it.
    Returns True when FINISHED; an error is recorded, not raised."""
    claimed = connection.execute(
        sa.update(TABLE)
        .where(TABLE.c.name == name, TABLE.c.status.in_(claimable))
        .values(status=STARTED, attempts=TABLE.c.attempts + 1, started_at=utcnow(),
                updated_at=utcnow(), error=None)
    ).rowcount
    if not claimed:
        return False
    row = connection.execute(sa.select(TABLE).where(TABLE.c.name == name)).one()
    try:
        if row.index_name:
            dialect_of(connection).drop_invalid_index(connection, row.index_name)
        _set(connection, name, status=IN_PROGRESS)
        connection.exec_driver_sql(row.sql)
    except sa.exc.DBAPIError as exc:
        _set(connection, name, status=ERROR, error=first_line(exc), finished_at=utcnow())
        return False
    _set(connection, name, status=FINISHED, finished_at=utcnow())
    return True


def schedule(connection: sa.Connection, migration: AsyncMigration, revision: str = "") -> None:
    """Record ``migration`` as SCHEDULED (outside a revision: operators' own heavy SQL)."""
    connection.execute(sa.delete(TABLE).where(TABLE.c.name == migration.name))
    sql = dialect_of(connection).heavy_sql(migration)
    connection.execute(sa.insert(TABLE), _row(migration, revision, sql))


def listing(connection: sa.Connection) -> list[dict[str, Any]]:
    rows = connection.execute(sa.select(TABLE).order_by(TABLE.c.scheduled_at, TABLE.c.name))
    return [dict(r._mapping) for r in rows]


ORPHANED = (STARTED, IN_PROGRESS)  # under the migration lock: their runner died


def run(db: sa.Engine, url: DatabaseURL, name: str | None = None, *,
        lock_timeout: float = 300.0, on_wait: Callable[[], None] = lambda: None
        ) -> list[dict[str, Any]]:
    """Run the named async migration, or every unfinished one; returns their rows.

    Runs hold the migration lock, as ``migrate`` does (which runs them too), so one found
    STARTED or IN_PROGRESS belonged to a runner that died (even by SIGKILL, which leaves
    PostgreSQL's autocommitted status behind): it is run again, its INVALID index dropped.
    """
    dialect = dialect_of(db)
    with db.connect() as lock_connection, dialect.migration_lock(
            url, lock_connection, timeout=lock_timeout, on_wait=on_wait):
        with db.connect() as connection:
            names = [r["name"] for r in listing(connection)
                     if (name is None and r["status"] != FINISHED) or r["name"] == name]
        if name and not names:
            raise NotFoundError(f"no async migration named {name!r}")
        for each in names:
            with db.connect() as connection, dialect.heavy_connection(connection) as heavy:
                run_on(heavy, each, (SCHEDULED, ERROR, *ORPHANED))
    with db.connect() as connection:
        rows = [r for r in listing(connection) if r["name"] in names]
    failed = [r for r in rows if r["status"] == ERROR]
    if failed:
        raise AsyncMigrationError(
            f"async migration {failed[0]['name']} failed: {failed[0]['error']}", rows)
    return rows
