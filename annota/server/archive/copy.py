"""``annota server database copy --to URL``: this database into another, ids kept.

The source is read in one snapshot and never written. The target must be empty (no
tables, or the schema of an empty database at the source's revision); it is brought to
the source's revision by ``migrate``, then every row is written in one transaction through
its bulk path, read back, and compared (counts and digests per table and per dataset)
before the commit. So a copy killed at any moment leaves an empty target (a rerun starts
cleanly), and a committed copy is a verified one.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from typing import Any

import psycopg
import sqlalchemy as sa

from annota.config import Settings
from annota.errors import (
    ConfigurationError,
    ConfirmationRequiredError,
    CopyFailedError,
    ForeignDatabaseError,
    TargetNotEmptyError,
)
from annota.server import db
from annota.server.archive import rowdigest
from annota.server.archive.compare import Comparison, compare
from annota.server.archive.export import NoProgress
from annota.server.archive.pipeline import sqlite_to_postgresql
from annota.server.archive.rebuild import bulk_load
from annota.server.archive.snapshot import Figures, revision_of, snapshot
from annota.server.archive.tables import (
    Scope,
    count_rows,
    has_data,
    read_rows,
    reflect,
    write_rows,
)
from annota.server.jobs.backfill_jobs import completed_everywhere, mark_completed
from annota.urls import DatabaseURL


@dataclass
class CopyResult:
    source: str
    target: str
    revision: str
    comparison: Comparison = field(default_factory=Comparison)
    already: bool = False  # the target held this very copy (a rerun after the commit)
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {"source": self.source, "target": self.target, "revision": self.revision,
                "already_copied": self.already, "seconds": round(self.seconds, 3),
                **self.comparison.to_dict()}


def copy(settings: Settings, to: DatabaseURL, *, confirm=None, progress=None  # noqa: ANN001
         ) -> CopyResult:
    """Copy the database to ``to``; ``confirm(source, target, revision)`` consents."""
    progress = progress or NoProgress()
    started = time.perf_counter()
    url = settings.database_url
    if _same(url, to):
        raise ConfigurationError(f"--to names the database being copied ({to.masked})")
    target_settings = replace(settings, database_url=to, redis_url=None)
    source_db = db.open_database(url)
    try:
        with snapshot(source_db, url) as source:
            revision = revision_of(source, url)
            result = CopyResult(url.masked, to.masked, revision)
            state = db.read_state(to, with_pending=False)
            if state.foreign_tables:
                raise ForeignDatabaseError(
                    f"the target {to.masked} holds another application's tables "
                    f"({', '.join(state.foreign_tables[:5])}); copy into an empty database")
            specs = reflect(source)
            if state.revision is not None and has_data(to):
                return _already(result, source, specs, to, started)
            if not (confirm and confirm(url.masked, to.masked, revision)):
                raise ConfirmationRequiredError(
                    f"refusing to write {to.masked} without consent; pass --yes to confirm")
            if state.revision != revision:  # none, or an earlier run's, killed: no data
                from annota.server.schema.migrate import migrate

                db.dialect_for(to).prepare(to)
                migrate(target_settings, revision, confirm=lambda _plan: True)
            counts = count_rows(source, [s.name for s in specs])
            progress.started("copy", sum(counts.values()))
            result.comparison = _write_and_check(source, specs, counts, to, progress)
    finally:
        source_db.dispose()
    result.seconds = time.perf_counter() - started
    return result


def _same(a: DatabaseURL, b: DatabaseURL) -> bool:
    if a.sqlite_path is not None or b.sqlite_path is not None:
        return (a.sqlite_path is not None and b.sqlite_path is not None
                and a.sqlite_path.resolve() == b.sqlite_path.resolve())
    return a.sqlalchemy_url == b.sqlalchemy_url


def _already(result: CopyResult, source: sa.Connection, specs: list, to: DatabaseURL,
             started: float) -> CopyResult:
    """A target with data: this copy's (committed, so verified, by an earlier run that was
    killed before it said so) or refused."""
    database = db.open_database(to)
    try:
        with snapshot(database, to) as target:
            same_revision = db.state_on(target, with_pending=False).revision == result.revision
            jsonb = rowdigest.jsonb_columns(target) | rowdigest.jsonb_columns(source)
            comparison = compare(rowdigest.figures(source, specs, jsonb),
                                 rowdigest.figures(target, reflect(target), jsonb),
                                 "source", "target")
    finally:
        database.dispose()
    if not (same_revision and comparison.equal):
        raise TargetNotEmptyError(
            f"the target {to.masked} holds data; copy only into an empty database "
            "(nothing was written)")
    result.comparison, result.already = comparison, True
    result.seconds = time.perf_counter() - started
    return result


def _write_and_check(source: sa.Connection, specs: list, counts: dict[str, int],
                     to: DatabaseURL, progress) -> Comparison:  # noqa: ANN001
    from annota.server.archive.verify import mismatch

    database = db.open_database(to)
    try:
        with db.connect(db.writable(database), to) as target:
            have = {s.name: s for s in reflect(target)}
            jsonb = rowdigest.jsonb_columns(target) | rowdigest.jsonb_columns(source)
            try:
                with bulk_load(target, counts) as rebuild:
                    if source.dialect.name == "sqlite" and target.dialect.name == "postgresql":
                        ours, theirs = sqlite_to_postgresql(source, specs, target, have,
                                                            jsonb, rebuild, progress)
                    else:
                        ours = _write(source, specs, have, target, jsonb, progress)
                        theirs = None
            except (sa.exc.DBAPIError, psycopg.Error) as exc:  # the worker's are psycopg's
                raise CopyFailedError(f"the copy into {to.masked} failed: {_reason(exc)}; "
                                      "rolled back, nothing was kept") from None
            progress.finished()
            if theirs is None:
                theirs = rowdigest.figures(target, list(have.values()), jsonb)
            comparison = compare(ours, theirs, "source", "target")
            # the source's finished backfills hold on the copy too: its derived data is the
            # source's, current (without this, the next export would not vouch for it)
            mark_completed(target, sorted(completed_everywhere(source)))
            if not comparison.equal:
                target.rollback()
                raise mismatch(f"the copy in {to.masked} differs from the source ("
                               + ", ".join(comparison.differences[:8])
                               + "); rolled back, nothing was kept", comparison)
            target.commit()
            return comparison
    finally:
        database.dispose()


def _reason(exc: Exception) -> str:
    """The server's message, on one line, and where in the load it was."""
    error = getattr(exc, "orig", None) or exc
    diag = getattr(error, "diag", None)
    if diag is not None and diag.message_primary:
        where = (diag.context or "").splitlines()
        return diag.message_primary + (f" ({where[-1].strip()})" if where else "")
    return " ".join(str(error).split())


def _write(source: sa.Connection, specs: list, have: dict, target: sa.Connection,
           jsonb: frozenset, progress) -> Figures:  # noqa: ANN001
    """Every source row into the target, value by value; the source's figures."""
    for spec in specs:
        order = [spec.index(c) for c in have[spec.name].columns]

        def rows(spec=spec, order=order):  # noqa: ANN001, ANN202
            for n, (_dataset, row) in enumerate(read_rows(source, spec, Scope()), 1):
                if n % 1000 == 0:
                    progress.advanced(1000)
                yield [row[i] for i in order]

        write_rows(target, have[spec.name], rows())
    return rowdigest.figures(source, specs, jsonb)
