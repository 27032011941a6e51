"""``annota server upgrade``: the whole upgrade in one plan, run in order."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from annota.commands.common import NONEMPTY, echo_json, json_option, settings, yes_option
from annota.commands.database import _confirm, _Printer


class _SchemaPrinter(_Printer):
    """migrate's lines, without its plan: the upgrade's plan showed it already."""

    def plan(self, plan, history) -> None:  # noqa: ANN001
        pass


class _UpgradePrinter(_Printer):
    """The plan, then a line per step; stderr when stdout carries JSON."""

    def __init__(self, err: bool, live: bool) -> None:
        super().__init__(err)
        self.schema = _SchemaPrinter(err)
        self.last: dict[str, str] = {}
        self.estimates: dict = {}  # the plan's, once it is printed
        from annota.commands.search import _Progress

        self.search = _Progress(live=live)

    def preflight(self, checks) -> None:  # noqa: ANN001
        self.echo("Preflight:")
        for check in checks:
            self.echo(f"  {check.status:11} {check.name:17} {check.detail}")
            if check.status == "failed" and check.fix:
                self.echo(f"  {'':11} {'':17} to fix: {check.fix}")

    def planned(self, plan) -> None:  # noqa: ANN001
        self.echo(f"Database: {plan.database}")
        self.echo(f"Upgrade plan ({', '.join(plan.parts)}):")
        if plan.schema.steps:
            from annota.server.schema.history import history

            self.plan(plan.schema, history())
            for gate in plan.gates:
                needs = [*gate.requires_backfills, *gate.requires_async_migrations]
                self.echo(f"  release gate at {gate.revision} ({gate.release}): needs "
                          f"{', '.join(needs)} finished first")
        else:
            self.echo(f"  schema: nothing to do (at {plan.end or 'base'})")
        if plan.async_migrations:
            self.echo("Async migrations:")
            for name, when in plan.async_migrations:
                self.echo(f"  {name}: {when}")
        if plan.backfills:
            self.echo("Backfills (records left are estimates):")
            for b in plan.backfills:
                self.echo(f"  {b.name:14} {b.dataset} ({b.dataset_id}): {b.records} records, "
                          f"{b.status}")
        if plan.search:
            self.echo("Search indices to rebuild:")
            for i in plan.search:
                why = "; ".join(i.reasons) or "compared once the schema is at head"
                self.echo(f"  {i.dataset} ({i.dataset_id}): {i.records} records; {why}")
        if plan.backup:
            self.echo(f"Backup before the schema step: {plan.backup}")
            self.echo(f"  to restore it, {plan.restore}")
        self.estimates = plan.estimates
        if plan.estimates:
            total = sum(e.seconds for e in plan.estimates.values())
            self.echo("Estimated time (recorded: this deployment's earlier runs; sampled: "
                      "a sample of this database): " + ", ".join(
                          f"{part} {_duration(e.seconds)} ({e.basis})"
                          for part, e in plan.estimates.items())
                      + f"; in all about {_duration(total)}")
        for note in plan.notes:
            self.echo(f"Note: {note}")
        if plan.empty:
            self.echo("Nothing to do: the database, jobs and indices are up to date.")

    def part_started(self, part: str) -> None:
        self.echo(f"== {part}")

    def part_finished(self, part: str, seconds: float, summary: str) -> None:
        guess = self.estimates.get(part)
        against = f"; estimated {_duration(guess.seconds)}" if guess else ""
        self.echo(f"== {part}: {summary} ({seconds:.1f}s{against})")

    def gate_reached(self, error) -> None:  # noqa: ANN001
        gate = error.revision
        self.echo(f"Release gate at {gate.revision} ({gate.release}): finishing "
                  + "; ".join(j.describe() for j in error.jobs[:5])
                  + (f" and {len(error.jobs) - 5} more" if len(error.jobs) > 5 else ""))

    def waiting_for_others(self, name: str, jobs: int) -> None:
        self.echo(f"{name}: waiting for {jobs} job{'s' * (jobs != 1)} another worker runs "
                  "(taken over should it die)")

    def backfill_progress(self, name: str, rows: list[dict]) -> None:
        done = sum(r["status"] == "COMPLETED" for r in rows)
        processed = sum(r["processed"] for r in rows)
        line = f"{name}: {done}/{len(rows)} datasets done, {processed} records processed"
        if self.last.get(name) != line:
            self.echo(line)
            self.last[name] = line


def _duration(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.1f}s" if seconds < 10 else f"{seconds:.0f}s"
    minutes, rest = divmod(round(seconds), 60)
    return f"{minutes}m{rest:02d}s" if minutes < 60 else f"{minutes // 60}h{minutes % 60:02d}m"


@click.command()
@click.option("--to", "target", default="head", show_default=True, type=NONEMPTY,
              help="A release tag (e.g. 2.2), a revision id, 'head' or 'base'.")
@click.option("--include", help="Only these parts, comma-separated: schema,async,backfills,"
                                "search. Default: all.")
@click.option("--exclude", help="Leave out these parts, comma-separated.")
@click.option("--dry-run", is_flag=True, help="Print the plan; change nothing.")
@click.option("--force", is_flag=True,
              help="Cross release gates with unfinished jobs instead of finishing them.")
@click.option("--no-backup", is_flag=True,
              help="Do not write an archive of the instance before the schema step.")
@click.option("--backup-to", type=click.Path(file_okay=False, path_type=Path),
              help="Directory for that archive. Default: $ANNOTA_HOME/backups.")
@click.option("--skip-preflight", "skip_preflight", multiple=True, metavar="NAME",
              help="Leave out a preflight check (repeatable; 'all' for every one): "
                   "database-version, database-disk, database-locks, search-engine, "
                   "search-vectors, search-health, search-disk, search-read-only, redis, "
                   "workers.")
@yes_option
@json_option
def upgrade(target: str, include: str | None, exclude: str | None, dry_run: bool,
            force: bool, no_backup: bool, backup_to: Path | None,
            skip_preflight: tuple[str, ...], yes: bool, as_json: bool) -> None:
    """Upgrade everything in one go: schema, async migrations, backfills, search indices.

    Checks first what the run needs (preflight: the database's version, disk and
    locks; the search engine's product, version, vectors, health, disk watermarks and
    read-only indices; Redis and its workers when configured): a failed check stops it
    before anything changes, with exit code 22 (database), 23 (search) or 24 (Redis).
    Then prints the whole plan and runs it in order with progress and a summary.
    Before the schema moves a database with data, it writes an archive of the whole
    instance ($ANNOTA_HOME/backups, the newest ANNOTA_BACKUP_KEEP kept). At
    a release gate it finishes the gate's jobs, then moves on. Safe to run again after
    any interruption (even kill -9): it does only what is left. A downgrade asks for the
    same consent as `migrate` and moves the schema only.

    \b
    Example:
      annota server upgrade --dry-run
      annota server upgrade --yes
      annota server upgrade --exclude search --json
    """
    from annota.server import upgrade as upgrades
    from annota.server.archive.backup import UpgradeBackup

    config = settings()
    backup = None if no_backup else UpgradeBackup(config, backup_to)
    parts = upgrades.parts_from(include, exclude)
    from annota.server.upgrade.preflight import skip_names

    skip = skip_names(skip_preflight)
    printer = _UpgradePrinter(err=as_json, live=sys.stderr.isatty() and not as_json)
    try:
        result = upgrades.upgrade(config, target, parts=parts, dry_run=dry_run,
                                  confirm=_confirm(yes), force=force, reporter=printer,
                                  backup=backup, skip_preflight=skip)
    finally:
        printer.search.stop()
    if as_json:
        echo_json(result.to_dict())
    elif dry_run:
        printer.echo("Nothing was changed (dry run).")
    elif not result.plan.empty:
        printer.echo("Done: " + ", ".join(f"{part} {seconds:.1f}s"
                                          for part, seconds in result.seconds.items()))
