"""Preflight: will the upgrade work here? Checked before anything changes.

Each check has a name (``--skip-preflight NAME`` leaves it out), a status (ok, failed,
warning, skipped, not checked) and, when it fails, what to do. A failed check stops the
upgrade with the exit code of its kind: the database (22), the search engine (23), Redis
(24). Nothing here writes: SQLite's write lock is tried and given back at once.
"""

from __future__ import annotations

import shutil
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from annota.config import Settings
from annota.errors import (
    AnnotaError,
    ConfigurationError,
    DatabaseUnreachableError,
    PreflightError,
    PreflightRedisError,
    PreflightSearchError,
)
from annota.server import db
from annota.server.db.connections import unreachable
from annota.urls import mask_url

CHECKS = {"database-version": "database", "database-disk": "database",
          "database-locks": "database", "search-engine": "search", "search-vectors": "search",
          "search-health": "search", "search-disk": "search", "search-read-only": "search",
          "redis": "redis", "workers": "redis"}
ERRORS = {"database": PreflightError, "search": PreflightSearchError,
          "redis": PreflightRedisError}
MIN_POSTGRES = 13
MIN_SQLITE = (3, 35)  # RETURNING, ALTER TABLE DROP COLUMN
# a session idle this long inside a transaction that holds a lock on annota's tables is
# named (a busy one is not: a revision waits for it under its lock timeout and retries,
# and another replica's migration is one)
IDLE_SECONDS = 2


@dataclass(frozen=True)
class Check:
    name: str
    status: str  # ok | failed | warning | skipped | not checked
    detail: str
    fix: str | None = None

    @property
    def kind(self) -> str:
        return CHECKS[self.name]

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "kind": self.kind, "status": self.status,
                "detail": self.detail, "fix": self.fix}


def skip_names(names: tuple[str, ...]) -> frozenset[str]:
    """``--skip-preflight`` values (``all``, or check names) -> the names skipped."""
    if "all" in names:
        return frozenset(CHECKS)
    unknown = sorted(set(names) - set(CHECKS))
    if unknown:
        raise ConfigurationError(f"unknown preflight check {', '.join(unknown)}; the checks "
                                 f"are {', '.join(CHECKS)} (or all)")
    return frozenset(names)


def preflight(settings: Settings, parts: tuple[str, ...], skip: frozenset[str] = frozenset(),
              backup_dir: Path | None = None) -> list[Check]:
    """Every check this upgrade needs, in order; changes nothing."""
    out: list[Check] = []

    def add(name: str, run: Any, *args: Any) -> None:
        if name in skip:
            out.append(Check(name, "skipped", "skipped (--skip-preflight)"))
            return
        try:
            out.extend(run(settings, *args))
        except DatabaseUnreachableError:
            raise  # no check can be made: the error every command gives (exit 5)
        except AnnotaError as exc:
            out.append(Check(name, "failed", str(exc), _fix_of(name)))

    add("database-version", _database_version)
    add("database-disk", _database_disk, backup_dir)
    add("database-locks", _database_locks)
    if "search" in parts:
        _search(settings, skip, out)
    if settings.redis_url:
        add("redis", _redis, skip)
    return out


def raise_failed(checks: list[Check]) -> None:
    """The first failed check's kind of error, naming every failed check."""
    failed = [c for c in checks if c.status == "failed"]
    if not failed:
        return
    names = ", ".join(c.name for c in failed)
    first = failed[0]
    raise ERRORS[first.kind](
        f"preflight failed ({names}): {first.name}: {first.detail}"
        + (f"; {first.fix}" if first.fix else "")
        + f"; nothing was changed (--skip-preflight {first.name} goes on regardless)",
        failed)


def _fix_of(name: str) -> str:
    return {"database-version": "check ANNOTA_DATABASE_URL",
            "database-disk": "check the database directory",
            "database-locks": "check the database's sessions",
            "search-engine": "fix ANNOTA_ELASTICSEARCH / ANNOTA_SEARCH_ENGINE, or pass "
                             "--exclude search",
            "redis": "start Redis, or unset ANNOTA_REDIS_URL"}.get(name, "")


# -- the database ---------------------------------------------------------------------
def _database_version(settings: Settings) -> list[Check]:
    url = settings.database_url
    if url.backend == "sqlite":
        version = sqlite3.sqlite_version_info
        ok = version >= MIN_SQLITE
        return [Check("database-version", "ok" if ok else "failed",
                      f"SQLite {sqlite3.sqlite_version}",
                      None if ok else f"annota needs SQLite {'.'.join(map(str, MIN_SQLITE))} "
                      "or later: use a Python built with a newer SQLite")]
    database = db.open_database(url)
    try:
        with db.connect(database, url) as connection:
            number = int(connection.exec_driver_sql("SHOW server_version_num").scalar_one())
            shown = connection.exec_driver_sql("SHOW server_version").scalar_one()
    finally:
        database.dispose()
    ok = number >= MIN_POSTGRES * 10000
    return [Check("database-version", "ok" if ok else "failed", f"PostgreSQL {shown}",
                  None if ok else f"annota needs PostgreSQL {MIN_POSTGRES} or later")]


def _database_disk(settings: Settings, backup_dir: Path | None) -> list[Check]:
    """SQLite's batch migrations copy a table whole, and the backup writes an archive:
    each may need up to the database's size free (PostgreSQL's disk is the server's)."""
    path = settings.database_url.sqlite_path
    if path is None:
        return [Check("database-disk", "ok", "PostgreSQL: its server's disk, not checked here")]
    if not path.exists():
        return [Check("database-disk", "ok", f"{path} does not exist yet")]
    size = path.stat().st_size + _size(path.with_name(path.name + "-wal"))
    needs: dict[Path, int] = {_mount(path.parent): size}
    if backup_dir is not None:
        where = _existing(backup_dir)
        needs[_mount(where)] = needs.get(_mount(where), 0) + size
    short = []
    for where, need in needs.items():
        free = shutil.disk_usage(where).free
        if free < need:
            short.append(f"{where} has {_mib(free)} free, needs {_mib(need)}")
    if short:
        return [Check("database-disk", "failed", "; ".join(short),
                      "free disk space (the batch copies of SQLite's tables and the backup "
                      "each need up to the database's size), or --backup-to another disk")]
    return [Check("database-disk", "ok", f"database {_mib(size)}; enough free for its batch "
                  "copies" + (" and the backup" if backup_dir is not None else ""))]


def _database_locks(settings: Settings) -> list[Check]:
    url = settings.database_url
    if url.backend == "sqlite":
        path = url.sqlite_path
        if path is None or not path.exists():
            return [Check("database-locks", "ok", "no database file yet")]
        connection = sqlite3.connect(path, timeout=2.0, isolation_level=None)
        try:
            connection.execute("BEGIN IMMEDIATE")
            connection.execute("ROLLBACK")
        except sqlite3.DatabaseError as exc:
            if "locked" not in str(exc) and "busy" not in str(exc):
                raise unreachable(url, exc) from None  # not a database, unreadable
            return [Check("database-locks", "failed", f"another process holds SQLite's write "
                          f"lock on {path} ({exc})", "stop or wait for that process (a "
                          "long write, a stuck job) before upgrading")]
        finally:
            connection.close()
        return [Check("database-locks", "ok", "SQLite's write lock is free")]
    database = db.open_database(url)
    try:
        with db.connect(database, url) as connection:
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
    finally:
        database.dispose()
    if not held:
        return [Check("database-locks", "ok", "no other session sits idle in a transaction "
                      "holding a lock on annota's tables")]
    pids = sorted({row[0] for row in held})
    shown = "; ".join(f"pid {pid} ({state}, in a transaction for {seconds:.0f}s) holds "
                      f"{mode} on {table}"
                      for pid, state, mode, table, seconds in held[:5])
    return [Check("database-locks", "failed", shown,
                  "a migration would wait for these, and every query behind it too: end "
                  "them (SELECT pg_terminate_backend(pid) for pid " + ", ".join(map(str, pids))
                  + ") or wait for them to finish")]


# -- the search engine ------------------------------------------------------------------
def _search(settings: Settings, skip: frozenset[str], out: list[Check]) -> None:
    from annota.search import connect

    names = [n for n, kind in CHECKS.items() if kind == "search"]
    if "search-engine" in skip:
        out.extend(Check(n, "skipped", "skipped (--skip-preflight)") for n in names
                   if n == "search-engine" or n in skip)
        out.extend(Check(n, "not checked", "the engine check was skipped") for n in names
                   if n not in skip)
        return
    try:
        engine = connect(settings.search)
        info = engine.info()
    except AnnotaError as exc:
        out.append(Check("search-engine", "failed", str(exc), _fix_of("search-engine")))
        out.extend(Check(n, "not checked", "the engine did not pass") for n in names[1:])
        return
    out.append(Check("search-engine", "ok", f"{engine.label} {info.version} at "
                     f"{settings.search.masked_url}"))
    try:
        if "search-vectors" in skip:
            out.append(Check("search-vectors", "skipped", "skipped (--skip-preflight)"))
        else:
            out.append(_vectors(settings, engine))
        for finding in engine.findings():
            if finding.name in skip:
                out.append(Check(finding.name, "skipped", "skipped (--skip-preflight)"))
            else:
                out.append(Check(finding.name, "failed" if finding.fix else "ok",
                                 finding.detail, finding.fix))
    except AnnotaError as exc:
        out.append(Check("search-health", "failed", str(exc),
                         "the engine answered, then refused a health request: check it"))


def _vectors(settings: Settings, engine: Any) -> Check:
    datasets = 0
    database = db.open_database(settings.database_url)
    try:
        with db.connect(database, settings.database_url) as connection:
            if sa.inspect(connection).has_table("vector_settings"):
                datasets = connection.execute(sa.text(
                    "SELECT count(DISTINCT dataset_id) FROM vector_settings")).scalar_one()
    finally:
        database.dispose()
    if engine.vectors_supported():
        return Check("search-vectors", "ok", f"vector fields supported ({datasets} datasets "
                     "have vectors)")
    if not datasets:
        return Check("search-vectors", "warning", "no vector fields here (no dataset has "
                     "vectors yet)")
    return Check("search-vectors", "failed", f"{datasets} datasets have vectors and "
                 f"{engine.label} cannot index them",
                 "install the k-NN plugin (opensearch-knn) on every node")


# -- Redis and its workers --------------------------------------------------------------
def _redis(settings: Settings, skip: frozenset[str]) -> list[Check]:
    import redis
    from rq import Worker

    shown = mask_url(settings.redis_url or "")
    client = redis.Redis.from_url(settings.redis_url or "", socket_connect_timeout=3,
                                  socket_timeout=3)
    try:
        client.ping()
    except redis.RedisError as exc:
        return [Check("redis", "failed", f"Redis at {shown} does not answer "
                      f"({type(exc).__name__})", _fix_of("redis")),
                Check("workers", "not checked", "Redis did not answer")]
    out = [Check("redis", "ok", f"Redis at {shown} answers")]
    if "workers" in skip:
        return [*out, Check("workers", "skipped", "skipped (--skip-preflight)")]
    workers = Worker.all(connection=client)
    if workers:
        return [*out, Check("workers", "ok", f"{len(workers)} RQ worker(s) listening")]
    return [*out, Check("workers", "warning", "no RQ worker listens: jobs the API queues "
                        "wait until one starts (upgrade runs its own jobs in this process)")]


def _size(path: Path) -> int:
    return path.stat().st_size if path.exists() else 0


def _existing(path: Path) -> Path:
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def _mount(path: Path) -> Path:
    """The mount point holding ``path`` (two directories of one disk count once)."""
    path = path.resolve()
    while not path.is_mount():
        path = path.parent
    return path


def _mib(size: int) -> str:
    return f"{size / (1 << 20):.1f} MiB"
