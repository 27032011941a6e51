"""How long each part of an upgrade will take, from this deployment's own figures.

Every piece of work has a key (a revision, an async migration, a backfill, a reindex on
an engine kind, the backup; per database backend) and a size in rows (the records and
responses a revision or a backup reads, the records a backfill or a reindex has left).
Its estimate is, in order of preference:

- **recorded**: the seconds per row this deployment's earlier runs took for that key
  (``$ANNOTA_HOME/upgrade-rates.json``, written after each piece), times its rows now;
- **sampled**: a short sample of this database (the time to read a page of records, and
  to create and drop a temporary table) times a factor per piece, measured for this code
  by ``benchmarks/upgrade_estimate.py``. What a piece costs relative to reading its rows
  is a property of annota's code; how fast rows are read is the deployment's.

A part's estimate is the sum of its pieces; the schema part includes the jobs its release
gates run.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from annota.config import Settings
from annota.server import db

RATES_FILE = "upgrade-rates.json"
PROBE_ROWS = 1000
MIN_ROWS = 1000  # a piece over fewer rows records no rate
# seconds per row = the sampled read time of one record times these (PostgreSQL, then
# SQLite, whose ALTERs copy tables whole); from benchmarks/upgrade_estimate.py
REVISIONS = {
    "postgresql": {"95afe52a5067": 0.86, "2dc006381611": 0.45, "33283b8970a0": 0.02,
                   "0901a4f98754": 0.045, "2700b3e7aa16": 0.04, "5d1e0c7a9b34": 0.063,
                   "e0c0a096f5b3": 0.038, "c0178eeb3592": 0.02, "6d4a2c8e9f15": 0.018,
                   "e4be47f32097": 0.016},
    "sqlite": {},
}
DDL = 5.0  # a revision that moves no rows: this many temporary tables made and dropped
JOBS = {"backfill:record-status": 4.3, "backfill:agreement": 16.0,
        "async:records_dataset_id_id_index": 0.13,
        "async:responses_record_id_status_index": 0.05,
        "reindex:sqlite": 8.5, "reindex:elasticsearch": 11.0, "reindex:opensearch": 11.0,
        "backup": 0.65}


@dataclass
class Estimate:
    seconds: float
    basis: str  # recorded | sampled | mixed

    def add(self, seconds: float, basis: str) -> None:
        self.seconds += seconds
        if self.basis != basis:
            self.basis = "mixed" if self.basis not in ("", basis) else basis

    def to_dict(self) -> dict[str, Any]:
        return {"seconds": round(self.seconds, 2), "basis": self.basis}


class Rates:
    """The seconds per row recorded per key, in ``$ANNOTA_HOME``; replaced whole and
    atomically on each write (two writers: the last one's figures are kept)."""

    def __init__(self, settings: Settings) -> None:
        self.path = settings.home / RATES_FILE
        self.backend = settings.database_url.backend

    def read(self) -> dict[str, dict[str, float]]:
        try:
            data = json.loads(self.path.read_text())
        except (OSError, ValueError):
            return {}
        return data if isinstance(data, dict) else {}

    def per_row(self, key: str, known: dict[str, Any] | None = None) -> float | None:
        """The recorded seconds per row of ``key``, from ``known`` (what ``read()`` gave)
        or the file as it is now."""
        entry = (self.read() if known is None else known).get(f"{self.backend}:{key}")
        try:
            return float(entry["seconds"]) / max(float(entry["rows"]), 1.0)
        except (TypeError, KeyError, ValueError):
            return None

    def record(self, key: str, rows: int, seconds: float) -> None:
        """Note ``key``'s time over ``rows`` rows; fewer than ``MIN_ROWS`` say nothing of
        a rate (a fixed cost dominates them), so they are not noted."""
        if rows < MIN_ROWS:
            return
        data = self.read()
        data[f"{self.backend}:{key}"] = {"seconds": round(seconds, 4), "rows": int(rows),
                                         "at": time.strftime("%Y-%m-%dT%H:%M:%SZ",
                                                             time.gmtime())}
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd, temporary = tempfile.mkstemp(dir=self.path.parent, prefix=".rates-")
            with os.fdopen(fd, "w") as out:
                json.dump(data, out, indent=1, sort_keys=True)
            os.replace(temporary, self.path)
        except OSError:
            pass  # an estimate is a convenience: a home we cannot write loses only it


@dataclass
class Sample:
    """This database's speed, sampled once per plan."""

    read_row: float  # seconds to read one record
    ddl: float  # seconds to create and drop a temporary table

    @classmethod
    def take(cls, connection: sa.Connection | None) -> Sample:
        """Sampled on ``connection``; a database with no record to read (or none at all:
        None) gets these defaults."""
        if connection is None:
            return cls(20e-6, 0.005)

        def read() -> float:
            rows = connection.execute(sa.text(
                f"SELECT * FROM records ORDER BY id LIMIT {PROBE_ROWS}")).all()
            return 1.0 / len(rows)  # scaled by the caller: seconds per row

        def ddl() -> float:
            connection.execute(sa.text("CREATE TEMPORARY TABLE annota_probe (x INTEGER)"))
            connection.execute(sa.text("DROP TABLE annota_probe"))
            return 1.0

        sample = cls(_least(read), _least(ddl))
        connection.rollback()
        return sample


def _least(run: Any, times: int = 3) -> float:
    """The least of ``times`` timings of ``run()`` (times the factor it returns): the
    sample is short, so noise is not."""
    best = None
    for _ in range(times):
        started = time.perf_counter()
        factor = run()
        seconds = (time.perf_counter() - started) * factor
        best = seconds if best is None else min(best, seconds)
    return best or 0.0


class Estimator:
    """Estimates of pieces of work on one deployment; the database sampled (on
    ``connection``) only when a piece has no recorded rate."""

    def __init__(self, settings: Settings, connection: sa.Connection | None = None) -> None:
        self.rates = Rates(settings)
        self.recorded = self.rates.read()  # once per plan, not once per piece
        self.backend = settings.database_url.backend
        self.connection = connection
        self._sample: Sample | None = None

    @property
    def sample(self) -> Sample:
        if self._sample is None:
            self._sample = Sample.take(self.connection)
        return self._sample

    def piece(self, key: str, rows: int) -> tuple[float, str]:
        """(seconds, basis) of the piece ``key`` over ``rows`` rows."""
        recorded = self.rates.per_row(key, self.recorded)
        if recorded is not None:
            return recorded * rows, "recorded"
        if key.startswith("revision:"):
            factor = REVISIONS.get(self.backend, {}).get(key.split(":", 1)[1], 0.0)
            return DDL * self.sample.ddl + factor * rows * self.sample.read_row, "sampled"
        return JOBS.get(key, 1.0) * rows * self.sample.read_row, "sampled"


def revision_key(step: Any) -> str:
    """The piece of a schema step: its revision, and the direction when down."""
    return f"revision:{step.revision.revision}" + (
        "" if step.direction == "upgrade" else ":down")


def table_rows(connection: sa.Connection) -> dict[str, int]:
    """Rows of the tables the estimates are sized by (those that exist)."""
    inspector = sa.inspect(connection)
    return {name: connection.execute(sa.text(f"SELECT count(*) FROM {name}")).scalar_one()
            for name in ("records", "responses") if inspector.has_table(name)}


def estimate_plan(settings: Settings, plan: Any, backing_up: bool) -> dict[str, Estimate]:
    """Each part's estimate (and the backup's), and the rows each piece is sized by
    (``plan.sizes``, which the run records its rates against)."""
    if plan.schema.current is None:  # an empty (or new) database: nothing to count
        return _estimates(settings, plan, backing_up, {}, None)
    url = settings.database_url
    database = db.read_only(db.open_database(url))
    try:
        with db.connect(database, url) as connection:
            rows = table_rows(connection)
            return _estimates(settings, plan, backing_up, rows,
                              connection if rows.get("records") else None)
    finally:
        database.dispose()


def _estimates(settings: Settings, plan: Any, backing_up: bool, rows: dict[str, int],
               connection: sa.Connection | None) -> dict[str, Estimate]:
    total = sum(rows.values())
    estimator = Estimator(settings, connection)
    out: dict[str, Estimate] = {}

    def add(part: str, key: str, size: int) -> None:
        seconds, basis = estimator.piece(key, size)
        out.setdefault(part, Estimate(0.0, "")).add(seconds, basis)
        plan.sizes[key] = size

    left: dict[str, int] = {}
    for work in plan.backfills:
        left[work.name] = left.get(work.name, 0) + work.records
    gated_jobs: set[str] = set()
    if backing_up:
        add("backup", "backup", total)
    for step in plan.schema.steps:
        add("schema", revision_key(step), total)
        for name in step.revision.async_migrations:  # run with it, timed with it
            gated_jobs.add(f"async:{name}")
    for gate in plan.gates:
        for name in gate.requires_async_migrations:
            if f"async:{name}" not in gated_jobs:
                add("schema", f"async:{name}", total)
                gated_jobs.add(f"async:{name}")
        for name in gate.requires_backfills:
            add("schema", f"backfill:{name}", left.get(name, 0))
            gated_jobs.add(f"backfill:{name}")
    for name, _ in plan.async_migrations:
        if f"async:{name}" not in gated_jobs:
            add("async", f"async:{name}", total)
    for name, size in left.items():
        if f"backfill:{name}" not in gated_jobs:
            add("backfills", f"backfill:{name}", size)
    if plan.search:
        add("search", f"reindex:{settings.search.engine}", sum(w.records for w in plan.search))
    return out
