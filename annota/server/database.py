"""Engines and connections, with driver errors turned into one clear, masked line.

SQLAlchemy is imported inside the functions: read-only commands on SQLite use the
standard library's ``sqlite3`` (see ``read_revision``) and never pay for it.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from annota.errors import AnnotaError, DatabaseUnreachableError
from annota.server.dburl import DatabaseURL

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection, Engine

VERSION_TABLE = "alembic_version"


def first_line(exc: BaseException) -> str:
    orig = getattr(exc, "orig", None) or exc
    text = str(orig).strip().splitlines()
    return text[0] if text else type(orig).__name__


def unreachable(url: DatabaseURL, exc: BaseException) -> DatabaseUnreachableError:
    return DatabaseUnreachableError(
        f"cannot open the database at {url.masked}: {url.scrub(first_line(exc))}"
    )


def create_engine(url: DatabaseURL, *, foreign_keys: bool = True) -> Engine:
    """An engine for ``url``. On SQLite every transaction really is one (DDL included) and
    takes the write lock when it begins, so concurrent writers queue instead of failing.

    Migrations pass ``foreign_keys=False``: SQLite batch mode recreates tables, and with
    enforcement on, dropping the old copy would cascade into the rows that reference it.
    """
    import sqlalchemy as sa

    if not url.is_sqlite:
        engine = sa.create_engine(
            url.sqlalchemy_url, connect_args={"connect_timeout": 10}, pool_pre_ping=True,
            hide_parameters=True,  # errors never echo values (hashes, keys, user data)
        )
        _unreachable_on_connect_errors(engine, url)
        return engine
    engine = sa.create_engine(url.sqlalchemy_url, connect_args={"timeout": 30},
                              hide_parameters=True)
    _unreachable_on_connect_errors(engine, url)

    @sa.event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection, _record) -> None:  # noqa: ANN001
        dbapi_connection.isolation_level = None  # we say BEGIN ourselves, below
        dbapi_connection.execute(f"PRAGMA foreign_keys = {'ON' if foreign_keys else 'OFF'}")
        # WAL: readers never wait for the writer, and commits cost no full fsync
        dbapi_connection.execute("PRAGMA journal_mode = WAL")
        dbapi_connection.execute("PRAGMA synchronous = NORMAL")

    @sa.event.listens_for(engine, "begin")
    def _on_begin(connection) -> None:  # noqa: ANN001
        # IMMEDIATE: take the write lock up front. A deferred transaction that reads and
        # then writes can deadlock with another writer, and SQLite then fails it at once
        # ("database is locked") instead of waiting out the busy timeout.
        connection.exec_driver_sql("BEGIN IMMEDIATE")

    return engine


def _unreachable_on_connect_errors(engine: Engine, url: DatabaseURL) -> None:
    """Every failure to open a connection, wherever it happens, is one masked line."""
    import sqlalchemy as sa

    @sa.event.listens_for(engine, "handle_error")
    def _on_error(context) -> None:  # noqa: ANN001
        if context.connection is None or context.is_disconnect:
            raise unreachable(url, context.original_exception)


@contextmanager
def connect(engine: Engine, url: DatabaseURL) -> Iterator[Connection]:
    """``engine.connect()`` whose connection failures raise ``DatabaseUnreachableError``."""
    from sqlalchemy.exc import DBAPIError

    try:
        connection = engine.connect()
    except DBAPIError as exc:
        raise unreachable(url, exc) from None
    with connection:
        yield connection


def revision_on(connection: Connection) -> str | None:
    """The revision stamped in the database behind ``connection`` (None when empty)."""
    import sqlalchemy as sa

    if not sa.inspect(connection).has_table(VERSION_TABLE):
        return None
    rows = connection.execute(sa.text(f"SELECT version_num FROM {VERSION_TABLE}")).all()
    return _single(row[0] for row in rows)


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


def read_revision(url: DatabaseURL) -> str | None:
    """The database's current revision, opening nothing that does not exist."""
    return read_state(url, with_pending=False).revision


def read_state(url: DatabaseURL, *, with_pending: bool = True) -> DatabaseState:
    """Revision and unfinished operational work (scheduled async migrations, backfill jobs
    not completed). SQLite is read with the standard library, for speed."""
    if not url.is_sqlite:
        import sqlalchemy as sa

        engine = create_engine(url)
        try:
            with connect(engine, url) as connection:
                revision = revision_on(connection)
                tables = set(sa.inspect(connection).get_table_names()) if with_pending else ()
                pending = {
                    key: dict(connection.execute(sa.text(sql)).tuples().all())
                    for key, sql in PENDING_WORK.items() if _table_of(sql) in tables
                }
                return DatabaseState(revision, pending)
        finally:
            engine.dispose()
    path = url.sqlite_path
    if path is None or not path.exists():
        return DatabaseState(None)
    try:
        # mode=rw, not ro: after a crash SQLite must be able to roll back a hot journal;
        # rw still never creates a missing file
        con = sqlite3.connect(f"{path.absolute().as_uri()}?mode=rw", uri=True, timeout=30)
        try:
            tables = {r[0] for r in con.execute("SELECT name FROM sqlite_master")}
            if VERSION_TABLE not in tables:
                return DatabaseState(None)
            rows = con.execute(f"SELECT version_num FROM {VERSION_TABLE}").fetchall()
            pending = {key: dict(con.execute(sql).fetchall())
                       for key, sql in PENDING_WORK.items()
                       if with_pending and _table_of(sql) in tables}
        finally:
            con.close()
    except sqlite3.DatabaseError as exc:
        raise unreachable(url, exc) from None
    return DatabaseState(_single(row[0] for row in rows), pending)


def _table_of(sql: str) -> str:
    return sql.split(" FROM ", 1)[1].split()[0]


def _single(revisions) -> str | None:  # noqa: ANN001
    found = list(revisions)
    if len(found) > 1:
        raise AnnotaError(
            f"the database is stamped with several revisions ({', '.join(found)}); "
            "annota's history is linear, so this database was branched by hand"
        )
    return found[0] if found else None
