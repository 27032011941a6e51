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


def table_of(sql: str) -> str:
    return sql.split(" FROM ", 1)[1].split()[0]


def revision_on(connection: Connection) -> str | None:
    """The revision stamped in the database behind ``connection`` (None when empty)."""
    import sqlalchemy as sa

    if not sa.inspect(connection).has_table(VERSION_TABLE):
        return None
    rows = connection.execute(sa.text(f"SELECT version_num FROM {VERSION_TABLE}")).all()
    return single_revision(row[0] for row in rows)


def single_revision(revisions: Iterable[str]) -> str | None:
    found = list(revisions)
    if len(found) > 1:
        raise AnnotaError(
            f"the database is stamped with several revisions ({', '.join(found)}); "
            "annota's history is linear, so this database was branched by hand"
        )
    return found[0] if found else None
