"""``annota server database export | import | copy | verify``: move and protect data."""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import click

from annota.commands.common import NONEMPTY, echo_json, echo_table, json_option, settings
from annota.errors import AbortedError, ArchiveMismatchError, ConfirmationRequiredError


class RowProgress:
    """Rows done: a rich bar on a terminal, a plain line every few seconds otherwise."""

    def __init__(self, live: bool, every: float = 5.0) -> None:
        self.live, self.every = live, every
        self.bar = self.task = None
        self.what, self.total, self.done = "", 0, 0
        self.started_at = self.last = time.monotonic()

    def started(self, what: str, total: int) -> None:
        self.what, self.total, self.done = what, total, 0
        self.started_at = self.last = time.monotonic()
        if self.live:
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                TextColumn,
                TimeRemainingColumn,
            )

            self.bar = Progress(TextColumn("{task.description}"), BarColumn(),
                                MofNCompleteColumn(), TimeRemainingColumn(), transient=True)
            self.bar.console.stderr = True
            self.bar.start()
            self.task = self.bar.add_task(f"{what} rows", total=total or None)

    def advanced(self, rows: int) -> None:
        self.done += rows
        if self.bar is not None:
            self.bar.update(self.task, completed=self.done)
        elif time.monotonic() - self.last >= self.every:
            rate = self.done / max(time.monotonic() - self.started_at, 1e-6)
            click.echo(f"{self.what}: {self.done}/{self.total} rows, {rate:,.0f}/s", err=True)
            self.last = time.monotonic()

    def finished(self) -> None:
        if self.bar is not None:
            self.bar.stop()
            self.bar = None

    def note(self, message: str) -> None:
        click.echo(message, err=True)


def _progress(as_json: bool) -> RowProgress:
    return RowProgress(live=sys.stderr.isatty() and not as_json)


def _consent(yes: bool, question: str, refusal: str):  # noqa: ANN202
    def confirm(*_: object) -> bool:
        if yes:
            return True
        if not sys.stdin.isatty():
            raise ConfirmationRequiredError(f"{refusal} without a terminal to confirm; "
                                            "pass --yes to consent")
        if not click.confirm(question, err=True):
            raise AbortedError("cancelled; nothing was changed")
        return True

    return confirm


@click.command("export")
@click.option("--workspace", "workspaces", multiple=True, type=NONEMPTY,
              help="Export this workspace's datasets (repeatable). Default: everything.")
@click.option("--dataset-id", "dataset_ids", multiple=True, type=NONEMPTY,
              help="Export this dataset (repeatable).")
@click.option("--output", "-o", type=click.Path(path_type=Path),
              help="Archive file (or directory). Default: ./annota-<release>-<time>.annota")
@click.option("--without-credentials", is_flag=True,
              help="Leave out password hashes and API-key digests.")
@json_option
def export_command(workspaces: tuple[str, ...], dataset_ids: tuple[str, ...],
                   output: Path | None, without_credentials: bool, as_json: bool) -> None:
    """Write the database (or some workspaces and datasets) to one verified archive.

    One consistent snapshot, even while the server writes. By default the whole instance,
    with users' password hashes and API-key digests, so logins survive a move.

    \b
    Example:
      annota server database export --output backup.annota
    """
    from annota.server.archive.export import export

    progress = _progress(as_json)
    result = export(settings(), output, workspaces=workspaces, dataset_ids=dataset_ids,
                    credentials=not without_credentials, progress=progress)
    if as_json:
        echo_json(result.to_dict())
        return
    rows = sum(result.tables.values())
    click.echo(f"Exported {rows} rows ({result.datasets} datasets) at {result.revision} "
               f"(release {result.release}) to {result.path} ({result.bytes:,} bytes) in "
               f"{result.seconds:.1f}s")


@click.command("import")
@click.argument("archive", type=click.Path(path_type=Path))
@click.option("--workspace", type=NONEMPTY,
              help="Put every imported dataset in this workspace (made if missing).")
@click.option("--on-conflict", type=click.Choice(["fail", "skip", "replace"]),
              default="fail", show_default=True,
              help="A dataset whose id or name exists: stop, leave it, or replace it.")
@click.option("--dry-run", is_flag=True, help="Check the archive and print the plan only.")
@click.option("--reindex/--no-reindex", default=None,
              help="Build the imported datasets' search indices (default: when the engine "
                   "answers).")
@click.option("--yes", "-y", is_flag=True, help="Consent to replacing datasets.")
@json_option
def import_command(archive: Path, workspace: str | None, on_conflict: str, dry_run: bool,
                   reindex: bool | None, yes: bool, as_json: bool) -> None:
    """Import an archive: restore an instance into an empty database, or merge its
    datasets into one with data. All or nothing; checked before anything is written.

    \b
    Example:
      ANNOTA_DATABASE_URL=postgresql://annota@db/annota \\
        annota server database import backup.annota
    """
    from annota.server.archive.load import import_archive

    result = import_archive(
        settings(), archive, workspace=workspace, on_conflict=on_conflict, dry_run=dry_run,
        reindex=reindex, progress=_progress(as_json),
        confirm=_consent(yes, "Replace the existing datasets listed above?",
                         "refusing to replace datasets"))
    if as_json:
        echo_json(result.to_dict())
        return
    echo = click.echo
    echo(f"Archive {archive}: revision {result.revision} (release {result.release})"
         + ("; brought to head by the revisions migrate runs" if result.staged else ""))
    echo_table(["DATASET", "WORKSPACE", "ID", "ACTION"],
               [[d.name, d.workspace, d.id, d.action + (f" ({d.reason})" if d.reason else "")]
                for d in result.datasets])
    for note in result.notes:
        echo(note, err=True)
    if dry_run:
        echo("Dry run: nothing was written.")
        return
    echo(f"Imported {sum(result.tables.values())} rows "
         f"({result.users.get('created', 0)} users created, "
         f"{result.users.get('matched', 0)} matched by username) in {result.seconds:.1f}s"
         + (f"; {len(result.reindexed)} indices rebuilt" if result.reindexed else ""))


@click.command("copy")
@click.option("--to", "to", required=True, type=NONEMPTY,
              help="The target database URL (an empty database).")
@click.option("--yes", "-y", is_flag=True, help="Consent to writing the target.")
@json_option
def copy_command(to: str, yes: bool, as_json: bool) -> None:
    """Copy this database into another (SQLite <-> PostgreSQL), ids kept, then verify it.

    \b
    Example:
      annota server database copy --to postgresql://annota:secret@db/annota --yes
    """
    from annota.server.archive.copy import copy
    from annota.urls import DatabaseURL

    target = DatabaseURL.parse(to, setting="--to")
    with _differences_shown(as_json):
        result = copy(settings(), target, progress=_progress(as_json), confirm=_consent(
            yes, f"Copy into {target.masked}?", f"refusing to write {target.masked}"))
    if as_json:
        echo_json(result.to_dict())
        return
    _print_comparison(result.comparison, False)
    verb = "was already a verified copy" if result.already else "copied and verified"
    click.echo(f"{result.target} {verb}: revision {result.revision}, "
               f"{sum(t['source_rows'] for t in result.comparison.tables)} rows, "
               f"in {result.seconds:.1f}s")


@click.command("verify")
@click.argument("archive", type=click.Path(path_type=Path))
@json_option
def verify_command(archive: Path, as_json: bool) -> None:
    """Compare an archive with the database: counts and digests per table and dataset.

    Exit 0 when equal, 21 when they differ (the tables and datasets are named).

    \b
    Example:
      annota server database verify backup.annota
    """
    from annota.server.archive.verify import verify

    with _differences_shown(as_json):
        result = verify(settings(), archive)
    if as_json:
        echo_json(result.to_dict())
        return
    _print_comparison(result, False)
    click.echo(f"{archive} equals the database.")


@contextmanager
def _differences_shown(as_json: bool) -> Iterator[None]:
    """On ArchiveMismatchError, print what differs (table, or JSON), then let it exit."""
    try:
        yield
    except ArchiveMismatchError as exc:
        _print_comparison(getattr(exc, "comparison", None), as_json)
        raise


def _print_comparison(comparison, as_json: bool) -> None:  # noqa: ANN001
    if comparison is None:
        return
    if as_json:
        echo_json(comparison.to_dict())
        return
    sides = [k[:-5] for k in comparison.tables[0] if k.endswith("_rows")] if (
        comparison.tables) else ["a", "b"]
    echo_table(["TABLE", *(s.upper() + " ROWS" for s in sides), "DIGEST", "EQUAL"],
               [[t["name"], *(str(t[f"{s}_rows"]) for s in sides),
                 t[f"{sides[0]}_digest"][:16], "yes" if t["equal"] else "NO"]
                for t in comparison.tables])
    differing = [d for d in comparison.datasets if not d["equal"]]
    if differing:
        click.echo(f"  datasets that differ: {', '.join(d['id'] for d in differing)}")
