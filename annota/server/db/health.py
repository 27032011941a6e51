"""What ``upgrade``'s preflight asks of the database, one class per backend (as
``json_sql.py``; each dialect holds its own as ``health``): its version, the disk its
batch copies need, and the locks other sessions hold. Each answer is a ``Finding``: what
was found, and what to do when it stops the upgrade (None: it passed). The search engines
answer in ``Finding`` too (``SearchEngine.findings``).
"""

from __future__ import annotations

import shutil
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from annota.server.db.connections import connect, unreachable
from annota.urls import DatabaseURL

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

MIN_POSTGRES = 13
MIN_SQLITE = (3, 35)  # RETURNING, ALTER TABLE DROP COLUMN
# a session idle this long inside a transaction that holds a lock on annota's tables is
# named (a busy one is not: a revision waits for it under its lock timeout and retries,
# and another replica's migration is one)
IDLE_SECONDS = 2


@dataclass(frozen=True)
class Finding:
    name: str
    detail: str
    fix: str | None = None


def free_bytes(path: Path) -> int:
    """Free space on the disk that holds ``path`` (or would: its nearest existing parent)."""
    while not path.exists() and path != path.parent:
        path = path.parent
    return shutil.disk_usage(path).free


def mount_of(path: Path) -> Path:
    """The mount point holding ``path`` (two directories of one disk count once)."""
    while not path.exists() and path != path.parent:
        path = path.parent
    path = path.resolve()
    while not path.is_mount():
        path = path.parent
    return path


def mib(size: int) -> str:
    return f"{size / (1 << 20):.1f} MiB"


class SQLiteHealth:
    def version(self, database: Engine, url: DatabaseURL) -> Finding:
        ok = sqlite3.sqlite_version_info >= MIN_SQLITE
        return Finding("database-version", f"SQLite {sqlite3.sqlite_version}", None if ok
                       else f"annota needs SQLite {'.'.join(map(str, MIN_SQLITE))} or "
                       "later: use a Python built with a newer SQLite")

    def disk(self, url: DatabaseURL, backup_dir: Path | None) -> Finding:
        """The batch migrations copy a table whole, and the backup writes an archive: each
        may need up to the database's size free."""
        path = url.sqlite_path
        assert path is not None
        if not path.exists():
            return Finding("database-disk", f"{path} does not exist yet")
        wal = path.with_name(path.name + "-wal")
        size = path.stat().st_size + (wal.stat().st_size if wal.exists() else 0)
        needs: dict[Path, int] = {mount_of(path.parent): size}
        if backup_dir is not None:
            where = mount_of(backup_dir)
            needs[where] = needs.get(where, 0) + size
        free = {where: free_bytes(where) for where in needs}
        short = [f"{where} has {mib(free[where])} free, needs {mib(need)}"
                 for where, need in needs.items() if free[where] < need]
        if short:
            return Finding("database-disk", "; ".join(short),
                           "free disk space (the batch copies of SQLite's tables and the "
                           "backup each need up to the database's size), or --backup-to "
                           "another disk")
        return Finding("database-disk", f"database {mib(size)}; enough free for its batch "
                       "copies" + (" and the backup" if backup_dir is not None else ""))

    def locks(self, database: Engine, url: DatabaseURL) -> Finding:
        """SQLite's write lock, tried and given back at once."""
        path = url.sqlite_path
        if path is None or not path.exists():
            return Finding("database-locks", "no database file yet")
        connection = sqlite3.connect(path, timeout=2.0, isolation_level=None)
        try:
            connection.execute("BEGIN IMMEDIATE")
            connection.execute("ROLLBACK")
        except sqlite3.DatabaseError as exc:
            if "locked" not in str(exc) and "busy" not in str(exc):
                raise unreachable(url, exc) from None  # not a database, unreadable
            return Finding("database-locks", f"another process holds SQLite's write lock on "
                           f"{path} ({exc})", "stop or wait for that process (a long write, "
                           "a stuck job) before upgrading")
        finally:
            connection.close()
        return Finding("database-locks", "SQLite's write lock is free")


class PostgreSQLHealth:
    def version(self, database: Engine, url: DatabaseURL) -> Finding:
        with connect(database, url) as connection:
            number = int(connection.exec_driver_sql("SHOW server_version_num").scalar_one())
            shown = connection.exec_driver_sql("SHOW server_version").scalar_one()
        return Finding("database-version", f"PostgreSQL {shown}",
                       None if number >= MIN_POSTGRES * 10000
                       else f"annota needs PostgreSQL {MIN_POSTGRES} or later")

    def disk(self, url: DatabaseURL, backup_dir: Path | None) -> Finding:
        return Finding("database-disk", "PostgreSQL: its server's disk, not checked here")

    def locks(self, database: Engine, url: DatabaseURL) -> Finding:
        """Sessions idle in a transaction that holds a lock on annota's tables: every
        revision would queue behind them, and every query behind the revision."""
        import sqlalchemy as sa

        with connect(database, url) as connection:
            held = connection.execute(sa.text(
                "SELECT l.pid, coalesce(a.state, 'unknown'), l.mode, c.relname, "
                "coalesce(extract(epoch FROM now() - a.xact_start), 0) "
                "FROM pg_locks l JOIN pg_class c ON c.oid = l.relation "
                "JOIN pg_namespace n ON n.oid = c.relnamespace "
                "LEFT JOIN pg_stat_activity a ON a.pid = l.pid "
                "WHERE l.granted AND l.pid <> pg_backend_pid() "
                "AND n.nspname = current_schema() AND l.database = "
                "(SELECT oid FROM pg_database WHERE datname = current_database()) "
                "AND a.state LIKE 'idle in transaction%' "
                "AND now() - a.state_change > make_interval(secs => :seconds) "
                "ORDER BY 5 DESC, 1, 4"), {"seconds": IDLE_SECONDS}).all()
        if not held:
            return Finding("database-locks", "no other session sits idle in a transaction "
                           "holding a lock on annota's tables")
        pids = sorted({row[0] for row in held})
        shown = "; ".join(f"pid {pid} ({state}, in a transaction for {seconds:.0f}s) holds "
                          f"{mode} on {table}" for pid, state, mode, table, seconds in held[:5])
        return Finding("database-locks", shown,
                       "a migration would wait for these, and every query behind it too: "
                       "end them (SELECT pg_terminate_backend(pid) for pid "
                       + ", ".join(map(str, pids)) + ") or wait for them to finish")
