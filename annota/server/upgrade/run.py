"""Run an upgrade plan: schema (finishing each release gate's jobs on the way), async
migrations, backfills, search. Every part is re-runnable, so the whole is: after any
interruption, even SIGKILL, running it again plans from what is left and does only that.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from annota.config import Settings
from annota.errors import AnnotaError, BackfillsFailedError, ReindexError, ReleaseGateError
from annota.server import db
from annota.server.schema import async_migrations
from annota.server.schema import migrate as migrations
from annota.server.schema.history import JOBS_TABLES_REVISION, history
from annota.server.upgrade import estimate
from annota.server.upgrade.plan import PARTS, UpgradePlan, plan_upgrade


class UpgradeReporter:
    """What ``upgrade`` tells as it goes; the CLI prints it, tests record it."""

    schema: migrations.MigrationReporter = migrations.MigrationReporter()
    search: Any = None  # a search.reindex.ReindexReporter, or None for none

    def preflight(self, checks: list[Any]) -> None: ...
    def planned(self, plan: UpgradePlan) -> None: ...
    def part_started(self, part: str) -> None: ...
    def part_finished(self, part: str, seconds: float, summary: str) -> None: ...
    def gate_reached(self, error: ReleaseGateError) -> None: ...
    def backfill_progress(self, name: str, rows: list[dict]) -> None: ...
    def waiting_for_others(self, name: str, jobs: int) -> None: ...


class Backup(Protocol):
    """Written before the schema step (``annota.server.archive.backup`` is the one)."""

    def planned(self) -> str: ...
    def write(self) -> Path: ...
    def restore_command(self, path: Path | str) -> str: ...


@dataclass
class UpgradeResult:
    plan: UpgradePlan
    dry_run: bool = False
    schema: list[migrations.MigrationResult] = field(default_factory=list)
    gates: list[str] = field(default_factory=list)  # revisions whose jobs this run finished
    async_migrations: list[dict[str, Any]] = field(default_factory=list)
    backfills: dict[str, dict[str, Any]] = field(default_factory=dict)
    reindexed: list[str] = field(default_factory=list)
    deleted_indices: list[str] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)
    backup: Path | None = None
    preflight: list[Any] = field(default_factory=list)  # preflight.Check

    def to_dict(self) -> dict[str, Any]:
        hist = history()
        return {
            "dry_run": self.dry_run,
            "preflight": [c.to_dict() for c in self.preflight],
            "backup": str(self.backup) if self.backup else None,
            "plan": self.plan.to_dict(),
            "schema": [r.to_dict(hist) for r in self.schema],
            "gates_passed": self.gates,
            "async_migrations": [{"name": r["name"], "status": r["status"]}
                                 for r in self.async_migrations],
            "backfills": self.backfills,
            "reindexed": self.reindexed,
            "deleted_indices": self.deleted_indices,
            "seconds": {k: round(v, 3) for k, v in self.seconds.items()},
        }


def upgrade(settings: Settings, to: str = "head", *, parts: tuple[str, ...] = PARTS,
            dry_run: bool = False, confirm=None, force: bool = False,  # noqa: ANN001
            reporter: UpgradeReporter | None = None,
            backup: Backup | None = None,
            skip_preflight: frozenset[str] = frozenset()) -> UpgradeResult:
    """Check (preflight), plan, then (unless ``dry_run``) run the parts in order.
    ``confirm(plan)`` consents to a downgrade, as for ``migrate``; ``force`` crosses
    release gates with unfinished jobs instead of finishing them. ``backup`` is written
    before a schema step that moves a database with data; a failure after it names it. A
    failed preflight check raises its kind of ``PreflightError`` before anything changes
    (in a dry run too)."""
    from annota.server.upgrade import preflight

    reporter = reporter or UpgradeReporter()
    checks = preflight.preflight(
        settings, parts, skip_preflight,
        backup_dir=Path(backup.planned()).parent if backup is not None else None)
    reporter.preflight(checks)
    preflight.raise_failed(checks)
    plan = plan_upgrade(settings, to, parts)
    backing_up = (backup is not None and "schema" in plan.parts and bool(plan.schema.steps)
                  and plan.schema.current is not None)
    if backing_up:
        plan.backup = backup.planned()
        plan.restore = backup.restore_command(plan.backup)
    plan.estimates = estimate.estimate_plan(settings, plan, backing_up)
    reporter.planned(plan)
    result = UpgradeResult(plan, dry_run, preflight=checks)
    if dry_run or plan.empty:
        return result
    if backing_up:
        reporter.part_started("backup")
        started = time.perf_counter()
        result.backup = _timed(settings, plan, "backup", backup.write)
        result.seconds["backup"] = time.perf_counter() - started
        reporter.part_finished("backup", result.seconds["backup"], f"{result.backup}; to "
                               f"restore it, {backup.restore_command(result.backup)}")
    try:
        return _run_parts(settings, plan, result, reporter, confirm=confirm, force=force)
    except AnnotaError as exc:
        if result.backup is not None:
            exc.args = (f"{exc}; the backup taken before this upgrade is {result.backup} "
                        f"(to restore it, {backup.restore_command(result.backup)})",
                        *exc.args[1:])
        raise


def _run_parts(settings: Settings, plan: UpgradePlan, result: UpgradeResult,
               reporter: UpgradeReporter, *, confirm, force: bool) -> UpgradeResult:  # noqa: ANN001
    steps = [("schema", _schema), ("async", _async), ("backfills", _backfills),
             ("search", _search)]
    hist = history()
    # before the jobs tables exist (an upgrade to a 1.x release) there are no jobs to run
    no_jobs = hist.position(plan.end) < hist.position(JOBS_TABLES_REVISION)
    skipped = {"schema": not plan.schema.steps,  # and, after a downgrade, all but schema
               "async": plan.downgrade or no_jobs, "backfills": plan.downgrade or no_jobs,
               "search": plan.end != history().head.revision}
    for part, run in steps:
        if part not in plan.parts or skipped[part]:
            continue
        reporter.part_started(part)
        started = time.perf_counter()
        summary = run(settings, plan, result, reporter, confirm=confirm, force=force)
        result.seconds[part] = time.perf_counter() - started
        reporter.part_finished(part, result.seconds[part], summary)
    return result


def _schema(settings: Settings, plan: UpgradePlan, result: UpgradeResult,
            reporter: UpgradeReporter, *, confirm, force: bool) -> str:  # noqa: ANN001
    """Migrate to the plan's end; at a release gate, finish its jobs and go on (they are
    the schema's prerequisites, whatever ``--exclude`` says of the later parts; ``force``
    crosses instead). A gate whose jobs were run and are still unfinished stops."""
    tried: set[str] = set()
    while True:
        try:
            result.schema.append(migrations.migrate(
                settings, plan.end or "base", confirm=confirm, reporter=reporter.schema,
                force=force))
            break
        except ReleaseGateError as gate:
            if gate.result is not None:
                result.schema.append(gate.result)
            if gate.revision.revision in tried:
                raise
            tried.add(gate.revision.revision)
            reporter.gate_reached(gate)
            names = {job.name for job in gate.jobs}
            for name in gate.revision.requires_async_migrations:
                if name in names:
                    _timed(settings, plan, f"async:{name}", _run_async, settings, result,
                           name)
            for name in gate.revision.requires_backfills:
                if name in names:
                    _timed(settings, plan, f"backfill:{name}", _run_backfill, settings, name,
                           result, reporter)
            result.gates.append(gate.revision.revision)
    rates = estimate.Rates(settings)
    for migration in result.schema:
        for step, seconds in migration.steps:
            key = estimate.revision_key(step)
            if key in plan.sizes:
                rates.record(key, plan.sizes[key], seconds)
    moved = sum(len(r.steps) for r in result.schema)
    state = migrations.status(settings)
    return (f"{moved} revision{'s' * (moved != 1)} applied; the database is at "
            f"{state.current or 'base'} ({state.current_release or 'empty'})")


def _async(settings: Settings, plan: UpgradePlan, result: UpgradeResult,
           reporter: UpgradeReporter, **_: Any) -> str:
    rows: list[dict[str, Any]] = []
    for name in _unfinished(settings):
        rows += _timed(settings, plan, f"async:{name}", _run_async, settings, result, name)
    return f"{len(rows)} async migration{'s' * (len(rows) != 1)} run" if rows else "none left"


def _unfinished(settings: Settings) -> list[str]:
    database = db.open_database(settings.database_url)
    try:
        with database.connect() as connection:
            return [r["name"] for r in async_migrations.listing(connection)
                    if r["status"] != async_migrations.FINISHED]
    finally:
        database.dispose()


def _timed(settings: Settings, plan: UpgradePlan, key: str, run: Any, *args: Any,
           **kwargs: Any) -> Any:
    """``run(*args, **kwargs)``, its time recorded as ``key``'s rate when the plan sized
    it and it did something (a true result: jobs run, migrations run, a backup written),
    so the next plan's estimate of it is this deployment's own."""
    started = time.perf_counter()
    out = run(*args, **kwargs)
    if key in plan.sizes and out:
        estimate.Rates(settings).record(key, plan.sizes[key], time.perf_counter() - started)
    return out


def _run_async(settings: Settings, result: UpgradeResult, name: str) -> list[dict[str, Any]]:
    """Run async migration ``name`` unless it is finished (by now: another replica may
    have run it since its caller looked); a failure raises ``AsyncMigrationError``."""
    if name not in _unfinished(settings):
        return []
    url = settings.database_url
    database = db.open_database(url)
    try:
        rows = async_migrations.run(database, url, name)
    finally:
        database.dispose()
    result.async_migrations += rows
    return rows


def _backfills(settings: Settings, plan: UpgradePlan, result: UpgradeResult,
               reporter: UpgradeReporter, **_: Any) -> str:
    from annota.server.jobs.backfills import BACKFILLS

    done = [_timed(settings, plan, f"backfill:{name}", _run_backfill, settings, name, result,
                   reporter) for name in BACKFILLS]
    queued = sum(done)
    return f"{queued} job{'s' * (queued != 1)} run" if queued else "none left"


def _run_backfill(settings: Settings, name: str, result: UpgradeResult,
                  reporter: UpgradeReporter) -> int:
    """Run every unfinished job of backfill ``name`` and wait for them; raises
    ``BackfillsFailedError`` when one did not complete. Returns how many ran."""
    from annota.server.jobs import runner

    # in this process even when ANNOTA_REDIS_URL is set: an upgrade must not wait for
    # workers that may themselves wait for the schema it is moving
    # and it waits for the jobs another replica runs (taking over any whose worker died):
    # the gate, and the upgrade, are done only when every job is
    run = runner.run(settings, name, inline=True, others=True,
                     on_progress=lambda rows: reporter.backfill_progress(name, rows),
                     on_others=lambda count: reporter.waiting_for_others(name, count))
    result.backfills[name] = run.to_dict()
    if run.final and not run.ok:
        bad = {s for s in run.final.values() if s != "COMPLETED"}
        raise BackfillsFailedError(
            f"backfill {name}: {sum(s != 'COMPLETED' for s in run.final.values())} of "
            f"{len(run.final)} jobs ended {' or '.join(sorted(bad))}; see `annota server "
            f"database backfills status {name}`, then run `annota server upgrade` again")
    return len(run.queue.queued)


def _search(settings: Settings, plan: UpgradePlan, result: UpgradeResult,
            reporter: UpgradeReporter, **_: Any) -> str:
    """Rebuild the indices that differ from their dataset now (the plan's guesses made
    before the schema moved are checked again), then delete indices a crashed reindex
    left without an alias."""
    from annota.search import maintenance
    from annota.search.reindex import reindex

    state = maintenance.status(settings, verify=True)  # by identity, not by count alone
    wanted = [d.dataset_id for d in state.datasets if d.needs_reindex]
    if wanted:
        summary = _timed(settings, plan, f"reindex:{settings.search.engine}", reindex,
                         settings, wanted, reporter=reporter.search)
        result.reindexed = [r.plan.dataset_id for r in summary.results if r.swapped]
        if summary.failed:
            where = f"; rejected documents are in {summary.report}" if summary.report else ""
            raise ReindexError(
                f"{len(summary.failed)} of {len(summary.results)} datasets were not "
                f"reindexed: {summary.failed[0].error}{where}")
    if state.orphans:
        result.deleted_indices = maintenance.cleanup(settings).deleted
    return (f"{len(result.reindexed)} indices rebuilt, {len(result.deleted_indices)} "
            "left by an interrupted reindex deleted")
