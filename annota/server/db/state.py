"""The schema's own state in a database: the stamped revision and unfinished work.

How a database is read (SQLite with the standard library, PostgreSQL with SQLAlchemy) is
the dialect's business; what is read, and how it is summed up, is written once here.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from annota.errors import AnnotaError

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection

VERSION_TABLE = "alembic_version"

# the schema's own operational state, reported by `current` and `check`
PENDING_WORK = {
    "async_migrations": "SELECT status, COUNT(*) FROM async_migrations "
                        "WHERE status <> 'FINISHED' GROUP BY status",
    "backfills": "SELECT status, COUNT(*) FROM backfill_jobs "
                 "WHERE status <> 'COMPLETED' GROUP BY status",
}


@dataclass(frozen=True)
class DatabaseState:
    revision: str | None
    pending: dict[str, dict[str, int]] = field(default_factory=dict)
    # the tables of a database with no alembic_version: another application's
    foreign_tables: tuple[str, ...] = ()


def table_of(sql: str) -> str:
    return sql.split(" FROM ", 1)[1].split()[0]


def state_on(connection: Connection, *, with_pending: bool = True) -> DatabaseState:
    """The state of the database behind ``connection`` (any dialect, through SQLAlchemy)."""
    import sqlalchemy as sa

    tables = set(sa.inspect(connection).get_table_names())
    if VERSION_TABLE not in tables:
        return DatabaseState(None, foreign_tables=tuple(sorted(tables)))
    rows = connection.execute(sa.text(f"SELECT version_num FROM {VERSION_TABLE}")).all()
    pending = {key: dict(connection.execute(sa.text(sql)).tuples().all())
               for key, sql in PENDING_WORK.items() if with_pending and table_of(sql) in tables}
    return DatabaseState(single_revision(row[0] for row in rows), pending)


def single_revision(revisions: Iterable[str]) -> str | None:
    found = list(revisions)
    if len(found) > 1:
        raise AnnotaError(
            f"the database is stamped with several revisions ({', '.join(found)}); "
            "annota's history is linear, so this database was branched by hand"
        )
    return found[0] if found else None
