"""Backfill jobs: one row per backfill x dataset, a strict state machine, atomic claims.

    PENDING -> QUEUED -> RUNNING -> COMPLETED
                  ^         |----> FAILED   -> QUEUED (retry, resumes from the cursor)
                  |         |----> CANCELED -> QUEUED (run again, resumes)
                  +---------------- COMPLETED (only with --force, from scratch)

Each batch is one short transaction that writes the recomputed data, the cursor, the
counters and the heartbeat together, and only if the job is still this worker's RUNNING
job: a cancel takes effect between batches, and a worker that lost its claim stops. A
RUNNING job whose heartbeat is older than the stale limit may be claimed again (its
worker died); it resumes from the cursor.
"""

from __future__ import annotations

import os
import socket
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import sqlalchemy as sa

from annota.config import DEFAULT_STALE_SECONDS
from annota.errors import NotFoundError
from annota.server.db import dialect_of
from annota.server.domain import models as m
from annota.server.domain.datasets import dataset_row
from annota.server.jobs.backfills import BACKFILLS
from annota.server.jobs.batching import BatchSizer

JOBS, DATASETS = m.BackfillJob.__table__, m.Dataset.__table__
PENDING, QUEUED, RUNNING, COMPLETED, FAILED, CANCELED = (
    "PENDING", "QUEUED", "RUNNING", "COMPLETED", "FAILED", "CANCELED")
STATUSES = (PENDING, QUEUED, RUNNING, COMPLETED, FAILED, CANCELED)
TRANSITIONS = {
    PENDING: {QUEUED, CANCELED},
    QUEUED: {RUNNING, CANCELED},
    RUNNING: {COMPLETED, FAILED, CANCELED},
    FAILED: {QUEUED, CANCELED},
    CANCELED: {QUEUED},
    COMPLETED: {QUEUED},
}
UNFINISHED = (PENDING, QUEUED, RUNNING)


def _here() -> str:
    """This host, and its process-id namespace where there is one: containers that share
    a host name (host networking) each have their own pids."""
    try:
        return f"{socket.gethostname()}@{os.stat('/proc/self/ns/pid').st_ino}"
    except OSError:
        return socket.gethostname()


def worker_name() -> str:
    return f"{_here()}:{os.getpid()}"


def _gone(worker: str | None) -> bool:
    """True when ``worker`` names a process of this host (and pid namespace) that no
    longer exists (killed, even with SIGKILL, so it never saw its job end): its job need
    not wait for the stale limit. Other workers are judged by their heartbeat alone."""
    host, _, pid = (worker or "").rpartition(":")
    if host != _here() or not pid.isdigit() or int(pid) == os.getpid():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # alive, another user's
        return False
    return False


def stale_before(stale_seconds: float) -> Any:
    """Heartbeats older than this mean the job's worker died."""
    return m.utcnow() - timedelta(seconds=stale_seconds)


def backfill(name: str):  # noqa: ANN201
    if name not in BACKFILLS:
        raise NotFoundError(f"no backfill named {name!r}; known: {', '.join(BACKFILLS)}")
    return BACKFILLS[name]


def transition(connection: sa.Connection, where: Any, to: str, **values: Any) -> int:
    """Move the jobs matching ``where`` to ``to`` from any status that may legally go
    there; returns how many moved."""
    sources = [s for s, targets in TRANSITIONS.items() if to in targets]
    return connection.execute(
        sa.update(JOBS).where(where, JOBS.c.status.in_(sources))
        .values(status=to, updated_at=m.utcnow(), **values)
    ).rowcount


def ensure_jobs(connection: sa.Connection, name: str) -> None:
    """A PENDING job for every dataset that has none (datasets created after the
    migration that registered the backfill)."""
    version = backfill(name).version
    have = sa.select(JOBS.c.dataset_id).where(JOBS.c.name == name)
    missing = connection.execute(
        sa.select(DATASETS.c.id).where(DATASETS.c.id.not_in(have))).scalars().all()
    now = m.utcnow()
    if missing:
        connection.execute(sa.insert(JOBS), [
            {"id": uuid.uuid4(), "name": name, "version": version, "dataset_id": d,
             "status": PENDING, "processed": 0, "attempts": 0, "inserted_at": now,
             "updated_at": now} for d in missing])


@dataclass
class QueueResult:
    queued: list[uuid.UUID] = field(default_factory=list)
    skipped: int = 0  # already completed
    remaining: int = 0  # still to do, beyond --limit

    def to_dict(self) -> dict[str, Any]:
        return {"queued": len(self.queued), "skipped": self.skipped,
                "remaining": self.remaining, "job_ids": [str(j) for j in self.queued]}


def queue_jobs(connection: sa.Connection, name: str, *, dataset_id: str | None = None,
               limit: int | None = None, force: bool = False,
               stale_seconds: float = DEFAULT_STALE_SECONDS) -> QueueResult:
    """Queue the jobs of backfill ``name``: one dataset, the first ``limit`` unprocessed
    datasets, or (neither) all. Completed jobs are skipped unless ``force``; FAILED and
    CANCELED ones resume from their cursor; RUNNING ones whose heartbeat is older than
    ``stale_seconds`` are handed out again."""
    b = backfill(name)
    ensure_jobs(connection, name)
    query = (sa.select(JOBS.c.id, JOBS.c.status, JOBS.c.dataset_id, JOBS.c.heartbeat_at,
                       JOBS.c.worker)
             .join(DATASETS, DATASETS.c.id == JOBS.c.dataset_id)
             .where(JOBS.c.name == name).order_by(DATASETS.c.inserted_at, DATASETS.c.id))
    if dataset_id is not None:
        query = query.where(JOBS.c.dataset_id == dataset_row(connection, dataset_id).id)
    jobs = connection.execute(query).all()
    if _fail_dead(connection, jobs):  # then queued below like any failure: resumes its cursor
        jobs = connection.execute(query).all()
    result = QueueResult()
    todo = []
    for job in jobs:
        if job.status == COMPLETED and not force:
            result.skipped += 1
        elif job.status in (PENDING, FAILED, CANCELED, COMPLETED):
            todo.append(job)
        elif job.status == QUEUED or (job.status == RUNNING and job.heartbeat_at is not None
                                      and job.heartbeat_at < stale_before(stale_seconds)):
            # queued already, or its worker died: hand it out again (claims are atomic)
            result.queued.append(job.id)
    if limit is not None:
        room = max(0, limit - len(result.queued))
        result.remaining = max(0, len(todo) - room)
        todo = todo[:room]
    for job in todo:
        fresh = {"cursor": None, "processed": 0} if job.status == COMPLETED else {}
        total = b.total(connection, job.dataset_id)
        if transition(connection, JOBS.c.id == job.id, QUEUED, queued_at=m.utcnow(),
                      total=total, last_error=None, finished_at=None, **fresh):
            result.queued.append(job.id)
    return result


def _fail_dead(connection: sa.Connection, jobs: list[Any]) -> list[uuid.UUID]:
    """Mark FAILED the RUNNING ``jobs`` whose worker is a process of this host that no
    longer exists; returns how many."""
    dead = [job for job in jobs if job.status == RUNNING and _gone(job.worker)]
    for job in dead:
        transition(connection, sa.and_(JOBS.c.id == job.id, JOBS.c.worker == job.worker),
                   FAILED, last_error=f"its worker {job.worker} is gone (killed)",
                   finished_at=m.utcnow())
    return [job.id for job in dead]


def unattended(connection: sa.Connection, name: str, *, dataset_id: str | None = None,
               stale_seconds: float = DEFAULT_STALE_SECONDS) -> list[uuid.UUID]:
    """The jobs of backfill ``name`` that no live worker is running: QUEUED ones nobody
    claimed yet, and RUNNING ones whose worker died (gone from this host: re-queued at once;
    elsewhere: once its heartbeat is ``stale_seconds`` old). Whoever claims one first
    (``claim``, atomic) runs it; the others wait for it."""
    query = sa.select(JOBS.c.id, JOBS.c.status, JOBS.c.worker, JOBS.c.heartbeat_at).where(
        JOBS.c.name == name, JOBS.c.status.in_((QUEUED, RUNNING)))
    if dataset_id is not None:
        query = query.where(JOBS.c.dataset_id == dataset_row(connection, dataset_id).id)
    jobs = connection.execute(query).all()
    dead = _fail_dead(connection, jobs)
    if dead:
        transition(connection, JOBS.c.id.in_(dead), QUEUED, queued_at=m.utcnow(),
                   finished_at=None)
    stale = stale_before(stale_seconds)
    return [job.id for job in jobs if job.status == QUEUED or job.id in dead or (
        job.heartbeat_at is not None and job.heartbeat_at < stale)]


def claim(connection: sa.Connection, job_id: uuid.UUID, worker: str,
          stale_seconds: float = DEFAULT_STALE_SECONDS) -> bool:
    """Atomically make ``job_id`` this worker's RUNNING job: from QUEUED, or from a RUNNING
    job whose heartbeat went stale. One conditional UPDATE: two claimers cannot both win."""
    stale = stale_before(stale_seconds)
    now = m.utcnow()
    return bool(connection.execute(
        sa.update(JOBS)
        .where(JOBS.c.id == job_id, sa.or_(
            JOBS.c.status == QUEUED,
            sa.and_(JOBS.c.status == RUNNING, JOBS.c.heartbeat_at < stale)))
        .values(status=RUNNING, worker=worker, heartbeat_at=now, updated_at=now,
                started_at=sa.func.coalesce(JOBS.c.started_at, now),
                attempts=JOBS.c.attempts + 1)
    ).rowcount)


def claim_next(connection: sa.Connection, worker: str, name: str | None = None,
               stale_seconds: float = DEFAULT_STALE_SECONDS) -> uuid.UUID | None:
    """The next claimable job, skipping rows another worker is claiming right now
    (``FOR UPDATE SKIP LOCKED`` on PostgreSQL; SQLite serialises writers anyway)."""
    stale = stale_before(stale_seconds)
    query = (sa.select(JOBS.c.id).where(sa.or_(
        JOBS.c.status == QUEUED, sa.and_(JOBS.c.status == RUNNING, JOBS.c.heartbeat_at < stale)))
        .order_by(JOBS.c.queued_at).limit(1).with_for_update(skip_locked=True))
    if name:
        query = query.where(JOBS.c.name == name)
    job_id = connection.execute(query).scalar_one_or_none()
    return (job_id if job_id is not None and claim(connection, job_id, worker, stale_seconds)
            else None)


def run_job(db: sa.Engine, job_id: uuid.UUID, *, worker: str | None = None,
            batch_size: int = 1000, claimed: bool = False,
            stale_seconds: float = DEFAULT_STALE_SECONDS,
            batch_seconds: float | None = 0.1,
            on_batch: Callable[[int, float], None] | None = None) -> str:
    """Claim (unless ``claimed``) and run one job to its end; returns its final status.
    Batches start at ``batch_size`` records and adapt toward ``batch_seconds`` per
    transaction (``None``: a fixed size). ``on_batch(records, seconds)`` hears of each
    committed batch transaction."""
    worker = worker or worker_name()
    sizer = BatchSizer(batch_size, batch_seconds) if batch_seconds else None
    if not claimed:
        with db.begin() as connection:
            if not claim(connection, job_id, worker, stale_seconds):
                return connection.execute(
                    sa.select(JOBS.c.status).where(JOBS.c.id == job_id)).scalar_one()
    mine = sa.and_(JOBS.c.id == job_id, JOBS.c.status == RUNNING, JOBS.c.worker == worker)
    pause = dialect_of(db).batch_pause  # lets waiting writers (a cancel, the app) in
    try:
        while True:
            if pause:
                time.sleep(pause)
            try:
                started = time.perf_counter()
                cursor, n = _run_batch(db, job_id, worker, mine, batch_size)
                seconds = time.perf_counter() - started
                if on_batch and cursor is not _GONE:
                    on_batch(n, seconds)
                if sizer and cursor is not _GONE:
                    batch_size = sizer.measured(n, seconds)
            except _NotMine:  # canceled meanwhile: that batch was rolled back with it
                continue
            if cursor is _GONE:
                with db.connect() as connection:
                    return connection.execute(
                        sa.select(JOBS.c.status).where(JOBS.c.id == job_id)).scalar_one()
            if cursor is None:
                return COMPLETED
    except Exception as exc:
        with db.begin() as connection:
            connection.execute(sa.update(JOBS).where(mine).values(
                status=FAILED, last_error=f"{type(exc).__name__}: {exc}"[:2000],
                finished_at=m.utcnow(), updated_at=m.utcnow()))
        return FAILED


class _NotMine(Exception):
    pass


_GONE = object()


def _run_batch(db: sa.Engine, job_id: uuid.UUID, worker: str, mine: Any,
               batch_size: int) -> Any:
    """One batch in one transaction; returns (the new cursor, None when done, or _GONE when
    the job is no longer this worker's; records processed)."""
    with db.begin() as connection:
        job = connection.execute(sa.select(JOBS).where(JOBS.c.id == job_id)).one()
        if job.status != RUNNING or job.worker != worker:
            return _GONE, 0
        b = backfill(job.name)
        cursor, n = b.run_batch(connection, job.dataset_id, job.cursor, batch_size)
        now = m.utcnow()
        values = {"processed": JOBS.c.processed + n}
        if cursor is None:
            b.finish(connection, job.dataset_id)
            values.update(status=COMPLETED, finished_at=now)
        else:
            values["cursor"] = cursor
        saved = connection.execute(sa.update(JOBS).where(mine).values(
            heartbeat_at=now, updated_at=now, **values)).rowcount
        if not saved:
            raise _NotMine()
    return cursor, n


def cancel(connection: sa.Connection, name: str | None = None,
           dataset_id: str | None = None) -> int:
    where = JOBS.c.status.in_(UNFINISHED)
    if name is not None:  # an empty name is no wildcard: it names no backfill
        backfill(name)
        where = sa.and_(where, JOBS.c.name == name)
    if dataset_id is not None:
        where = sa.and_(where, JOBS.c.dataset_id == dataset_row(connection, dataset_id).id)
    return transition(connection, where, CANCELED, finished_at=m.utcnow())


def jobs(connection: sa.Connection, *, name: str | None = None, status: str | None = None,
         dataset_id: str | None = None) -> list[dict[str, Any]]:
    query = (sa.select(JOBS, DATASETS.c.name.label("dataset_name"))
             .join(DATASETS, DATASETS.c.id == JOBS.c.dataset_id)
             .order_by(JOBS.c.name, DATASETS.c.inserted_at, DATASETS.c.id))
    if name is not None:
        backfill(name)
        query = query.where(JOBS.c.name == name)
    if status is not None:
        query = query.where(JOBS.c.status == status.upper())
    if dataset_id is not None:
        query = query.where(JOBS.c.dataset_id == dataset_row(connection, dataset_id).id)
    return [dict(row._mapping) for row in connection.execute(query)]


def completed_everywhere(connection: sa.Connection) -> set[str]:
    """The datasets (ids as text) whose every backfill has COMPLETED at its current
    version: their derived data is current (writes keep it so from then on)."""
    if not sa.inspect(connection).has_table(JOBS.name):
        return set()
    done: dict[str, int] = {}
    for name in BACKFILLS:
        rows = connection.execute(sa.select(JOBS.c.dataset_id).where(
            JOBS.c.name == name, JOBS.c.status == COMPLETED,
            JOBS.c.version == backfill(name).version)).scalars().all()
        for dataset in rows:
            done[str(dataset)] = done.get(str(dataset), 0) + 1
    return {d for d, n in done.items() if n == len(BACKFILLS)}


def mark_completed(connection: sa.Connection, dataset_ids: list[str]) -> None:
    """Record every backfill as COMPLETED on these datasets, whose derived data is known
    current (an import of a consistent snapshot): nothing is left for them to run."""
    if not dataset_ids:
        return
    ids = [uuid.UUID(d) for d in dataset_ids]
    records = (sa.select(sa.func.count()).select_from(m.Record.__table__)
               .where(m.Record.__table__.c.dataset_id == JOBS.c.dataset_id)
               .scalar_subquery())
    now = m.utcnow()
    for name in BACKFILLS:
        ensure_jobs(connection, name)
        connection.execute(sa.update(JOBS).where(JOBS.c.name == name,
                                                 JOBS.c.dataset_id.in_(ids)).values(
            status=COMPLETED, version=backfill(name).version, cursor=None,
            processed=records, total=records, last_error=None, finished_at=now,
            updated_at=now))
