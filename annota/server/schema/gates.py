"""Release gates: a contract revision names the jobs that must be finished before the
schema moves past it (``requires_backfills``, ``requires_async_migrations``).

GitLab's required stops, per revision: ``migrate`` applies everything before a gated
revision, then looks at the jobs on the same connection, under the migration lock. A
backfill's job counts as finished only COMPLETED (a dataset created after the backfill
was registered has no job: its writers keep the derived data current); an async
migration, only FINISHED (or absent: it did not apply to this database).
"""

from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa

from annota.server.schema import async_migrations
from annota.server.schema.history import Revision

# Core views, as async_migrations.TABLE: revisions and light commands use this module
JOBS = sa.table("backfill_jobs", sa.column("name", sa.String), sa.column("status", sa.String),
                sa.column("dataset_id", sa.Uuid))
DATASETS = sa.table("datasets", sa.column("id", sa.Uuid), sa.column("name", sa.String))
UPGRADE = "annota server upgrade"


@dataclass(frozen=True)
class Unfinished:
    kind: str  # "backfill" | "async migration"
    name: str
    status: str
    dataset: str | None = None  # the dataset's name, for a backfill job

    def describe(self) -> str:
        where = f" on dataset {self.dataset}" if self.dataset else ""
        return f"{self.kind} {self.name}{where} ({self.status})"

    @property
    def command(self) -> str:
        if self.kind == "backfill":
            return f"annota server database backfills run {self.name} --all"
        return f"annota server database async-migrations run {self.name}"


def unfinished(connection: sa.Connection, revision: Revision) -> list[Unfinished]:
    """The jobs ``revision``'s gate waits for that are not finished, as they stand now."""
    found: list[Unfinished] = []
    if revision.requires_backfills:
        rows = connection.execute(
            sa.select(JOBS.c.name, JOBS.c.status, DATASETS.c.name.label("dataset"))
            .join(DATASETS, DATASETS.c.id == JOBS.c.dataset_id)
            .where(JOBS.c.name.in_(revision.requires_backfills), JOBS.c.status != "COMPLETED")
            .order_by(JOBS.c.name, DATASETS.c.name))
        found += [Unfinished("backfill", r.name, r.status, r.dataset) for r in rows]
    if revision.requires_async_migrations:
        table = async_migrations.TABLE
        rows = connection.execute(
            sa.select(table.c.name, table.c.status)
            .where(table.c.name.in_(revision.requires_async_migrations),
                   table.c.status != async_migrations.FINISHED).order_by(table.c.name))
        found += [Unfinished("async migration", r.name, r.status) for r in rows]
    return found


def refusal(revision: Revision, jobs: list[Unfinished], where: str) -> str:
    """One line: which gate, which jobs (the first few), how to finish them."""
    shown = "; ".join(j.describe() for j in jobs[:5])
    more = f"; and {len(jobs) - 5} more" if len(jobs) > 5 else ""
    commands = " and ".join(dict.fromkeys(j.command for j in jobs))
    return (f"revision {revision.revision} (release {revision.release}) is a release gate: "
            f"{len(jobs)} job{'s' * (len(jobs) != 1)} it requires "
            f"{'are' if len(jobs) != 1 else 'is'} unfinished: {shown}{more}; {where}; run "
            f"`{UPGRADE}` (it finishes them and moves on), or `{commands}` and migrate "
            "again; --force crosses the gate anyway")
