"""``annota server database import``: an archive into a database, empty or not.

Everything is checked before anything is written: the archive (every member's SHA-256),
the target's revision, and the plan (what exists, what conflicts). The rows are then
written in one transaction: a run is all or nothing, and a run killed at any moment leaves
the database as it was (at most with the schema of an empty database created).
"""

from __future__ import annotations

import time
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from annota.config import Settings
from annota.errors import (
    ConfirmationRequiredError,
    ForeignDatabaseError,
    ImportConflictError,
    SchemaNotReadyError,
    SearchEngineUnreachableError,
)
from annota.server import db
from annota.server.archive.export import NoProgress
from annota.server.archive.fileformat import Archive
from annota.server.archive.merge import CONFLICTS, DatasetPlan, plan_merge, write
from annota.server.archive.sources import ArchiveSource, Source, staged
from annota.server.archive.tables import has_data
from annota.server.jobs.backfill_jobs import mark_completed
from annota.server.schema.history import history


@dataclass
class ImportResult:
    path: Path
    revision: str
    release: str | None
    dry_run: bool
    staged: bool = False
    created_schema: bool = False
    datasets: list[DatasetPlan] = field(default_factory=list)
    users: dict[str, int] = field(default_factory=dict)
    tables: dict[str, int] = field(default_factory=dict)
    reindexed: list[str] = field(default_factory=list)
    derived_current: list[str] = field(default_factory=list)  # came current: not recomputed
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {"path": str(self.path), "revision": self.revision, "release": self.release,
                "dry_run": self.dry_run, "staged": self.staged,
                "created_schema": self.created_schema,
                "datasets": [d.to_dict() for d in self.datasets], "users": self.users,
                "tables": self.tables, "rows": sum(self.tables.values()),
                "reindexed": self.reindexed, "derived_current": self.derived_current,
                "notes": self.notes,
                "seconds": round(self.seconds, 3)}


def open_archive(path: Path) -> Archive:
    hist = history()
    return Archive(path, lambda revision: revision in hist)


def import_archive(settings: Settings, path: Path, *, workspace: str | None = None,
                   on_conflict: str = "fail", dry_run: bool = False, confirm=None,  # noqa: ANN001
                   reindex: bool | None = None, progress=None) -> ImportResult:  # noqa: ANN001
    """Import ``path``. ``reindex``: True builds the imported datasets' indices (an
    unreachable engine is an error), None does when the engine answers, False never.
    ``confirm(result)`` consents to replacing datasets (``on_conflict="replace"``)."""
    if on_conflict not in CONFLICTS:
        raise ValueError(on_conflict)
    progress = progress or NoProgress()
    started = time.perf_counter()
    hist = history()
    url = settings.database_url
    with open_archive(path) as archive, ExitStack() as stack:
        manifest = archive.manifest
        result = ImportResult(path, manifest["revision"], manifest.get("release"), dry_run)
        progress.started("check", sum(t["rows"] for t in manifest["tables"]))
        archive.check(progress.advanced)
        progress.finished()
        state = db.read_state(url, with_pending=False)
        if state.foreign_tables:
            raise ForeignDatabaseError(
                f"the database at {url.masked} holds another application's tables "
                f"({', '.join(state.foreign_tables[:5])}); import into an empty database")
        interrupted = (state.revision is not None and state.revision != hist.head.revision
                       and not has_data(url))  # an earlier run's schema step was killed
        if (state.revision is not None and state.revision != hist.head.revision
                and not interrupted):
            raise SchemaNotReadyError(
                f"the database at {url.masked} is at {state.revision}, not at this annota's "
                "head: run 'annota server upgrade' first, then import")
        source: Source = ArchiveSource(archive)
        if manifest["revision"] != hist.head.revision:
            result.staged = True
            source = stack.enter_context(staged(settings, archive, _load_fresh, progress))
        if state.revision is None or interrupted:
            result.created_schema = True
            if dry_run:
                plan = plan_merge(None, source, workspace=workspace, on_conflict=on_conflict)
                return _planned(result, plan, started)
            from annota.server.schema.migrate import migrate

            migrate(settings, "head")
        database = db.open_database(url)
        stack.callback(database.dispose)
        with db.connect(db.writable(database), url) as connection:
            plan = plan_merge(connection, source, workspace=workspace,
                              on_conflict=on_conflict)
            _planned(result, plan, started)
            if dry_run:
                return result
            if plan.replaced and not (confirm and confirm(result)):
                raise ConfirmationRequiredError(
                    f"refusing to replace {len(plan.replaced)} dataset(s) without consent; "
                    "pass --yes to confirm")
            progress.started("import", sum(t["rows"] for t in manifest["tables"]))
            try:
                result.tables = write(connection, source, plan, progress, expected={
                    t["name"]: t["rows"] for t in manifest["tables"]})
                current = (set(manifest["datasets"]) if result.staged
                           else set(manifest.get("derived_current", [])))
                unchanged = {d.id for d in plan.datasets if d.action == "unchanged"}
                result.derived_current = sorted(current & (plan.writing | unchanged))
                mark_completed(connection, sorted(current & plan.writing))
                connection.commit()
            except sa.exc.IntegrityError as exc:
                raise ImportConflictError(
                    "the database changed while importing (a row the plan did not see "
                    f"exists now: {db.first_line(exc)}); nothing was written: run it again"
                ) from None
            finally:
                progress.finished()
    _derive(settings, result, progress)
    _reindex(settings, result, reindex)
    result.seconds = time.perf_counter() - started
    return result


def _planned(result: ImportResult, plan, started: float) -> ImportResult:  # noqa: ANN001
    result.datasets = plan.datasets
    result.users = {"created": len(plan.new_users),
                    "matched": len(plan.users) - len(plan.new_users)}
    result.seconds = time.perf_counter() - started
    return result


def _load_fresh(settings: Settings, source: Source, connection: sa.Connection) -> None:
    """Every row of ``source`` into an empty database (staging), ids kept."""
    write(connection, source, plan_merge(None, source, workspace=None, on_conflict="fail"))


def _imported(result: ImportResult) -> list[str]:
    return [d.id for d in result.datasets if d.action in ("import", "replace", "unchanged")]


def _derive(settings: Settings, result: ImportResult, progress) -> None:  # noqa: ANN001
    """Recompute, with the backfills in this process, the derived data (record status,
    agreement, completed counts) of the imported datasets the archive does not vouch for
    (their backfills had not all completed at the source). They write only what differs
    and leave COMPLETED jobs behind; the others got COMPLETED jobs in the import's
    transaction."""
    from annota.errors import BackfillsFailedError
    from annota.server.jobs import runner
    from annota.server.jobs.backfills import BACKFILLS

    todo = [d for d in _imported(result) if d not in result.derived_current]
    for dataset_id in todo:
        for name in BACKFILLS:
            run = runner.run(settings, name, dataset_id=dataset_id, force=True, inline=True,
                             poll=0.05)
            if run.final and not run.ok:
                raise BackfillsFailedError(
                    f"the data was imported, but backfill {name} did not complete on "
                    f"dataset {dataset_id}; run 'annota server database backfills run "
                    f"{name} --dataset-id {dataset_id} --force'")
    if todo:
        progress.note(f"derived data recomputed for {len(todo)} dataset(s)")


def _reindex(settings: Settings, result: ImportResult, reindex: bool | None) -> None:
    ids = _imported(result)
    if reindex is False or not ids:
        return
    from annota.search.reindex import reindex as rebuild

    try:
        summary = rebuild(settings, ids)
    except SearchEngineUnreachableError as exc:
        if reindex:
            raise
        result.notes.append(f"search: not reindexed ({exc}); run 'annota server "
                            "search-engine reindex' once the engine is reachable")
        return
    result.reindexed = [str(r.plan.dataset_id) for r in summary.results if not r.error]
    if summary.failed:
        failed = summary.failed
        result.notes.append(f"search: {len(failed)} index(es) not switched; run 'annota "
                            "server search-engine reindex'")
