"""The schema lifecycle API: where the database is, and moving it to a release.

The command line, tests, the HTTP app and the docker entrypoint all call these functions.
Reading the state (``status``) needs neither Alembic nor, on SQLite, SQLAlchemy.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn

from annota import __version__
from annota.config import Settings
from annota.errors import (
    AnnotaError,
    ConcurrentChangeError,
    ConfirmationRequiredError,
    ForeignDatabaseError,
    MigrationError,
    ReleaseGateError,
    RevisionLockTimeoutError,
    SchemaAheadError,
    SchemaNotReadyError,
)
from annota.server import db
from annota.server.schema.history import History, Plan, Step, history
from annota.urls import DatabaseURL

ALEMBIC_DIR = Path(__file__).resolve().parents[2] / "alembic"

UP_TO_DATE, BEHIND, AHEAD, EMPTY, FOREIGN = "up_to_date", "behind", "ahead", "empty", "foreign"
MIGRATE = "annota server database migrate"


@dataclass(frozen=True)
class DatabaseStatus:
    app_version: str
    database: str  # masked URL
    backend: str
    current: str | None
    current_release: str | None
    head: str
    head_release: str
    state: str  # up_to_date | behind | ahead | empty
    behind_by: int
    # unfinished operational work: {"async_migrations": {status: n}, "backfills": {...}}
    pending: dict[str, dict[str, int]] = field(default_factory=dict)
    foreign_tables: tuple[str, ...] = ()  # another application's, when state is foreign

    @property
    def pending_lines(self) -> list[str]:
        hints = {"async_migrations": "annota server database async-migrations run",
                 "backfills": "annota server database backfills status"}
        return [
            f"{kind.replace('_', ' ')}: "
            + ", ".join(f"{n} {status}" for status, n in sorted(counts.items()))
            + f" (see `{hints[kind]}`)"
            for kind, counts in self.pending.items() if counts
        ]

    @property
    def summary(self) -> str:
        return {
            UP_TO_DATE: "up to date",
            BEHIND: f"behind ({self.behind_by} revision{'s' * (self.behind_by != 1)})",
            AHEAD: "ahead of this code (unknown revision)",
            EMPTY: f"empty (no schema; {self.behind_by} revisions to apply)",
            FOREIGN: f"not annota's ({len(self.foreign_tables)} tables of another "
                     "application, no alembic_version)",
        }[self.state]

    def to_dict(self) -> dict[str, Any]:
        return {
            "app_version": self.app_version,
            "database": self.database,
            "backend": self.backend,
            "current": {"revision": self.current, "release": self.current_release},
            "head": {"revision": self.head, "release": self.head_release},
            "state": self.state,
            "behind_by": self.behind_by,
            "pending": self.pending,
            "foreign_tables": list(self.foreign_tables),
        }


def release_of(hist: History, revision: str | None) -> str | None:
    return hist.get(revision).release if revision in hist else None


def status_of(url: DatabaseURL, found: db.DatabaseState,
              hist: History | None = None) -> DatabaseStatus:
    hist = hist or history()
    current = found.revision
    if current is None and found.foreign_tables:
        state, behind = FOREIGN, len(hist.revisions)
    elif current is None:
        state, behind = EMPTY, len(hist.revisions)
    elif current not in hist:
        state, behind = AHEAD, 0
    else:
        behind = len(hist.revisions) - hist.position(current)
        state = UP_TO_DATE if behind == 0 else BEHIND
    return DatabaseStatus(
        app_version=__version__,
        database=url.masked,
        backend=url.backend,
        current=current,
        current_release=release_of(hist, current),
        head=hist.head.revision,
        head_release=hist.head.release,
        state=state,
        behind_by=behind,
        pending=found.pending,
        foreign_tables=found.foreign_tables,
    )


def status(settings: Settings) -> DatabaseStatus:
    """Where the database is relative to this code's head."""
    url = settings.database_url
    return status_of(url, db.read_state(url))


def ensure_at_head(settings: Settings, *, at_least: str | None = None) -> DatabaseStatus:
    """The status, if the schema is at this code's head (or, with ``at_least``, at that
    revision or later); else one clear error saying what to run. Reads without changing
    anything (nor creating a missing SQLite file)."""
    state = status(settings)
    hist = history()
    if (at_least is not None and state.state == BEHIND
            and hist.position(state.current) >= hist.position(at_least)):
        return state
    where = f"the database at {state.database}"
    if state.state == AHEAD:
        raise SchemaAheadError(
            f"{where} is at revision {state.current}, which annota {__version__} does not "
            "know (written by a newer annota?); upgrade annota")
    if state.state == FOREIGN:
        raise _foreign(state)
    if state.state == EMPTY:
        raise SchemaNotReadyError(f"{where} has no annota schema yet; run `{MIGRATE}`")
    if state.state == BEHIND:
        raise SchemaNotReadyError(
            f"{where} is {state.summary} at {state.current} (release "
            f"{state.current_release}); this annota needs {state.head} (release "
            f"{state.head_release}); run `{MIGRATE}`")
    return state


def integrity(settings: Settings, *, at_head: bool) -> tuple[list, list[str]]:
    """(applied revisions whose file changed since, as ``checksums.Changed``; how the live
    schema differs from the models, one line each). The schema is compared only
    ``at_head`` (the models describe head) and with an unchanged history. Read-only: one
    connection, nothing created."""
    from annota.server.schema import checksums  # SQLAlchemy: not for the light commands

    database = db.read_only(db.open_database(settings.database_url))
    try:
        with database.connect() as connection:
            changed = checksums.changed(connection)
            drift = _drift(connection) if at_head and not changed else []
    finally:
        database.dispose()
    return changed, drift


def _drift(connection) -> list[str]:  # noqa: ANN001
    import sqlalchemy as sa
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    from annota.server.domain.models import Base
    from annota.server.schema import async_migrations

    context = MigrationContext.configure(connection, opts={"compare_type": True})
    diffs = compare_metadata(context, Base.metadata)
    table = async_migrations.TABLE
    pending = set(connection.execute(sa.select(table.c.index_name).where(
        table.c.status != async_migrations.FINISHED,
        table.c.index_name.is_not(None))).scalars())
    # an index an async migration has yet to build is known work (see `current`), not drift
    return [_drift_line(diff) for diff in _flatten(diffs)  # Alembic skips its own table
            if not (diff[0] == "add_index" and diff[1].name in pending)]


def _flatten(diffs: list) -> list:
    return [d for diff in diffs for d in (diff if isinstance(diff, list) else [diff])]


def _drift_line(diff: tuple) -> str:
    """``add_column``-style tuples from Alembic, as one line. "add" means the models have
    it and the database lacks it; "remove", the other way."""
    kind = diff[0]
    if kind in ("add_table", "remove_table"):
        where = "missing from the database" if kind == "add_table" else "not in the models"
        return f"table {diff[1].name}: {where}"
    if kind in ("add_column", "remove_column"):
        where = "missing from the database" if kind == "add_column" else "not in the models"
        return f"column {diff[2]}.{diff[3].name}: {where}"
    if kind in ("add_index", "remove_index", "add_constraint", "remove_constraint"):
        thing = diff[1]
        where = "missing from the database" if kind.startswith("add") else "not in the models"
        table = getattr(getattr(thing, "table", None), "name", "?")
        return f"{kind.split('_')[1]} {thing.name} on {table}: {where}"
    if kind.startswith("modify_"):
        return (f"column {diff[2]}.{diff[3]}: {kind[7:]} differs ({diff[5]!r} in the "
                f"database, {diff[6]!r} in the models)")
    return f"{kind}: {diff[1:]}"


def _foreign(state: DatabaseStatus) -> ForeignDatabaseError:
    shown = ", ".join(state.foreign_tables[:5]) + (", ..." if len(state.foreign_tables) > 5
                                                   else "")
    return ForeignDatabaseError(
        f"the database at {state.database} holds another application's tables ({shown}) "
        "and no alembic_version; annota will not create its tables there: point "
        "ANNOTA_DATABASE_URL at an empty database or at annota's own")


class MigrationReporter:
    """What ``migrate`` tells as it goes; the CLI prints it, tests record it."""

    def plan(self, plan: Plan, history: History) -> None: ...
    def waiting_for_lock(self) -> None: ...
    def nothing_to_do(self, status: DatabaseStatus) -> None: ...
    def backup_written(self, path: Path) -> None: ...
    def step_started(self, step: Step) -> None: ...
    def step_finished(self, step: Step, seconds: float) -> None: ...
    def retrying(self, step: Step, tries: int, delay: float, blockers: str) -> None: ...
    def gate_forced(self, revision: Any, jobs: list) -> None: ...


@dataclass
class MigrationResult:
    before: str | None
    after: str | None
    direction: str
    steps: list[tuple[Step, float]] = field(default_factory=list)
    backup: Path | None = None

    def to_dict(self, hist: History) -> dict[str, Any]:
        return {
            "from": {"revision": self.before, "release": release_of(hist, self.before)},
            "to": {"revision": self.after, "release": release_of(hist, self.after)},
            "direction": self.direction,
            "backup": str(self.backup) if self.backup else None,
            "steps": [step_dict(step) | {"seconds": round(s, 4)} for step, s in self.steps],
        }


def step_dict(step: Step) -> dict[str, Any]:
    return {
        "revision": step.revision.revision,
        "release": step.revision.release,
        "direction": step.direction,
        "description": step.revision.description,
        "data_loss": step.revision.data_loss if step.direction == "downgrade" else None,
    }


def known_current(hist: History, url: DatabaseURL, found: db.DatabaseState) -> str | None:
    """The current revision, if this code knows it and the database is annota's."""
    if found.revision is None and found.foreign_tables:
        raise _foreign(status_of(url, found, hist))
    current = found.revision
    if current is not None and current not in hist:
        raise SchemaAheadError(
            f"the database at {url.masked} is at revision {current}, which annota "
            f"{__version__} does not know (written by a newer annota?); upgrade annota "
            "before migrating"
        )
    return current


def plan_migration(settings: Settings, target: str = "head") -> Plan:
    hist = history()
    target_rev = hist.resolve(target)
    url = settings.database_url
    return hist.plan(known_current(hist, url, db.read_state(url, with_pending=False)), target_rev)


def migrate(
    settings: Settings,
    target: str = "head",
    *,
    confirm=None,  # noqa: ANN001 - Callable[[Plan], bool]; None means "never consent"
    backup: bool = True,
    lock_timeout: float = 300.0,
    reporter: MigrationReporter | None = None,
    force: bool = False,
) -> MigrationResult:
    """Move the schema to ``target`` (a release tag, revision, ``head`` or ``base``).

    Safe to re-run and to run concurrently: the migration lock serialises runs, and the
    plan is re-read under the lock, so a second run that waited finds nothing to do.
    A downgrade needs ``confirm(plan)`` to return True; on SQLite it backs up the file first.
    An upgrade stops before a release gate whose jobs are unfinished
    (``ReleaseGateError``, the database at the revision before it), unless ``force``.
    """
    reporter = reporter or MigrationReporter()
    hist = history()
    url = settings.database_url
    target_rev = hist.resolve(target)
    plan = hist.plan(known_current(hist, url, db.read_state(url, with_pending=False)), target_rev)
    dialect = db.dialect_for(url)
    dialect.prepare(url)  # a directory that cannot be made fails before any plan is shown
    if plan.steps:
        reporter.plan(plan, hist)
    if plan.direction == "downgrade" and not (confirm and confirm(plan)):
        raise ConfirmationRequiredError(
            "refusing to downgrade without consent; pass --yes to confirm"
        )
    database = db.open_database(url, foreign_keys=False)
    try:
        with db.connect(database, url) as connection, dialect.migration_lock(
            url, connection, timeout=lock_timeout, on_wait=reporter.waiting_for_lock
        ):
            current = known_current(hist, url, db.state_on(connection, with_pending=False))
            connection.commit()
            if current != plan.current:
                confirmed, plan = plan, hist.plan(current, target_rev)
                if plan.direction == "downgrade" and plan != confirmed:
                    raise ConcurrentChangeError(
                        "the schema changed while waiting for the migration lock "
                        f"(now at {current}); run the command again"
                    )
                if plan.steps:
                    reporter.plan(plan, hist)
            if not plan.steps:
                reporter.nothing_to_do(status_of(url, db.DatabaseState(current), hist))
                return MigrationResult(current, current, "none")
            result = MigrationResult(current, target_rev, plan.direction)
            if plan.direction == "downgrade" and backup:
                result.backup = dialect.backup(url, current)
                if result.backup:
                    reporter.backup_written(result.backup)
            with dialect.ddl_guard(database, connection,
                                   lock_timeout=settings.migration_lock_timeout,
                                   statement_timeout=settings.migration_statement_timeout
                                   ) as blockers:
                for part in _parts(plan):
                    gate = part.steps[0].revision
                    if part.direction == "upgrade" and gate.gated:
                        _pass_gate(connection, gate, result, force, reporter)
                    _run_alembic(connection, settings, part, result, reporter, blockers)
            return result
    finally:
        database.dispose()


def _parts(plan: Plan) -> list[Plan]:
    """The plan cut before each gated revision of an upgrade: each part runs once the
    gate at its start is passed."""
    parts: list[list[Step]] = []
    for step in plan.steps:
        if not parts or (step.direction == "upgrade" and step.revision.gated):
            parts.append([])
        parts[-1].append(step)
    out, current = [], plan.current
    for steps in parts:
        last = steps[-1].revision
        target = last.revision if steps[0].direction == "upgrade" else last.down_revision
        out.append(Plan(current, target, tuple(steps)))
        current = target
    return out


def _pass_gate(connection, gate, result: MigrationResult, force: bool,  # noqa: ANN001
               reporter) -> None:  # noqa: ANN001
    from annota.server.schema import gates

    jobs = gates.unfinished(connection, gate)
    connection.commit()
    if not jobs:
        return
    if force:
        reporter.gate_forced(gate, jobs)
        return
    where = f"the database stays at {gate.down_revision}"
    raise ReleaseGateError(gates.refusal(gate, jobs, where), revision=gate, result=result,
                           jobs=jobs)


def _run_alembic(
    connection, settings: Settings, plan: Plan, result: MigrationResult, reporter,  # noqa: ANN001
    blockers,  # noqa: ANN001 - db.locks.Blockers
) -> None:
    """Run the plan's revisions, each in its own transaction. A revision whose DDL gives up
    on a lock (PostgreSQL's lock_timeout: it never queues for long in front of everyone) is
    rolled back and tried again with backoff, ``migration_retries`` times, then fails
    naming the session that blocked it."""
    from alembic import command

    steps = list(plan.steps)
    before = len(result.steps)  # the steps of the plan's earlier parts

    def step_now() -> Step:
        return steps[len(result.steps) - before]

    clock = [time.perf_counter()]

    from annota.server.schema import checksums

    recorder = checksums.Recorder()

    def on_version_apply(ctx: Any, **_: Any) -> None:
        # called inside each revision's transaction, right after it ran
        step = step_now()
        if step.direction == "upgrade":
            recorder.applied(ctx.connection, step.revision)
        else:
            recorder.reverted(ctx.connection, step.revision)
        now = time.perf_counter()
        seconds, clock[0] = now - clock[0], now
        result.steps.append((step, seconds))
        reporter.step_finished(step, seconds)
        if len(result.steps) - before < len(steps):
            reporter.step_started(step_now())

    config = _alembic_config()
    config.attributes["connection"] = connection
    config.attributes["on_version_apply"] = [on_version_apply]
    # this migration's settings decide, not whatever the process environment says
    config.attributes["allow_scheduled_migrations"] = settings.allow_scheduled_migrations
    reporter.step_started(steps[0])
    dialect = db.dialect_of(connection)
    tries, progress = 0, 0
    while True:
        try:
            if plan.direction == "upgrade":
                command.upgrade(config, plan.target)
            else:
                command.downgrade(config, plan.target or "base")
            return
        except AnnotaError:
            raise
        except Exception as exc:
            if not dialect.is_lock_timeout(exc):
                _failed(settings, plan, result, step_now(), exc)
            connection.rollback()
            tries = 1 if len(result.steps) > progress else tries + 1
            progress = len(result.steps)
            if tries > settings.migration_retries:
                _failed(settings, plan, result, step_now(), exc, blockers)
            delay = min(30.0, 0.5 * 2 ** (tries - 1))
            reporter.retrying(step_now(), tries, delay, blockers.described())
            time.sleep(delay)
            clock[0] = time.perf_counter()
            reporter.step_started(step_now())


def _failed(settings: Settings, plan: Plan, result: MigrationResult, failed: Step,
            exc: Exception, blockers=None) -> NoReturn:  # noqa: ANN001
    """Raise the error of the step that failed, saying where the database stays."""
    done = plan.current
    if result.steps:
        last = result.steps[-1][0]
        upgraded = last.direction == "upgrade"
        done = last.revision.revision if upgraded else last.revision.down_revision
    where = f"the database stays at {done or 'base'}"
    if blockers is not None:
        raise RevisionLockTimeoutError(
            f"{failed.direction} of revision {failed.revision.revision} "
            f"({failed.revision.release}) could not take its locks within "
            f"{settings.migration_lock_timeout:g}s, {settings.migration_retries + 1} times; "
            f"blocked by {blockers.described()}; {where}") from exc
    reason = settings.database_url.scrub(db.first_line(exc))
    raise MigrationError(f"{failed.direction} of revision {failed.revision.revision} "
                         f"({failed.revision.release}) failed: {reason}; {where}") from exc


def _alembic_config():  # noqa: ANN202 - alembic.config.Config, imported lazily
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(ALEMBIC_DIR))
    return config


def migration_sql(settings: Settings, target: str = "head") -> str:
    """The SQL that ``migrate`` would run, without running it (PostgreSQL only)."""
    url = settings.database_url
    db.dialect_for(url).check_offline_sql()
    plan = plan_migration(settings, target)
    if not plan.steps:
        return f"-- nothing to do: the database is already at {plan.current or 'base'}\n"
    import io

    from alembic import command

    buffer = io.StringIO()
    config = _alembic_config()
    config.output_buffer = buffer
    config.attributes["url"] = url.sqlalchemy_url
    start = f"{plan.current}:" if plan.current else ""
    if plan.direction == "upgrade":
        command.upgrade(config, f"{start}{plan.target}", sql=True)
    else:
        command.downgrade(config, f"{start}{plan.target or 'base'}", sql=True)
    return buffer.getvalue()

