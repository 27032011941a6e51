"""Preflight: will the upgrade work here? Checked before anything changes.

Each check has a name (``--skip-preflight NAME`` leaves it out), a status (ok, failed,
warning, skipped, not checked) and, when it fails, what to do. A failed check stops the
upgrade with the exit code of its kind: the database (22), the search engine (23), Redis
(24). Nothing here writes: SQLite's write lock is tried and given back at once. What differs
between the databases is their dialects' (``db/health.py``); the engines' is theirs
(``SearchEngine.findings``).
"""

from __future__ import annotations

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
    RedisUnreachableError,
)
from annota.server import db
from annota.server.db.health import Finding
from annota.server.jobs.runner import check_redis
from annota.urls import mask_url

CHECKS = {"database-version": "database", "database-disk": "database",
          "database-locks": "database", "search-engine": "search", "search-vectors": "search",
          "search-health": "search", "search-disk": "search", "search-read-only": "search",
          "redis": "redis", "workers": "redis"}
ERRORS = {"database": PreflightError, "search": PreflightSearchError,
          "redis": PreflightRedisError}


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
    url = settings.database_url
    health = db.dialect_for(url).health
    out: list[Check] = []

    def add(name: str, run: Any) -> None:
        if name in skip:
            out.append(Check(name, "skipped", "skipped (--skip-preflight)"))
            return
        try:
            found = run()
        except DatabaseUnreachableError:
            raise  # no check can be made: the error every command gives (exit 5)
        except AnnotaError as exc:
            out.append(Check(name, "failed", str(exc), _fix_of(name)))
            return
        out.extend([_check(found)] if isinstance(found, Finding) else found)

    database = db.open_database(url)  # opened once, for every check that reads it
    try:
        add("database-version", lambda: health.version(database, url))
        add("database-disk", lambda: health.disk(url, backup_dir))
        add("database-locks", lambda: health.locks(database, url))
        if "search" in parts:
            _search(settings, database, skip, out)
    finally:
        database.dispose()
    if settings.redis_url:
        add("redis", lambda: _redis(settings.redis_url or "", skip))
    return out


def _check(finding: Finding) -> Check:
    """A finding (the database's or the engine's) as a check: failed when it says what
    to do."""
    return Check(finding.name, "failed" if finding.fix else "ok", finding.detail,
                 finding.fix)


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


# -- the search engine ------------------------------------------------------------------
def _search(settings: Settings, database: Any, skip: frozenset[str],
            out: list[Check]) -> None:
    from annota.search import connect

    names = [n for n, kind in CHECKS.items() if kind == "search"]
    if "search-engine" in skip:
        out.extend(Check(n, "skipped", "skipped (--skip-preflight)") if n in skip
                   else Check(n, "not checked", "the engine check was skipped")
                   for n in names)
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
        vectors = None if "search-vectors" in skip else _vectors(settings, database, engine)
        findings = engine.findings()
    except AnnotaError as exc:
        out.append(Check("search-health", "failed", str(exc),
                         "the engine answered, then refused a health request: check it"))
        return
    out.append(vectors or Check("search-vectors", "skipped", "skipped (--skip-preflight)"))
    out.extend(Check(f.name, "skipped", "skipped (--skip-preflight)") if f.name in skip
               else _check(f) for f in findings)


def _vectors(settings: Settings, database: Any, engine: Any) -> Check:
    datasets = 0
    with db.connect(database, settings.database_url) as connection:
        if sa.inspect(connection).has_table("vector_settings"):
            datasets = connection.execute(sa.text(
                "SELECT count(DISTINCT dataset_id) FROM vector_settings")).scalar_one()
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
def _redis(url: str, skip: frozenset[str]) -> list[Check]:
    from redis import Redis
    from rq import Worker

    try:
        check_redis(url)
    except RedisUnreachableError as exc:
        return [Check("redis", "failed", str(exc), _fix_of("redis")),
                Check("workers", "not checked", "Redis did not answer")]
    out = [Check("redis", "ok", f"Redis at {mask_url(url)} answers")]
    if "workers" in skip:
        return [*out, Check("workers", "skipped", "skipped (--skip-preflight)")]
    workers = Worker.all(connection=Redis.from_url(url, socket_connect_timeout=5))
    if workers:
        return [*out, Check("workers", "ok", f"{len(workers)} RQ worker(s) listening")]
    return [*out, Check("workers", "warning", "no RQ worker listens: jobs the API queues "
                        "wait until one starts (upgrade runs its own jobs in this process)")]
