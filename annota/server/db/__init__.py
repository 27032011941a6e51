"""The database: URLs become engines and connections through the dialect of each backend.

``open_database`` and ``read_state`` are what the layers above use; they never ask which
backend they are on (see ``dialects.py``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from annota.server.db.connections import connect, first_line
from annota.server.db.dialects import (
    Dialect,
    dialect_for,
    dialect_named,
    dialect_of,
    read_only,
    writable,
)
from annota.server.db.state import VERSION_TABLE, DatabaseState, state_on
from annota.urls import DatabaseURL

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

__all__ = ["VERSION_TABLE", "DatabaseState", "Dialect", "connect", "dialect_for",
           "dialect_named", "dialect_of", "first_line", "open_database", "read_only",
           "read_state", "state_on", "writable"]


def open_database(url: DatabaseURL, *, foreign_keys: bool = True) -> Engine:
    """A SQLAlchemy engine for ``url``, set up by its dialect."""
    return dialect_for(url).open_database(url, foreign_keys=foreign_keys)


def read_state(url: DatabaseURL, *, with_pending: bool = True) -> DatabaseState:
    """Revision and unfinished operational work (scheduled async migrations, backfill jobs
    not completed), opening nothing that does not exist."""
    return dialect_for(url).read_state(url, with_pending=with_pending)

