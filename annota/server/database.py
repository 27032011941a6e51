"""Engines and connections, with driver errors turned into one clear, masked line.

SQLAlchemy is imported inside the functions: read-only commands on SQLite use the
standard library's ``sqlite3`` (see ``read_revision``) and never pay for it.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
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
    """An engine for ``url``. On SQLite every transaction really is one (DDL included).

    Migrations pass ``foreign_keys=False``: SQLite batch mode recreates tables, and with
    enforcement on, dropping the old copy would cascade into the rows that reference it.
    """
    import sqlalchemy as sa

    if not url.is_sqlite:
        return sa.create_engine(
            url.sqlalchemy_url, connect_args={"connect_timeout": 10}, pool_pre_ping=True
        )
    engine = sa.create_engine(url.sqlalchemy_url, connect_args={"timeout": 30})

    @sa.event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection, _record) -> None:  # noqa: ANN001
        dbapi_connection.isolation_level = None  # we say BEGIN ourselves, below
        dbapi_connection.execute(f"PRAGMA foreign_keys = {'ON' if foreign_keys else 'OFF'}")

    @sa.event.listens_for(engine, "begin")
    def _on_begin(connection) -> None:  # noqa: ANN001
        connection.exec_driver_sql("BEGIN")

    return engine


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


def read_revision(url: DatabaseURL) -> str | None:
    """The database's current revision, opening nothing that does not exist."""
    if not url.is_sqlite:
        engine = create_engine(url)
        try:
            with connect(engine, url) as connection:
                return revision_on(connection)
        finally:
            engine.dispose()
    path = url.sqlite_path
    if path is None or not path.exists():
        return None
    try:
        # mode=rw, not ro: after a crash SQLite must be able to roll back a hot journal;
        # rw still never creates a missing file
        con = sqlite3.connect(f"{path.absolute().as_uri()}?mode=rw", uri=True, timeout=30)
        try:
            rows = con.execute(f"SELECT version_num FROM {VERSION_TABLE}").fetchall()
        finally:
            con.close()
    except sqlite3.OperationalError as exc:
        if "no such table" in str(exc):
            return None
        raise unreachable(url, exc) from None
    except sqlite3.DatabaseError as exc:
        raise unreachable(url, exc) from None
    return _single(row[0] for row in rows)


def _single(revisions) -> str | None:  # noqa: ANN001
    found = list(revisions)
    if len(found) > 1:
        raise AnnotaError(
            f"the database is stamped with several revisions ({', '.join(found)}); "
            "annota's history is linear, so this database was branched by hand"
        )
    return found[0] if found else None
