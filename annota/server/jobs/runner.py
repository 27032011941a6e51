"""Running backfill jobs: in-process (a small thread pool) by default, on RQ workers over
Redis when ANNOTA_REDIS_URL is set."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from annota.config import Settings
from annota.errors import RedisUnreachableError
from annota.server.db import dialect_for, open_database
from annota.server.jobs.backfill_jobs import (
    COMPLETED,
    QUEUED,
    RUNNING,
    UNFINISHED,
    QueueResult,
    backfill,
    jobs,
    queue_jobs,
    run_job,
    unattended,
)
from annota.server.schema.migrate import ensure_at_head
from annota.urls import mask_url, scrub, url_password

QUEUE_NAME = "annota-backfills"


def threads(settings: Settings) -> int:
    return dialect_for(settings.database_url).backfill_threads(settings.backfill_threads)


@dataclass
class RunResult:
    mode: str  # inline | rq
    queue: QueueResult
    final: dict[str, str] = field(default_factory=dict)  # job id -> status, when waited for

    @property
    def ok(self) -> bool:
        return all(status == COMPLETED for status in self.final.values())

    def to_dict(self) -> dict[str, Any]:
        return {"mode": self.mode, **self.queue.to_dict(), "final": self.final}


def run(settings: Settings, name: str, *, dataset_id: str | None = None,
        limit: int | None = None, force: bool = False, batch_size: int = 1000,
        wait: bool = True, on_progress: Callable[[list[dict]], None] | None = None,
        poll: float = 1.0, inline: bool = False, others: bool = False,
        on_others: Callable[[int], None] | None = None) -> RunResult:
    """Queue the jobs (see ``queue_jobs``), then run them here or hand them to RQ. Runs on
    a schema at head, or at the backfill's own revision or later (a release gate may need
    it before the schema can move on).

    With ``others`` (inline), it then also waits for the jobs that other workers run (a
    replica upgrading at the same time), taking over any whose worker dies, until every
    job has ended; ``on_others(count)`` hears once that it waits for them."""
    ensure_at_head(settings, at_least=backfill(name).since)
    rq = bool(settings.redis_url) and not inline
    if rq:  # before any job is marked QUEUED: an unreachable Redis changes nothing
        check_redis(settings.redis_url)
    db = open_database(settings.database_url)
    try:
        with db.begin() as connection:
            queued = queue_jobs(connection, name, dataset_id=dataset_id, limit=limit,
                                force=force, stale_seconds=settings.backfill_stale_seconds)
        result = RunResult("rq" if rq else "inline", queued)
        if queued.queued:
            pool = start(settings, db, queued.queued, batch_size, rq=rq)
            if pool is None and not wait:
                return result
            try:
                result.final = _wait(db, queued.queued, on_progress, poll)
            finally:
                if pool:
                    pool.shutdown(wait=True)
        if others and not rq:
            result.final.update(_finish_others(settings, db, name, dataset_id, batch_size,
                                               on_progress, on_others, poll))
        return result
    finally:
        db.dispose()


def start(settings: Settings, db, job_ids: list[uuid.UUID],  # noqa: ANN001
          batch_size: int, *, rq: bool | None = None) -> ThreadPoolExecutor | None:
    """Hand queued jobs to RQ (returns None; the default when ANNOTA_REDIS_URL is set), or
    start them on a thread pool here."""
    if settings.redis_url if rq is None else rq:
        enqueue(settings.redis_url, job_ids, batch_size)
        return None
    pool = ThreadPoolExecutor(max_workers=threads(settings), thread_name_prefix="annota-backfill")
    for job_id in job_ids:
        pool.submit(run_job, db, job_id, batch_size=batch_size,
                    stale_seconds=settings.backfill_stale_seconds,
                    batch_seconds=settings.backfill_batch_seconds)
    return pool


def _wait(db, job_ids, on_progress, poll: float) -> dict[str, str]:  # noqa: ANN001
    wanted = {str(j) for j in job_ids}
    while True:
        with db.connect() as connection:
            rows = [r for r in jobs(connection) if str(r["id"]) in wanted]
        if on_progress:
            on_progress(rows)
        if not any(r["status"] in UNFINISHED for r in rows):
            return {str(r["id"]): r["status"] for r in rows}
        time.sleep(poll)


def dispatch(settings: Settings, db, queue: Callable[[Any], QueueResult],  # noqa: ANN001
             batch_size: int) -> QueueResult:
    """Queue jobs (``queue(connection)``, in one transaction) and hand them out as
    ``start`` does; Redis, when configured, is checked before any job is marked QUEUED."""
    if settings.redis_url:
        check_redis(settings.redis_url)
    with db.begin() as connection:
        queued = queue(connection)
    if queued.queued:
        start(settings, db, queued.queued, batch_size)
    return queued


def check_redis(url: str) -> None:
    """``RedisUnreachableError`` (one line, the password masked) unless Redis answers."""
    from redis import Redis
    from redis.exceptions import RedisError

    try:
        Redis.from_url(url, socket_connect_timeout=5).ping()
    except (RedisError, ValueError) as exc:
        reason = scrub(str(exc), [url_password(url) or ""])
        raise RedisUnreachableError(f"cannot reach Redis at {mask_url(url)}: {reason}") from None


def _finish_others(settings: Settings, db, name: str, dataset_id: str | None,  # noqa: ANN001
                   batch_size: int, on_progress, on_others, poll: float) -> dict[str, str]:
    """Wait until no job of backfill ``name`` is QUEUED or RUNNING; run here, one at a
    time, any that no live worker holds. Returns every job's final status."""
    told = False
    while True:
        with db.begin() as connection:
            free = unattended(connection, name, dataset_id=dataset_id,
                              stale_seconds=settings.backfill_stale_seconds)
        for job_id in free:  # the claim is atomic: another waiter may win it instead
            run_job(db, job_id, batch_size=batch_size,
                    stale_seconds=settings.backfill_stale_seconds,
                    batch_seconds=settings.backfill_batch_seconds)
        with db.connect() as connection:
            rows = jobs(connection, name=name, dataset_id=dataset_id)
        busy = [r for r in rows if r["status"] in (QUEUED, RUNNING)]
        if not busy:
            return {str(r["id"]): r["status"] for r in rows}
        if not told and on_others:
            on_others(len(busy))
            told = True
        if on_progress:
            on_progress(rows)
        if not free:
            time.sleep(poll)


def enqueue(url: str, job_ids: list[uuid.UUID], batch_size: int) -> None:
    from redis import Redis
    from rq import Queue

    queue = Queue(QUEUE_NAME, connection=Redis.from_url(url))
    for job_id in job_ids:
        queue.enqueue("annota.server.jobs.runner.rq_job", str(job_id), batch_size,
                      job_timeout=-1, result_ttl=3600, failure_ttl=86400)


def rq_job(job_id: str, batch_size: int) -> str:
    """What an RQ worker runs: one backfill job, with the worker's own settings (read here:
    this is the edge of a job process, like a command)."""
    settings = Settings.from_env()
    db = open_database(settings.database_url)
    try:
        return run_job(db, uuid.UUID(job_id), batch_size=batch_size,
                       stale_seconds=settings.backfill_stale_seconds,
                       batch_seconds=settings.backfill_batch_seconds)
    finally:
        db.dispose()
