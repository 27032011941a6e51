"""What differs between SQLite and PostgreSQL: one class each, asked by every caller.

The search side keeps Elasticsearch and OpenSearch apart the same way. Nothing outside
this module asks which database it is on; it asks the dialect what to do:

- connections: SQLite in WAL mode, every transaction BEGIN IMMEDIATE; PostgreSQL on
  psycopg 3 with a connect timeout;
- reading the schema state: the standard library's sqlite3 (fast) or SQLAlchemy;
- the migration lock: an OS file lock beside the SQLite file, or an advisory lock;
- before a downgrade: a copy made with the sqlite3 backup API (PostgreSQL: none);
- Alembic: batch mode (table rebuilds) on SQLite; ``--sql`` only on PostgreSQL;
- heavy SQL (async migrations): inside the revision's transaction on SQLite, in
  autocommit (CONCURRENTLY) on PostgreSQL;
- JSON documents: JSON, or JSONB; JSON built in SQL (``json_sql.py``);
- backfill writers: one that pauses between batches, or a thread pool;
- upgrade's preflight: the version, disk and locks to check (``health.py``).
"""

from __future__ import annotations

import sqlite3
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from annota.errors import ConfigurationError, ReindexError, UnsupportedOperationError
from annota.server.db.connections import report_connect_errors, unreachable
from annota.server.db.health import PostgreSQLHealth, SQLiteHealth
from annota.server.db.json_sql import PostgreSQLJSON, SQLiteJSON
from annota.server.db.locks import (
    Blockers,
    advisory_lock,
    dataset_key,
    exclusive_advisory_lock,
    file_lock,
)
from annota.server.db.state import (
    PENDING_WORK,
    VERSION_TABLE,
    DatabaseState,
    single_revision,
    state_on,
    table_of,
)
from annota.urls import DatabaseURL

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection, Engine


class Dialect(ABC):
    name: str  # SQLAlchemy's name for it
    refuses_nul_in_json = False  # jsonb cannot hold \u0000 (see schema/repairs.py)
    render_as_batch = False  # Alembic batch mode: rebuild tables to alter constraints
    batch_pause = 0.0  # seconds a backfill yields between batches to waiting writers
    json: SQLiteJSON | PostgreSQLJSON  # JSON built in SQL
    health: SQLiteHealth | PostgreSQLHealth  # what upgrade's preflight checks

    @abstractmethod
    def open_database(self, url: DatabaseURL, *, foreign_keys: bool = True) -> Engine: ...

    def read_state(self, url: DatabaseURL, *, with_pending: bool = True) -> DatabaseState:
        """The stamped revision, unfinished operational work, and foreign tables."""
        database = self.open_database(url)
        try:
            from annota.server.db.connections import connect

            with connect(database, url) as connection:
                return state_on(connection, with_pending=with_pending)
        finally:
            database.dispose()

    def prepare(self, url: DatabaseURL) -> None:  # noqa: B027 - nothing, unless overridden
        """Make room for a database that may not exist yet."""

    @abstractmethod
    def migration_lock(self, url: DatabaseURL, connection: Connection, *, timeout: float,
                       on_wait: Callable[[], None] = lambda: None) -> Any:
        """A context manager: no other ``migrate`` runs on this database meanwhile."""

    def backup(self, url: DatabaseURL, revision: str | None) -> Path | None:
        """Copy the database before a downgrade; the copy's path, or None."""
        return None

    def check_offline_sql(self) -> None:  # noqa: B027
        """Raise when ``migrate --sql`` cannot work here."""

    def backfill_threads(self, configured: int) -> int:
        return configured

    # -- SQL that revisions write ----------------------------------------------------------
    @abstractmethod
    def new_uuid_sql(self) -> str: ...

    @abstractmethod
    def utc_now_sql(self) -> str: ...

    def document_type(self) -> Any:
        import sqlalchemy as sa

        return sa.JSON()

    # -- heavy SQL outside the revision's transaction (async migrations) ----------------------
    def applies(self, migration: Any) -> bool:
        """Whether a revision applies this async migration here."""
        return True

    @abstractmethod
    def heavy_sql(self, migration: Any) -> tuple[str, str]:
        """(sql, rollback sql) of an async migration on this database."""

    @abstractmethod
    def run_heavy(self, context: Any, run: Callable[[], Any]) -> None:
        """Run ``run()`` from inside a revision (Alembic ``context``)."""

    @abstractmethod
    def revert_heavy(self, op: Any, rollback_sql: str) -> None:
        """Run an async migration's rollback SQL from inside a revision's downgrade."""

    @abstractmethod
    def heavy_connection(self, connection: Connection) -> Any:
        """A context manager giving the connection to run heavy SQL on outside a revision."""

    def drop_invalid_index(self, connection: Connection, index: str) -> None:  # noqa: B027
        """Drop ``index`` if a failed concurrent build left it invalid."""

    # -- pausing a dataset's writers (a reindex's final check and swap) -----------------------
    @abstractmethod
    def writes_paused(self, database: Engine, dataset_id: object, timeout: float) -> Any:
        """A context manager: no transaction that joined the dataset's writes (below) is
        open or can begin meanwhile. ``ReindexError`` if writers keep it busy too long."""

    @contextmanager
    def ddl_guard(self, database: Engine, connection: Connection, *, lock_timeout: float,
                  statement_timeout: float) -> Iterator[Blockers]:
        """Around a migration: bound how long its DDL may wait for locks and run, and watch
        who blocks it. SQLite has one writer and the migration lock: nothing to bound."""
        yield Blockers(None, None)

    def is_lock_timeout(self, exc: BaseException) -> bool:
        """Whether ``exc`` is a statement giving up on a lock (worth trying again)."""
        return False

    def join_writes(self, connection: Connection, dataset_id: object) -> None:  # noqa: B027
        """Called in a transaction that wrote the dataset's indexed data, just before it
        commits: a reindex's final check and swap (``writes_paused``) wait for it, and it
        for them."""

    @abstractmethod
    def _insert(self, table: Any) -> Any:
        """This database's INSERT construct (the one with ON CONFLICT)."""

    def upsert(self, table: Any, keys: list[str], update: list[str]) -> Any:
        """INSERT into ``table``; a row whose ``keys`` exist has its ``update`` columns
        set from the new one (``ON CONFLICT ... DO UPDATE``, on both databases)."""
        insert = self._insert(table)
        return insert.on_conflict_do_update(
            index_elements=keys, set_={c: insert.excluded[c] for c in update})


class SQLiteDialect(Dialect):
    name = "sqlite"
    render_as_batch = True
    json = SQLiteJSON()
    health = SQLiteHealth()
    # one writer and no fair queue: pause so a waiting writer (a cancel, the app) gets the
    # lock within its busy handler's 100 ms retries
    batch_pause = 0.15

    def open_database(self, url: DatabaseURL, *, foreign_keys: bool = True) -> Engine:
        """Every transaction really is one (DDL included) and takes the write lock when it
        begins, so concurrent writers queue instead of failing.

        Migrations pass ``foreign_keys=False``: batch mode recreates tables, and with
        enforcement on, dropping the old copy would cascade into the rows that reference it.
        """
        import sqlalchemy as sa

        target = (sa.URL.create("sqlite", database=str(url.sqlite_path))
                  if url.sqlite_path is not None else url.sqlalchemy_url)
        database = sa.create_engine(target, connect_args={"timeout": 30}, hide_parameters=True)
        report_connect_errors(database, url)

        @sa.event.listens_for(database, "connect")
        def _on_connect(dbapi_connection, _record) -> None:  # noqa: ANN001
            dbapi_connection.isolation_level = None  # we say BEGIN ourselves, below
            dbapi_connection.execute(f"PRAGMA foreign_keys = {'ON' if foreign_keys else 'OFF'}")
            # WAL: readers never wait for the writer, and commits cost no full fsync
            _wal(dbapi_connection, timeout=30)
            dbapi_connection.execute("PRAGMA synchronous = NORMAL")

        @sa.event.listens_for(database, "begin")
        def _on_begin(connection) -> None:  # noqa: ANN001
            # IMMEDIATE: a writing transaction takes the write lock up front. A deferred one
            # that reads and then writes can deadlock with another writer, and SQLite then
            # fails it at once ("database is locked") instead of waiting out the busy
            # timeout. Readers (read_only(db)) begin deferred: in WAL they never wait.
            read_only = connection.get_execution_options().get(READ_ONLY)
            connection.exec_driver_sql("BEGIN" if read_only else "BEGIN IMMEDIATE")

        return database

    def read_state(self, url: DatabaseURL, *, with_pending: bool = True) -> DatabaseState:
        """Read with the standard library: no SQLAlchemy import, and no file created."""
        path = url.sqlite_path
        if path is None or not path.exists():
            return DatabaseState(None)
        try:
            # mode=rw, not ro: after a crash SQLite must be able to roll back a hot journal;
            # rw still never creates a missing file
            con = sqlite3.connect(f"{path.absolute().as_uri()}?mode=rw", uri=True, timeout=30)
            try:
                tables = {r[0] for r in con.execute(
                    "SELECT name FROM sqlite_master WHERE type = 'table' "
                    "AND name NOT LIKE 'sqlite_%'")}
                if VERSION_TABLE not in tables:
                    return DatabaseState(None, foreign_tables=tuple(sorted(tables)))
                rows = con.execute(f"SELECT version_num FROM {VERSION_TABLE}").fetchall()
                pending = {key: dict(con.execute(sql).fetchall())
                           for key, sql in PENDING_WORK.items()
                           if with_pending and table_of(sql) in tables}
            finally:
                con.close()
        except sqlite3.DatabaseError as exc:
            raise unreachable(url, exc) from None
        return DatabaseState(single_revision(row[0] for row in rows), pending)

    def prepare(self, url: DatabaseURL) -> None:
        if url.sqlite_path is not None:
            try:
                url.sqlite_path.parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:  # a parent that is a file, no permission, read-only
                raise ConfigurationError(
                    f"cannot create {url.sqlite_path.parent}, the SQLite database's directory: "
                    f"{exc.strerror or exc}; check ANNOTA_HOME or ANNOTA_DATABASE_URL"
                ) from None

    def migration_lock(self, url: DatabaseURL, connection: Connection, *, timeout: float,
                       on_wait: Callable[[], None] = lambda: None) -> Any:
        if url.sqlite_path is None:  # in-memory: private to this process
            return _nothing()
        path = url.sqlite_path.with_name(url.sqlite_path.name + ".migrate.lock")
        return file_lock(path, timeout=timeout, on_wait=on_wait)

    def backup(self, url: DatabaseURL, revision: str | None) -> Path | None:
        """Copy the live file with the sqlite3 backup API, beside it."""
        from datetime import datetime

        path = url.sqlite_path
        if path is None:
            return None
        stamp = datetime.now().strftime("%Y%m%dT%H%M%S")
        dest = path.with_name(f"{path.name}.{stamp}-{revision or 'base'}.bak")
        n = 1
        while dest.exists():
            n += 1
            dest = path.with_name(f"{path.name}.{stamp}-{revision or 'base'}.{n}.bak")
        source, copy = sqlite3.connect(path), sqlite3.connect(dest)
        try:
            source.backup(copy)
        finally:
            copy.close()
            source.close()
        return dest

    def check_offline_sql(self) -> None:
        raise UnsupportedOperationError(
            "--sql is not available on SQLite: its migrations rebuild tables in batch mode, "
            "which needs the live schema; back up the file and migrate it instead"
        )

    def backfill_threads(self, configured: int) -> int:
        return 1  # one writer at a time: more threads would only wait on its lock

    def new_uuid_sql(self) -> str:
        return "lower(hex(randomblob(16)))"

    def utc_now_sql(self) -> str:
        return "CURRENT_TIMESTAMP"

    def applies(self, migration: Any) -> bool:
        return migration.apply_on_sqlite

    def heavy_sql(self, migration: Any) -> tuple[str, str]:
        return (migration.sqlite_sql or migration.sql,
                migration.sqlite_rollback_sql or migration.rollback_sql)

    def run_heavy(self, context: Any, run: Callable[[], Any]) -> None:
        run()  # no concurrent builds here: inside the revision's transaction

    def revert_heavy(self, op: Any, rollback_sql: str) -> None:
        op.execute(rollback_sql)

    @contextmanager
    def heavy_connection(self, connection: Connection) -> Iterator[Connection]:
        with connection.begin():
            yield connection

    def _insert(self, table: Any) -> Any:
        from sqlalchemy.dialects.sqlite import insert

        return insert(table)

    @contextmanager
    def writes_paused(self, database: Engine, dataset_id: object,
                      timeout: float) -> Iterator[None]:
        # every writing transaction holds SQLite's one write lock: holding it pauses them
        # all (the busy timeout bounds the wait for the one in progress)
        from sqlalchemy.exc import OperationalError

        with database.connect() as connection:
            writer = connection.execution_options(**{READ_ONLY: False})
            try:
                transaction = writer.begin()
            except OperationalError as exc:
                raise _writers_busy(dataset_id, str(exc.orig)) from None
            try:
                yield
            finally:
                transaction.rollback()  # nothing was written under it


class PostgreSQLDialect(Dialect):
    name = "postgresql"
    refuses_nul_in_json = True
    json = PostgreSQLJSON()
    health = PostgreSQLHealth()

    def open_database(self, url: DatabaseURL, *, foreign_keys: bool = True) -> Engine:
        import sqlalchemy as sa

        database = sa.create_engine(
            url.sqlalchemy_url, connect_args={"connect_timeout": 10}, pool_pre_ping=True,
            hide_parameters=True,  # errors never echo values (hashes, keys, user data)
        )
        report_connect_errors(database, url)
        return database

    def migration_lock(self, url: DatabaseURL, connection: Connection, *, timeout: float,
                       on_wait: Callable[[], None] = lambda: None) -> Any:
        return advisory_lock(connection, timeout=timeout, on_wait=on_wait)

    def new_uuid_sql(self) -> str:
        return "gen_random_uuid()"

    def utc_now_sql(self) -> str:
        return "(CURRENT_TIMESTAMP AT TIME ZONE 'UTC')"

    def document_type(self) -> Any:
        from sqlalchemy.dialects.postgresql import JSONB

        return JSONB()

    def heavy_sql(self, migration: Any) -> tuple[str, str]:
        return migration.sql, migration.rollback_sql

    def run_heavy(self, context: Any, run: Callable[[], Any]) -> None:
        with context.autocommit_block():  # CONCURRENTLY cannot run in a transaction
            bind = context.connection
            # a concurrent build waits for old transactions and may take long, by design:
            # the revision's lock and statement timeouts do not apply to it
            saved = {name: bind.exec_driver_sql(f"SHOW {name}").scalar()
                     for name in ("lock_timeout", "statement_timeout")}
            for name in saved:
                bind.exec_driver_sql(f"SET {name} = 0")
            try:
                run()
            finally:
                for name, value in saved.items():
                    bind.exec_driver_sql(f"SET {name} = '{value}'")

    @contextmanager
    def ddl_guard(self, database: Engine, connection: Connection, *, lock_timeout: float,
                  statement_timeout: float) -> Iterator[Blockers]:
        connection.exec_driver_sql(f"SET lock_timeout = '{int(lock_timeout * 1000)}ms'")
        connection.exec_driver_sql(
            f"SET statement_timeout = '{int(statement_timeout * 1000)}ms'")
        pid = connection.exec_driver_sql("SELECT pg_backend_pid()").scalar()
        connection.commit()  # session settings: they outlive this transaction
        try:
            with Blockers(database, pid) as blockers:
                yield blockers
        finally:
            connection.rollback()
            connection.exec_driver_sql("RESET lock_timeout")
            connection.exec_driver_sql("RESET statement_timeout")
            connection.commit()

    def is_lock_timeout(self, exc: BaseException) -> bool:
        return getattr(getattr(exc, "orig", exc), "sqlstate", None) == "55P03"

    def revert_heavy(self, op: Any, rollback_sql: str) -> None:
        context = op.get_context()
        if context.as_sql:
            op.execute(rollback_sql)
            return
        with context.autocommit_block():
            op.get_bind().exec_driver_sql(rollback_sql)

    @contextmanager
    def heavy_connection(self, connection: Connection) -> Iterator[Connection]:
        # autocommit: each state change is visible at once, and CONCURRENTLY can run
        yield connection.execution_options(isolation_level="AUTOCOMMIT")

    @contextmanager
    def writes_paused(self, database: Engine, dataset_id: object,
                      timeout: float) -> Iterator[None]:
        with database.connect() as connection, exclusive_advisory_lock(
                connection, dataset_key(dataset_id), timeout=timeout,
                timed_out=lambda what: _writers_busy(dataset_id, f"waited for {what}")):
            yield

    def _insert(self, table: Any) -> Any:
        from sqlalchemy.dialects.postgresql import insert

        return insert(table)

    def join_writes(self, connection: Connection, dataset_id: object) -> None:
        import sqlalchemy as sa

        connection.execute(sa.text("SELECT pg_advisory_xact_lock_shared(:key)"),
                           {"key": dataset_key(dataset_id)})

    def drop_invalid_index(self, connection: Connection, index: str) -> None:
        import sqlalchemy as sa

        valid = connection.execute(sa.text(
            "SELECT i.indisvalid FROM pg_class c JOIN pg_index i ON i.indexrelid = c.oid "
            "WHERE c.relname = :name"), {"name": index}).scalar_one_or_none()
        if valid is False:  # left by a failed concurrent build: IF NOT EXISTS would keep it
            connection.exec_driver_sql(f'DROP INDEX CONCURRENTLY IF EXISTS "{index}"')


def _wal(dbapi_connection: Any, timeout: float) -> None:
    """Switch a SQLite file to WAL (once: the mode is kept in the file). The switch needs
    the file to itself and SQLite answers "database is locked" at once, without its busy
    handler, while another process opens the same new file: retry until ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            dbapi_connection.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.05)


READ_ONLY = "annota_read_only"


def _writers_busy(dataset_id: object, why: str) -> ReindexError:
    return ReindexError(f"the writers of dataset {dataset_id} kept it busy ({why}); "
                        "alias not switched: run the reindex again")


def writable(database: Engine) -> Engine:
    """The same database for transactions that write, from a ``read_only`` one."""
    return database.execution_options(**{READ_ONLY: False})


def read_only(database: Engine) -> Engine:
    """The same database for transactions that only read: on SQLite they begin deferred,
    so a long read (a reindex) neither waits for nor blocks the writers."""
    return database.execution_options(**{READ_ONLY: True})


@contextmanager
def _nothing() -> Iterator[None]:
    yield


DIALECTS: dict[str, Dialect] = {d.name: d for d in (SQLiteDialect(), PostgreSQLDialect())}


def dialect_for(url: DatabaseURL) -> Dialect:
    return DIALECTS[url.backend]


def dialect_named(name: str) -> Dialect:
    """The dialect of a SQLAlchemy or Alembic object's ``dialect.name``."""
    return DIALECTS[name]


def dialect_of(connection: Connection | Engine) -> Dialect:
    return DIALECTS[connection.dialect.name]


def document_type() -> Any:
    """The column type of JSON documents that are queried: each dialect's own."""
    import sqlalchemy as sa

    column_type: Any = sa.JSON()
    for dialect in DIALECTS.values():
        column_type = column_type.with_variant(dialect.document_type(), dialect.name)
    return column_type
