"""``annota server search-engine``: rebuild and inspect the search indices."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import click

from annota.commands.common import (
    NONEMPTY,
    SECONDS,
    echo_json,
    echo_table,
    json_option,
    settings,
)
from annota.errors import IndexDriftError

EXIT_DRIFT = IndexDriftError.exit_code


@click.group("search-engine")
def search_engine() -> None:
    """Rebuild, inspect and search the per-dataset search indices.

    The engine: embedded (a SQLite file, the default on a SQLite database), or set
    ANNOTA_ELASTICSEARCH (URL) and ANNOTA_SEARCH_ENGINE (elasticsearch | opensearch).

    \b
    Example:
      ANNOTA_ELASTICSEARCH=http://localhost:9200 annota server search-engine status
    """


class _Progress:
    """Reindex progress: a rich bar on a terminal, a plain line every few seconds otherwise."""

    def __init__(self, live: bool, every: float = 5.0) -> None:
        self.live, self.every = live, every
        self.bar = None
        self.task = None
        self.total_task = None
        self.plans: list = []
        self.started = time.monotonic()
        self.last = 0.0

    def echo(self, message: str) -> None:
        if self.bar is not None:
            self.bar.console.print(message, markup=False, highlight=False)
        else:
            click.echo(message, err=True)

    def planned(self, plans) -> None:  # noqa: ANN001
        self.plans = plans
        total = sum(p.records for p in plans)
        self.echo(f"Reindexing {len(plans)} datasets, {total} records")
        if self.live and plans:
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                TaskProgressColumn,
                TextColumn,
                TimeRemainingColumn,
            )

            self.bar = Progress(
                TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                TaskProgressColumn(), TextColumn("{task.fields[rate]}"), TimeRemainingColumn(),
                console=None, transient=False,
            )
            self.bar.console.stderr = True
            self.bar.start()
            self.total_task = self.bar.add_task("datasets", total=len(plans), rate="")

    def dataset_started(self, plan, index: str) -> None:  # noqa: ANN001
        self.started, self.last = time.monotonic(), time.monotonic()
        if self.bar is not None:
            if self.task is not None:
                self.bar.remove_task(self.task)
            self.task = self.bar.add_task(plan.name, total=plan.records or None, rate="")
        else:
            self.echo(f"{plan.name} ({plan.dataset_id}): {plan.records} records -> {index}")

    def progressed(self, plan, done: int) -> None:  # noqa: ANN001
        elapsed = max(time.monotonic() - self.started, 1e-6)
        rate = done / elapsed
        if self.bar is not None:
            self.bar.update(self.task, completed=done, rate=f"{rate:,.0f} rec/s")
        elif time.monotonic() - self.last >= self.every:
            left = (plan.records - done) / rate if rate else 0
            self.echo(f"{plan.name}: {done}/{plan.records} records, {rate:,.0f}/s, "
                      f"ETA {left:.0f}s")
            self.last = time.monotonic()

    def dataset_finished(self, result) -> None:  # noqa: ANN001
        if self.bar is not None:
            self.bar.advance(self.total_task)
        outcome = "switched" if result.swapped else f"NOT switched: {result.error}"
        self.echo(f"{result.plan.name}: {result.indexed} indexed, {result.rejected} rejected "
                  f"in {result.seconds:.1f}s; alias {outcome}")

    def note(self, message: str) -> None:
        self.echo(message)

    def stop(self) -> None:
        if self.bar is not None:
            self.bar.stop()


@search_engine.command()
@click.option("--dataset-id", "dataset_ids", multiple=True, type=NONEMPTY,
              help="Only this dataset (repeatable). Default: every dataset.")
@click.option("--feedback-dataset-id", "feedback_ids", multiple=True, type=NONEMPTY,
              help="Another name for --dataset-id.")
@click.option("--batch-size", type=click.IntRange(1, 10_000), default=500, show_default=True,
              help="Records per database read and bulk request.")
@click.option("--in-place", is_flag=True,
              help="Delete each index and refill it (search is down meanwhile).")
@click.option("--dry-run", is_flag=True, help="Print what would be done; change nothing.")
@click.option("--senders", type=click.IntRange(1, 32), default=2, show_default=True,
              help="Parallel bulk requests per dataset (more where the engine has capacity).")
@click.option("--wait", "wait_seconds", type=SECONDS, default=300,
              show_default=True,
              help="Seconds to wait for another reindex of the same dataset (exit 13 after).")
@click.option("--report", type=click.Path(dir_okay=False, path_type=Path),
              help="Where to write rejected documents (JSONL). "
                   "Default: $ANNOTA_HOME/reindex/rejected-<time>.jsonl")
@json_option
def reindex(dataset_ids: tuple[str, ...], feedback_ids: tuple[str, ...], batch_size: int,
            in_place: bool, dry_run: bool, senders: int, wait_seconds: float,
            report: Path | None, as_json: bool) -> None:
    """Rebuild dataset search indices from the database, with zero search downtime.

    Each dataset's index is built anew, checked against the database, and only then
    swapped in behind the dataset's alias. Rejected documents go to a JSONL report and
    make the command exit 10; the alias then stays on the old index.

    \b
    Example:
      annota server search-engine reindex
      annota server search-engine reindex --dataset-id 5f1c... --dry-run
    """
    from annota.errors import ReindexError
    from annota.search import reindex as reindexing

    config = settings()
    wanted = list(dataset_ids + feedback_ids) or None
    if dry_run:
        plans = reindexing.plan(config, wanted)
        if as_json:
            echo_json({"dry_run": True, "mode": "in-place" if in_place else "swap",
                       "datasets": [p.to_dict() for p in plans]})
            return
        for p in plans:
            now = ", ".join(p.current) or "no index"
            how = ("delete it and refill the alias in place" if in_place else
                   f"build {p.alias}.<timestamp>, then switch {p.alias} to it")
            click.echo(f"{p.name} ({p.dataset_id}): {p.records} records; now {now}; would {how}")
        click.echo(f"{len(plans)} datasets, {sum(p.records for p in plans)} records; "
                   "nothing was changed (dry run)")
        return
    progress = _Progress(live=sys.stderr.isatty() and not as_json)
    try:
        summary = reindexing.reindex(config, wanted, batch_size=batch_size, in_place=in_place,
                                     report_path=report, reporter=progress,
                                     wait=wait_seconds, senders=senders)
    finally:
        progress.stop()
    if as_json:
        echo_json({"datasets": [r.to_dict() for r in summary.results],
                   "report": str(summary.report) if summary.report else None,
                   "ok": not summary.failed})
    elif not summary.results:
        click.echo("No datasets: nothing to reindex.")
    else:
        echo_table(["DATASET", "NAME", "RECORDS", "SECONDS", "WRITERS PAUSED", "REJECTED",
                    "RESULT"], [
            [r.plan.dataset_id, r.plan.name, str(r.indexed), f"{r.seconds:.1f}",
             "-" if r.paused is None else f"{r.paused * 1000:.0f} ms",
             str(r.rejected), "switched" if r.swapped else "not switched"]
            for r in summary.results
        ], indent="")
    if summary.failed:
        where = f"; rejected documents are in {summary.report}" if summary.report else ""
        raise ReindexError(
            f"{len(summary.failed)} of {len(summary.results)} datasets were not reindexed: "
            f"{summary.failed[0].error}{where}"
        )


@search_engine.command()
@click.option("--verify", is_flag=True,
              help="Also compare by identity: every record's document at the record's "
                   "version, and no other document (reads every id and version).")
@json_option
def status(verify: bool, as_json: bool) -> None:
    """Compare each dataset's records with its index; exit 12 if any needs a reindex.

    By count, mapping version and settings; with --verify, by identity too.

    \b
    Example:
      annota server search-engine status --verify --json
    """
    from annota.search import maintenance

    state = maintenance.status(settings(), verify=verify)
    if as_json:
        echo_json(state.to_dict())
    else:
        click.echo(f"Search engine: {state.engine.kind} {state.engine.version}")
        echo_table(["DATASET", "NAME", "RECORDS", "DOCUMENTS", "INDEX", "MAPPING", "REINDEX"], [
            [d.dataset_id, d.name, str(d.records), "-" if d.documents is None else
             str(d.documents), d.index or "-", str(d.mapping_version or "-"),
             "; ".join(d.reasons) or "no"] for d in state.datasets
        ], indent="") if state.datasets else click.echo("No datasets.")
        if state.orphans:
            click.echo(f"{len(state.orphans)} indices without an alias (see `cleanup`): "
                       + ", ".join(state.orphans))
    if state.drift:
        sys.exit(EXIT_DRIFT)


@search_engine.command()
@click.option("--dry-run", is_flag=True, help="List what would be deleted; delete nothing.")
@click.option("--stale-after", type=SECONDS, default=10, show_default=True,
              help="Seconds to watch the lease of a reindex that names an unaliased index: "
                   "renewed meanwhile, the build is alive and its index kept.")
def cleanup(dry_run: bool, stale_after: float) -> None:
    """Delete annota indices no alias points to (left behind by a crashed reindex).

    \b
    Example:
      annota server search-engine cleanup --dry-run
    """
    from annota.search import maintenance

    result = maintenance.cleanup(settings(), dry_run=dry_run, stale_after=stale_after)
    verb = "Would delete" if dry_run else "Deleted"
    for name in result.deleted:
        click.echo(f"{verb} {name}")
    for name in result.kept_building:
        click.echo(f"Kept {name}: a reindex is still building it")
    click.echo(f"{verb} {len(result.deleted)} indices.")


@search_engine.command("search")
@click.argument("dataset", type=NONEMPTY)
@click.argument("text", required=False)
@click.option("--query", "query_json", type=NONEMPTY,
              help="The whole query as JSON (the API's search body: text, filters, sort, "
                   "offset, limit, similarity); TEXT, if given too, replaces its text.")
@click.option("--limit", type=click.IntRange(0, 1000), default=None,
              help="Records to show (default 20).")
@json_option
def search_command(dataset: str, text: str | None, query_json: str | None, limit: int | None,
                   as_json: bool) -> None:
    """Search a dataset's index, as the API does: DATASET is its id or name.

    A query that does not fit the dataset is refused with every problem's location.

    \b
    Example:
      annota server search-engine search reviews banana
      annota server search-engine search reviews --query '{"filters": [{"type":
        "metadata", "property": "source", "values": ["mail"]}], "limit": 5}'
    """
    import json

    from pydantic import ValidationError

    from annota.errors import InvalidInputError
    from annota.search import connect
    from annota.search.query import SearchQuery
    from annota.search.searching import answer, item
    from annota.server.db import open_database, read_only
    from annota.server.domain.datasets import dataset_by_id_or_name
    from annota.server.schema.migrate import ensure_at_head

    config = settings()
    try:
        given = json.loads(query_json) if query_json else {}
        if not isinstance(given, dict):
            raise InvalidInputError("--query is not a JSON object")
        if text is not None:
            given["text"] = {"q": text}
        if limit is not None:
            given["limit"] = limit
        query = SearchQuery.model_validate(given)
    except json.JSONDecodeError as exc:
        raise InvalidInputError(f"--query is not JSON: {exc}") from None
    except ValidationError as exc:
        problem = exc.errors()[0]
        where = ".".join(str(part) for part in problem["loc"]) or "the query"
        raise InvalidInputError(f"--query: {where}: {problem['msg']}") from None
    ensure_at_head(config)
    engine = connect(config.search)
    db = read_only(open_database(config.database_url))
    try:
        with db.connect() as connection:
            dataset_id = dataset_by_id_or_name(connection, dataset).id
            result = answer(connection, engine, dataset_id, query)
    finally:
        db.dispose()
    items = [item(h) for h in result.hits]
    if as_json:
        echo_json({"items": items, "count": len(items), "total": result.total})
        return
    echo_table(["ID", "SCORE", "EXTERNAL ID", "FIELDS"], [
        [i["id"], "-" if i["score"] is None else f"{i['score']:.4g}", i["external_id"] or "-",
         _shorten(json.dumps(i["fields"], ensure_ascii=False))] for i in items], indent="")
    click.echo(f"{len(items)} of {result.total} records")


def _shorten(text: str, width: int = 60) -> str:
    return text if len(text) <= width else text[:width - 1] + "…"
