"""``annota server database backfills`` and ``async-migrations``, and ``annota server worker``."""

from __future__ import annotations

import sys
from datetime import datetime

import click

from annota.commands.common import (
    NONEMPTY,
    echo_json,
    echo_table,
    json_option,
    open_database,
    settings,
)
from annota.errors import BackfillsFailedError, BackfillsUnfinishedError

# exit codes of `backfills status` (and `run` when it waits), for deploy scripts
EXIT_DONE = 0
EXIT_UNFINISHED, EXIT_FAILED = BackfillsUnfinishedError.exit_code, BackfillsFailedError.exit_code


def _jobs_database():  # noqa: ANN202 - (Settings, Engine)
    """The database, once its schema has the jobs tables (release 2.1) or is at head."""
    from annota.server.schema.history import JOBS_TABLES_REVISION

    return open_database(at_least=JOBS_TABLES_REVISION)


@click.group()
def backfills() -> None:
    """Recompute derived data (record status, agreement) for existing datasets.

    Jobs run in-process, or on `annota server worker` processes when ANNOTA_REDIS_URL is set.

    \b
    Example:
      annota server database backfills run record-status --all
      annota server database backfills status --json
    """


@backfills.command("list")
@click.option("--status", "status_", type=click.Choice(
    ["PENDING", "QUEUED", "RUNNING", "COMPLETED", "FAILED", "CANCELED"], case_sensitive=False),
    help="Only jobs in this status.")
@click.option("--name", type=NONEMPTY, help="Only this backfill (record-status, agreement).")
@json_option
def list_jobs(status_: str | None, name: str | None, as_json: bool) -> None:
    """List backfill jobs: one per backfill and dataset.

    \b
    Example:
      annota server database backfills list --status FAILED
    """
    from annota.server.jobs.backfill_jobs import jobs

    _, db = _jobs_database()
    with db.connect() as connection:
        rows = jobs(connection, name=name, status=status_)
    db.dispose()
    if as_json:
        echo_json([_job_json(r) for r in rows])
        return
    if not rows:
        click.echo("No backfill jobs.")
        return
    echo_table(["NAME", "DATASET", "STATUS", "PROGRESS", "ATTEMPTS", "UPDATED"], [
        [r["name"], f"{r['dataset_name']} ({r['dataset_id']})", r["status"], _progress(r),
         str(r["attempts"]), r["updated_at"].isoformat(timespec="seconds")] for r in rows
    ], indent="")


def _progress(row: dict) -> str:
    total = row["total"]
    if not total:
        return f"{row['processed']}"
    return f"{row['processed']}/{total} ({100 * row['processed'] / total:.0f}%)"


def _rate(row: dict) -> float | None:
    if not (row["started_at"] and row["heartbeat_at"] and row["processed"]):
        return None
    seconds = (row["heartbeat_at"] - row["started_at"]).total_seconds()
    return row["processed"] / seconds if seconds > 0 else None


def _job_json(row: dict) -> dict:
    data = {k: (v.isoformat() if isinstance(v, datetime) else v) for k, v in row.items()}
    data["id"], data["dataset_id"] = str(row["id"]), str(row["dataset_id"])
    rate = _rate(row)
    data["rate"] = rate
    left = (row["total"] or 0) - row["processed"]
    data["eta_seconds"] = left / rate if rate and row["status"] == "RUNNING" else None
    return data


def _exit_code(rows: list[dict]) -> int:
    statuses = {r["status"] for r in rows}
    if statuses & {"FAILED", "CANCELED"}:
        return EXIT_FAILED
    if statuses & {"PENDING", "QUEUED", "RUNNING"}:
        return EXIT_UNFINISHED
    return EXIT_DONE


@backfills.command()
@click.argument("name", type=NONEMPTY)
@click.option("--dataset-id", type=NONEMPTY, help="Only this dataset.")
@click.option("--limit", type=click.IntRange(min=1), help="Queue this many unprocessed datasets.")
@click.option("--all", "all_", is_flag=True, help="Every dataset.")
@click.option("--batch-size", type=click.IntRange(1, 100_000), default=1000, show_default=True,
              help="Records in the first batch; then sized to ANNOTA_BACKFILL_BATCH_SECONDS.")
@click.option("--force", is_flag=True, help="Also redo datasets already completed.")
@click.option("--wait/--no-wait", default=True, show_default=True,
              help="With Redis: wait for the workers to finish the jobs.")
@json_option
def run(name: str, dataset_id: str | None, limit: int | None, all_: bool, batch_size: int,
        force: bool, wait: bool, as_json: bool) -> None:
    """Queue a backfill for datasets and run it (here, or on RQ workers).

    Completed datasets are skipped unless --force; FAILED and CANCELED ones resume
    from where they stopped. Exit 0 when every queued job completed, 4 if one failed.

    \b
    Example:
      annota server database backfills run record-status --all
      annota server database backfills run agreement --limit 10
    """
    from annota.server.jobs import runner

    if sum(map(bool, (dataset_id, limit, all_))) != 1:
        raise click.UsageError("give exactly one of --dataset-id, --limit N, --all")
    config = settings()
    last = {"line": ""}

    def progress(rows: list[dict]) -> None:
        done = sum(r["status"] == "COMPLETED" for r in rows)
        processed = sum(r["processed"] for r in rows)
        line = f"{name}: {done}/{len(rows)} datasets done, {processed} records processed"
        if line != last["line"]:
            click.echo(line, err=True)
            last["line"] = line

    result = runner.run(config, name, dataset_id=dataset_id, limit=limit, force=force,
                        batch_size=batch_size, wait=wait, on_progress=progress)
    q = result.queue
    summary = (f"{name}: queued {len(q.queued)}, skipped {q.skipped} (already completed), "
               f"remaining {q.remaining} ({result.mode})")
    if as_json:
        echo_json(result.to_dict())
    else:
        click.echo(summary)
        for job_id, status in result.final.items():
            if status != "COMPLETED":
                click.echo(f"job {job_id}: {status}", err=True)
    if result.final and not result.ok:
        sys.exit(EXIT_FAILED)


@backfills.command()
@click.argument("name", required=False, type=NONEMPTY)
@click.option("--dataset-id", type=NONEMPTY, help="Only this dataset.")
@json_option
def status(name: str | None, dataset_id: str | None, as_json: bool) -> None:
    """Progress of backfills: totals, and per dataset progress, rate, ETA and last error.

    Exit 0 when every job is completed, 3 while some are pending, queued or running,
    4 when one failed or was canceled.

    \b
    Example:
      until annota server database backfills status; do sleep 10; done
    """
    from annota.server.jobs.backfill_jobs import STATUSES, ensure_jobs, jobs
    from annota.server.jobs.backfills import BACKFILLS

    _, db = _jobs_database()
    with db.begin() as connection:
        for each in [name] if name else list(BACKFILLS):
            ensure_jobs(connection, each)
        rows = jobs(connection, name=name, dataset_id=dataset_id)
    db.dispose()
    totals = {s.lower(): sum(r["status"] == s for r in rows) for s in STATUSES}
    if as_json:
        echo_json({"totals": totals, "jobs": [_job_json(r) for r in rows]})
    else:
        click.echo(", ".join(f"{n} {s}" for s, n in totals.items() if n) or "No backfill jobs.")
        if rows:
            echo_table(["NAME", "DATASET", "STATUS", "PROGRESS", "RATE", "ETA", "LAST ERROR"], [
                [r["name"], r["dataset_name"], r["status"], _progress(r),
                 f"{_rate(r):,.0f}/s" if _rate(r) else "-",
                 f"{j['eta_seconds']:.0f}s" if (j := _job_json(r))["eta_seconds"] else "-",
                 (r["last_error"] or "")[:80]] for r in rows
            ], indent="")
    sys.exit(_exit_code(rows))


@backfills.command()
@click.argument("name", required=False, type=NONEMPTY)
@click.option("--dataset-id", type=NONEMPTY, help="Only this dataset.")
def cancel(name: str | None, dataset_id: str | None) -> None:
    """Cancel unfinished backfill jobs; a running one stops after its current batch.

    \b
    Example:
      annota server database backfills cancel agreement
    """
    from annota.server.jobs.backfill_jobs import cancel as cancel_jobs

    _, db = _jobs_database()
    with db.begin() as connection:
        count = cancel_jobs(connection, name, dataset_id)
    db.dispose()
    click.echo(f"Canceled {count} jobs.")


@click.group("async-migrations")
def async_migrations() -> None:
    """Heavy schema work run outside the migration transaction (e.g. concurrent indexes).

    With ANNOTA_ALLOW_SCHEDULED_MIGRATIONS=true, `migrate` only schedules them.

    \b
    Example:
      annota server database async-migrations list
      annota server database async-migrations run
    """


@async_migrations.command("list")
@json_option
def list_async(as_json: bool) -> None:
    """List async migrations: SCHEDULED, STARTED, IN_PROGRESS, FINISHED or ERROR.

    \b
    Example:
      annota server database async-migrations list --json
    """
    from annota.server.schema.async_migrations import listing

    _, db = _jobs_database()
    with db.connect() as connection:
        rows = listing(connection)
    db.dispose()
    if as_json:
        echo_json([{k: (v.isoformat() if isinstance(v, datetime) else v) for k, v in r.items()}
                   for r in rows])
        return
    if not rows:
        click.echo("No async migrations.")
        return
    echo_table(["NAME", "REVISION", "STATUS", "ATTEMPTS", "ERROR"], [
        [r["name"], r["revision"], r["status"], str(r["attempts"]), (r["error"] or "")[:80]]
        for r in rows], indent="")


@async_migrations.command("run")
@click.argument("name", required=False, type=NONEMPTY)
def run_async(name: str | None) -> None:
    """Run one async migration, or every SCHEDULED and ERROR one.

    \b
    Example:
      annota server database async-migrations run responses_record_id_status_index
    """
    from annota.server.schema import async_migrations as am

    config, db = _jobs_database()
    try:
        rows = am.run(db, config.database_url, name, on_wait=lambda: click.echo(
            "A migration runs; waiting for its lock...", err=True))
    finally:
        db.dispose()
    for r in rows:
        click.echo(f"{r['name']}: {r['status']}")
    if not rows:
        click.echo("Nothing to run.")


@click.command()
@click.option("--workers", type=click.IntRange(1, 64), default=1, show_default=True,
              help="Worker processes to run.")
@click.option("--burst", is_flag=True, help="Stop when the queue is empty.")
def worker(workers: int, burst: bool) -> None:
    """Run RQ workers that process backfill jobs (needs ANNOTA_REDIS_URL).

    \b
    Example:
      ANNOTA_REDIS_URL=redis://localhost:6379/0 annota server worker --workers 4
    """
    from annota.server.jobs.worker import run_workers

    run_workers(settings(), workers, burst=burst)
