"""``annota server database``: see and move the schema."""

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
    yes_option,
)
from annota.errors import (
    AbortedError,
    AnnotaError,
    ConfirmationRequiredError,
    DatabaseUnreachableError,
    HistoryChangedError,
    SchemaAheadError,
    SchemaDriftError,
    SchemaNotReadyError,
)

# exit codes of `check`, for deploy scripts and container init steps
EXIT_UP_TO_DATE = 0
EXIT_BEHIND, EXIT_AHEAD = SchemaNotReadyError.exit_code, SchemaAheadError.exit_code
EXIT_UNREACHABLE = DatabaseUnreachableError.exit_code


@click.group()
def database() -> None:
    """See and move the database schema (SQLite by default, or ANNOTA_DATABASE_URL).

    \b
    Example:
      ANNOTA_DATABASE_URL=postgresql://annota:secret@db/annota \\
        annota server database current
    """


def _rev(revision: str | None, release: str | None) -> str:
    if revision is None:
        return "base (empty)"
    return f"{revision} (release {release})" if release else f"{revision} (unknown to this code)"


@database.command()
@json_option
def revisions(as_json: bool) -> None:
    """List the tagged releases and the revision history, marking the current revision.

    \b
    Example:
      annota server database revisions
      annota server database revisions --json | jq '.releases'
    """
    from annota.server.schema import migrate as migrations
    from annota.server.schema.history import history

    hist = history()
    config = settings()
    error: AnnotaError | None = None
    try:
        state = migrations.status(config)
    except AnnotaError as exc:  # still list the history; the error is reported below
        state, error = None, exc
    current = state.current if state else None
    if as_json:
        echo_json({
            "status": state.to_dict() if state else None,
            "error": str(error) if error else None,
            "releases": [
                {"release": t.release, "revision": t.revision, "current": t.revision == current}
                for t in hist.tags
            ],
            "history": [
                {
                    "revision": r.revision,
                    "down_revision": r.down_revision,
                    "release": r.release,
                    "description": r.description,
                    "data_loss_on_downgrade": r.data_loss,
                    "tag": hist.tag_of(r.revision),
                    "current": r.revision == current,
                }
                for r in hist.revisions
            ],
        })
    else:
        click.echo(f"Database: {config.database_url.masked}")
        if state:
            click.echo(f"Current:  {_rev(state.current, state.current_release)}")
            click.echo(f"Head:     {_rev(state.head, state.head_release)}")
            click.echo(f"State:    {state.summary}")
        click.echo("\nReleases (a release's tag is its last revision):")
        echo_table(
            ["RELEASE", "REVISION", ""],
            [[t.release, t.revision, "<- current" if t.revision == current else ""]
             for t in hist.tags],
        )
        click.echo("\nHistory, oldest first (* = current):")
        echo_table(
            ["", "REVISION", "RELEASE", "DOWNGRADE LOSES DATA", "DESCRIPTION"],
            [["*" if r.revision == current else "", r.revision, r.release,
              "yes" if r.data_loss else "no", r.description] for r in hist.revisions],
        )
    if error:
        raise error


@database.command()
@json_option
def current(as_json: bool) -> None:
    """Show the app version, database (password masked), current revision and state.

    The state is one of: up to date, behind (n revisions), ahead of this code
    (unknown revision), empty. Also available as `info`.

    \b
    Example:
      annota server database current --json
    """
    from annota.server.schema import migrate as migrations

    state = migrations.status(settings())
    if as_json:
        echo_json(state.to_dict())
        return
    rows = [
        ["annota version", state.app_version],
        ["database", state.database],
        ["current", _rev(state.current, state.current_release)],
        ["head", _rev(state.head, state.head_release)],
        ["state", state.summary],
    ]
    rows += [["pending", line] for line in state.pending_lines]
    echo_table(["", ""], rows, indent="")


database.add_command(current, name="info")


@database.command()
@click.option(
    "--wait", "wait_seconds", type=SECONDS, default=0, show_default=True,
    help="Keep polling for up to SECONDS until the schema is at head (container init).",
)
def check(wait_seconds: float) -> None:
    """Exit 0 only when the schema is at this code's head and no applied revision file
    has changed since it was applied.

    \b
    Exit codes: 0 up to date, 3 behind or empty, 4 ahead of this code
    (unknown revision), 5 database unreachable, 14 a revision file changed,
    15 the live schema differs from the models.

    \b
    Example:
      annota server database check --wait 60 && annota server start
    """
    from annota.server.schema import migrate as migrations

    config = settings()
    deadline = time.monotonic() + wait_seconds
    while True:
        try:
            state = migrations.status(config)
            code = {
                migrations.UP_TO_DATE: EXIT_UP_TO_DATE,
                migrations.AHEAD: EXIT_AHEAD,
                migrations.FOREIGN: EXIT_AHEAD,
            }.get(state.state, EXIT_BEHIND)
            message = f"schema {state.summary}: {_rev(state.current, state.current_release)}"
        except DatabaseUnreachableError as exc:
            code, message = EXIT_UNREACHABLE, str(exc)
        if code == EXIT_UP_TO_DATE or time.monotonic() >= deadline:
            break
        time.sleep(min(1.0, max(0.0, deadline - time.monotonic())))
    if code == EXIT_BEHIND:
        message += "; run `annota server database migrate`"
    changed, drift = (migrations.integrity(config, at_head=code == EXIT_UP_TO_DATE)
                      if code in (EXIT_UP_TO_DATE, EXIT_BEHIND) and state.current else ([], []))
    if changed:
        code = HistoryChangedError.exit_code
    elif drift:
        code = SchemaDriftError.exit_code
    click.echo(message, err=code != EXIT_UP_TO_DATE)
    for revision in changed:
        click.echo(revision.line(), err=True)
    for line in drift:
        click.echo(f"live schema differs from the models: {line}", err=True)
    if code != EXIT_UNREACHABLE:
        for line in state.pending_lines:  # reported; the schema itself is what check gates
            click.echo(line, err=True)
    sys.exit(code)


class _Printer:
    """Prints migrate's progress: stdout normally, stderr when stdout carries JSON."""

    def __init__(self, err: bool) -> None:
        self.err = err

    def echo(self, message: str = "") -> None:
        click.echo(message, err=self.err)

    def plan(self, plan, history) -> None:  # noqa: ANN001
        last = plan.steps[-1].revision
        if plan.direction == "upgrade":
            target = last
        else:
            target = history.get(last.down_revision) if last.down_revision else None
        where = f"{target.revision} ({target.release})" if target else "base (empty)"
        self.echo(
            f"Plan: {plan.direction} {len(plan.steps)} revision"
            f"{'s' * (len(plan.steps) != 1)} to {where}"
        )
        for step in plan.steps:
            r = step.revision
            loss = f"  LOSES DATA: {r.data_loss}" if step.loses_data else ""
            self.echo(f"  {step.direction:9} {r.revision}  {r.release:5} {r.description}{loss}")

    def waiting_for_lock(self) -> None:
        self.echo("Another migration is running; waiting for its lock...")

    def nothing_to_do(self, status) -> None:  # noqa: ANN001
        where = _rev(status.current, status.current_release)
        self.echo(f"Nothing to do: the database is already at {where}.")

    def backup_written(self, path: Path) -> None:
        self.echo(f"Backed up the SQLite database to {path}")

    def step_started(self, step) -> None:  # noqa: ANN001
        self.echo(f"{'Applying' if step.direction == 'upgrade' else 'Reverting'} "
                  f"{step.revision.revision} ({step.revision.release}) ...")

    def step_finished(self, step, seconds: float) -> None:  # noqa: ANN001
        verb = "Applied" if step.direction == "upgrade" else "Reverted"
        self.echo(f"{verb} {step.revision.revision} ({step.revision.release}) in {seconds:.3f}s")

    def retrying(self, step, tries: int, delay: float, blockers: str) -> None:  # noqa: ANN001
        self.echo(f"{step.revision.revision} ({step.revision.release}) could not take its "
                  f"locks (blocked by {blockers}); rolled back, trying again in {delay:g}s "
                  f"({tries} of the retries)")


    def gate_forced(self, revision, jobs: list) -> None:  # noqa: ANN001
        self.echo(f"Crossing the release gate at {revision.revision} ({revision.release}) "
                  f"with {len(jobs)} unfinished jobs, as --force says: "
                  + "; ".join(j.describe() for j in jobs[:5]))


def _confirm(yes: bool):  # noqa: ANN202
    def confirm(plan) -> bool:  # noqa: ANN001
        if yes:
            return True
        losing = len(plan.data_loss)
        if not sys.stdin.isatty():
            raise ConfirmationRequiredError(
                f"refusing to downgrade {len(plan.steps)} revisions ({losing} lose data) "
                "without a terminal to confirm; pass --yes to consent"
            )
        if not click.confirm(
            f"Downgrade {len(plan.steps)} revisions, {losing} of which lose data?", err=True
        ):
            raise AbortedError("downgrade cancelled; nothing was changed")
        return True

    return confirm


@database.command()
@click.option(
    "--revision", "-r", "target", default="head", show_default=True, type=NONEMPTY,
    help="A release tag (e.g. 1.7), a revision id or unique prefix, 'head' or 'base'.",
)
@yes_option
@click.option("--sql", is_flag=True, help="Print the SQL instead of running it (PostgreSQL).")
@click.option("--no-backup", is_flag=True, help="Do not back up SQLite before a downgrade.")
@click.option("--force", is_flag=True,
              help="Cross release gates whose required jobs are unfinished.")
@click.option(
    "--lock-timeout", type=SECONDS, default=300, show_default=True,
    help="Seconds to wait for another running migration to finish.",
)
@json_option
def migrate(target: str, yes: bool, sql: bool, no_backup: bool, force: bool,
            lock_timeout: float, as_json: bool) -> None:
    """Upgrade or downgrade the schema to a release, revision, head or base.

    Prints the plan (each revision, its release, whether its downgrade loses data) and
    a line per revision with its duration. A downgrade asks for confirmation and, on
    SQLite, backs up the database file first; without a terminal it needs --yes.
    An upgrade stops before a release gate whose jobs are unfinished (exit 16), naming
    them; `annota server upgrade` finishes them and moves on.

    \b
    Example:
      annota server database migrate                     # to head
      annota server database migrate --revision 1.7 --yes
      annota server database migrate --revision head --sql > upgrade.sql
    """
    from annota.server.schema import migrate as migrations
    from annota.server.schema.history import history

    config = settings()
    if sql:
        click.echo(migrations.migration_sql(config, target), nl=False)
        return
    printer = _Printer(err=as_json)
    printer.echo(f"Database: {config.database_url.masked}")
    result = migrations.migrate(
        config, target, confirm=_confirm(yes), backup=not no_backup,
        lock_timeout=lock_timeout, reporter=printer, force=force,
    )
    if as_json:
        echo_json(result.to_dict(history()))
    elif result.steps:
        total = sum(seconds for _, seconds in result.steps)
        state = migrations.status(config)
        printer.echo(
            f"Done in {total:.2f}s: the database is at "
            f"{_rev(state.current, state.current_release)}, {state.summary}."
        )


@database.command("fix-json-nul")
@yes_option
def fix_json_nul(yes: bool) -> None:
    """Remove the \\u0000 escapes that stop the 2.0 upgrade on PostgreSQL.

    Release 1.x kept documents as `json`, which accepts \\u0000; 2.0 moves them to
    `jsonb`, which does not. This lists the documents that hold it (records' fields and
    metadata, response values, suggestion values), asks, and removes it from them in one
    transaction. Nothing else changes.

    \b
    Example:
      annota server database fix-json-nul --yes && annota server database migrate
    """
    from annota.server import db
    from annota.server.schema import repairs
    from annota.server.schema.history import DOCUMENTS_REVISION
    from annota.server.schema.migrate import ensure_at_head

    config = settings()
    url = config.database_url
    ensure_at_head(config, at_least=DOCUMENTS_REVISION)
    if not db.dialect_for(url).refuses_nul_in_json:
        click.echo("Nothing to repair: this database keeps documents as they were written.")
        return
    database = db.open_database(url)
    try:
        with db.connect(database, url) as connection, connection.begin():
            found = repairs.find_nul_documents(connection)
            if not found:
                click.echo("No document holds \\u0000; nothing to repair.")
                return
            for document in found:
                click.echo(f"  {document}")
            question = f"Remove \\u0000 from these {len(found)} documents?"
            if not yes:
                if not sys.stdin.isatty():
                    raise ConfirmationRequiredError(
                        f"{len(found)} documents would change; pass --yes to consent")
                if not click.confirm(question, err=True):
                    raise AbortedError("nothing was changed")
            changed = repairs.strip_nul(connection)
    finally:
        database.dispose()
    click.echo(f"Removed \\u0000 from {changed} documents; run `annota server database "
               "migrate` now.")
