"""What ``annota server upgrade`` would do, read before anything changes.

Four parts, in the order they run: the schema's revisions (stopping at release gates to
finish their jobs), the async migrations, the backfills per dataset (with the records
each has left), and the search indices to rebuild. The database is read as it is, at any
release: only tables that exist at its revision are queried.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa

from annota.config import Settings
from annota.errors import SearchEngineUnreachableError
from annota.server import db
from annota.server.jobs.backfills import BACKFILLS
from annota.server.schema import migrate as migrations
from annota.server.schema.history import JOBS_TABLES_REVISION, History, Plan, Revision, history
from annota.server.schema.migrate import release_of, step_dict

PARTS = ("schema", "async", "backfills", "search")
DATASETS_REVISION = "3129bc8d2219"  # creates datasets and records


@dataclass(frozen=True)
class BackfillWork:
    name: str
    dataset_id: str
    dataset: str
    status: str  # the job's status now, or "no job yet" (its run creates one)
    records: int  # left to process (an estimate: records now, less those processed)

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "dataset_id": self.dataset_id, "dataset": self.dataset,
                "status": self.status, "records": self.records}


@dataclass(frozen=True)
class IndexWork:
    dataset_id: str
    dataset: str
    records: int
    reasons: tuple[str, ...]  # empty: to be compared once the schema is at head

    def to_dict(self) -> dict[str, Any]:
        return {"dataset_id": self.dataset_id, "dataset": self.dataset,
                "records": self.records, "reasons": list(self.reasons)}


@dataclass
class UpgradePlan:
    database: str
    parts: tuple[str, ...]
    schema: Plan
    gates: list[Revision] = field(default_factory=list)
    async_migrations: list[tuple[str, str]] = field(default_factory=list)  # (name, when)
    backfills: list[BackfillWork] = field(default_factory=list)
    search: list[IndexWork] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    backup: str | None = None  # where the archive written before the schema step goes
    restore: str | None = None  # how to restore it
    estimates: dict[str, Any] = field(default_factory=dict)  # part -> estimate.Estimate
    sizes: dict[str, int] = field(default_factory=dict)  # piece -> the rows it is sized by

    @property
    def end(self) -> str | None:
        """The revision the schema part leaves the database at."""
        return self.schema.target if self.schema.steps else self.schema.current

    @property
    def downgrade(self) -> bool:
        return self.schema.direction == "downgrade"

    @property
    def empty(self) -> bool:
        return not (self.schema.steps or self.async_migrations or self.backfills
                    or self.search)

    def to_dict(self) -> dict[str, Any]:
        hist = history()
        return {
            "database": self.database,
            "parts": list(self.parts),
            "from": {"revision": self.schema.current,
                     "release": release_of(hist, self.schema.current)},
            "to": {"revision": self.end, "release": release_of(hist, self.end)},
            "direction": self.schema.direction,
            "revisions": [step_dict(s) for s in self.schema.steps],
            "gates": [{"revision": g.revision, "release": g.release,
                       "backfills": list(g.requires_backfills),
                       "async_migrations": list(g.requires_async_migrations)}
                      for g in self.gates],
            "async_migrations": [{"name": n, "when": w} for n, w in self.async_migrations],
            "backfills": [b.to_dict() for b in self.backfills],
            "search": [i.to_dict() for i in self.search],
            "notes": self.notes,
            "backup": self.backup,
            "restore": self.restore,
            "estimates": {part: e.to_dict() for part, e in self.estimates.items()},
        }


def parts_from(include: str | None, exclude: str | None) -> tuple[str, ...]:
    """``--include`` / ``--exclude`` (comma-separated part names) -> the parts, in order."""
    from annota.errors import ConfigurationError

    def names(text: str | None, default: tuple[str, ...]) -> set[str]:
        if text is None:
            return set(default)
        given = {n.strip() for n in text.split(",") if n.strip()}
        unknown = sorted(given - set(PARTS))
        if unknown or not given:
            raise ConfigurationError(
                f"unknown upgrade part {', '.join(unknown) or repr(text)}; the parts are "
                f"{', '.join(PARTS)}")
        return given

    chosen = names(include, PARTS) - names(exclude, ())
    if not chosen:
        raise ConfigurationError("--include and --exclude leave nothing to do")
    return tuple(p for p in PARTS if p in chosen)


def plan_upgrade(settings: Settings, to: str = "head", parts: tuple[str, ...] = PARTS
                 ) -> UpgradePlan:
    """The plan, from the database (and search engine) as they are; changes nothing."""
    hist = history()
    url = settings.database_url
    current = migrations.known_current(hist, url, db.read_state(url, with_pending=False))
    schema = hist.plan(current, hist.resolve(to))
    plan = UpgradePlan(url.masked, parts, schema)
    if "schema" not in parts:
        if schema.steps:
            plan.notes.append(f"the schema stays at {current or 'base'}: the schema part is "
                              "excluded")
        plan.schema = hist.plan(current, current)
    if plan.downgrade:
        plan.notes.append("a downgrade moves the schema only: the other parts need the "
                          "schema at head")
        return plan
    plan.gates = [s.revision for s in plan.schema.steps if s.revision.gated]
    survey = _Survey.read(settings, hist, current)
    applied = {s.revision.revision for s in plan.schema.steps}
    plan.async_migrations = [(name, status) for name, status in survey.async_rows]
    plan.async_migrations += [(name, f"runs with revision {s.revision.revision}")
                              for s in plan.schema.steps for name in s.revision.async_migrations]
    for backfill in BACKFILLS.values():
        if hist.position(backfill.since) > hist.position(plan.end):
            continue  # not part of the release the schema goes to
        registered = backfill.since not in applied
        jobs = survey.jobs.get(backfill.name, {}) if registered else {}
        for dataset_id, (name, records) in survey.datasets.items():
            status, processed = jobs.get(dataset_id, ("no job yet", 0))
            if status != "COMPLETED":
                plan.backfills.append(BackfillWork(backfill.name, dataset_id, name, status,
                                                   max(0, records - processed)))
    if "search" in parts:
        _plan_search(settings, plan, hist, survey, at_head=current == hist.head.revision)
    return plan


@dataclass
class _Survey:
    datasets: dict[str, tuple[str, int]] = field(default_factory=dict)  # id -> (name, records)
    jobs: dict[str, dict[str, tuple[str, int]]] = field(default_factory=dict)
    async_rows: list[tuple[str, str]] = field(default_factory=list)  # unfinished (name, status)

    @classmethod
    def read(cls, settings: Settings, hist: History, current: str | None) -> _Survey:
        survey = cls()
        here = hist.position(current)
        if here < hist.position(DATASETS_REVISION):
            return survey
        database = db.read_only(db.open_database(settings.database_url))
        try:
            with database.connect() as connection:
                rows = connection.execute(sa.text(
                    "SELECT d.id, d.name, (SELECT count(*) FROM records r WHERE "
                    "r.dataset_id = d.id) FROM datasets d ORDER BY d.inserted_at, d.id"))
                survey.datasets = {_uuid(r[0]): (r[1], r[2]) for r in rows}
                if here >= hist.position(JOBS_TABLES_REVISION):
                    for name, dataset_id, status, processed in connection.execute(sa.text(
                            "SELECT name, dataset_id, status, processed FROM backfill_jobs")):
                        survey.jobs.setdefault(name, {})[_uuid(dataset_id)] = (status,
                                                                               processed)
                    survey.async_rows = [(r[0], r[1]) for r in connection.execute(sa.text(
                        "SELECT name, status FROM async_migrations WHERE status != 'FINISHED' "
                        "ORDER BY scheduled_at, name"))]
        finally:
            database.dispose()
        return survey


def _uuid(value: Any) -> str:
    return str(value if isinstance(value, uuid.UUID) else uuid.UUID(str(value)))


def _plan_search(settings: Settings, plan: UpgradePlan, hist: History, survey: _Survey,
                 *, at_head: bool) -> None:
    from annota.search import connect
    from annota.search.engine import alias_name
    from annota.search.mapping import MAPPING_VERSION

    if plan.end != hist.head.revision:
        plan.notes.append("search: skipped, a reindex needs the schema at head")
        return
    try:
        engine = connect(settings.search)
    except SearchEngineUnreachableError as exc:
        raise SearchEngineUnreachableError(
            f"{exc}; fix ANNOTA_ELASTICSEARCH, or pass --exclude search to upgrade "
            "without it") from None
    if at_head:
        from annota.search import maintenance

        state = maintenance.status(settings, engine)
        plan.search = [IndexWork(d.dataset_id, d.name, d.records, tuple(d.reasons))
                       for d in state.datasets if d.needs_reindex]
        return
    for dataset_id, (name, records) in survey.datasets.items():
        indices = engine.alias_indices(alias_name(engine.prefix, dataset_id))
        reasons: tuple[str, ...] = ()
        if not indices:
            reasons = ("no index",)
        else:
            meta = engine.mapping_meta(indices[0]).get(indices[0], {}).get("annota", {})
            if meta.get("mapping_version") != MAPPING_VERSION:
                reasons = (f"mapping version {meta.get('mapping_version')} (this annota "
                           f"writes {MAPPING_VERSION})",)
        plan.search.append(IndexWork(dataset_id, name, records, reasons))
    if any(not w.reasons for w in plan.search):
        plan.notes.append("search: indices without a reason yet are compared with their "
                          "dataset (counts, settings) once the schema is at head")
