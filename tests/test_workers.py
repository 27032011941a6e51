"""Backfills on real RQ worker processes over a real Redis."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time

import pytest
import sqlalchemy as sa

from annota.server.domain import models as m
from tests.backfill_tools import expected_statuses, legacy_database, statuses
from tests.conftest import Annota

JOBS = m.BackfillJob.__table__


def start_worker(env: dict[str, str], workers: int = 1) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "annota", "server", "worker", "--workers", str(workers)],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        start_new_session=True,  # its own process group: kill -9 takes the work horses too
    )


def descendants(pid: int) -> list[int]:
    """``pid`` and every process below it (RQ's work horses leave its process group)."""
    children: dict[int, list[int]] = {}
    for stat in os.listdir("/proc"):
        if stat.isdigit():
            try:
                with open(f"/proc/{stat}/stat") as f:
                    parent = int(f.read().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(parent, []).append(int(stat))
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        todo.extend(children.get(current, []))
    return found


def stop(process: subprocess.Popen, sig: int = signal.SIGTERM) -> None:
    """SIGTERM: a warm shutdown. SIGKILL: the whole tree dies at once, as in a crash."""
    if process.poll() is None:
        for pid in descendants(process.pid) if sig == signal.SIGKILL else [process.pid]:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)
    process.wait(timeout=60)


def job_rows(db: sa.Engine, name: str = "record-status") -> list:
    with db.connect() as connection:
        return connection.execute(sa.select(JOBS).where(JOBS.c.name == name)).all()


def wait_for(predicate, timeout: float = 120, what: str = "condition"):  # noqa: ANN001, ANN201
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture
def rq_env(settings, redis_url, env) -> dict[str, str]:
    # batches aimed at a microsecond stay at their floor: kills land mid-job
    return {**env, "ANNOTA_REDIS_URL": redis_url,
            "ANNOTA_BACKFILL_STALE_SECONDS": "2", "ANNOTA_BACKFILL_BATCH_SECONDS": "0.000001"}


def test_a_worker_killed_mid_job_is_resumed_with_identical_results(settings, db, rq_env):
    ids = legacy_database(settings, db, extra_records=3000)
    dataset = ids["overlap-1"]
    annota = Annota(rq_env)
    worker = start_worker(rq_env)
    try:
        queued = annota.run("server", "database", "backfills", "run", "record-status",
                            "--dataset-id", str(dataset), "--batch-size", "20", "--no-wait")
        assert queued.returncode == 0, queued.stderr
        assert "(rq)" in queued.stdout
        wait_for(lambda: [j for j in job_rows(db) if j.dataset_id == dataset
                          and j.status == "RUNNING" and j.processed >= 200],
                 what="the job to be half done")
    finally:
        stop(worker, signal.SIGKILL)
    (killed,) = [j for j in job_rows(db) if j.dataset_id == dataset]
    assert killed.status == "RUNNING" and killed.processed < killed.total

    time.sleep(2.5)  # its heartbeat goes stale
    worker = start_worker(rq_env)
    try:
        again = annota.run("server", "database", "backfills", "run", "record-status",
                           "--dataset-id", str(dataset), "--batch-size", "500", timeout=300)
        assert again.returncode == 0, again.stderr
    finally:
        stop(worker)
    (done,) = [j for j in job_rows(db) if j.dataset_id == dataset]
    assert (done.status, done.attempts, done.processed) == ("COMPLETED", 2, done.total)
    assert statuses(db, dataset) == expected_statuses(db, dataset, 1)


def test_two_workers_never_process_the_same_job(postgres_url, tmp_path, redis_url):
    from annota.config import Settings
    from annota.server.db import open_database
    from tests.conftest import make_env

    env = {**make_env(tmp_path, postgres_url), "ANNOTA_REDIS_URL": redis_url}
    settings = Settings.from_env(env)
    db = open_database(settings.database_url)
    try:
        legacy_database(settings, db, extra_records=500)
        annota = Annota(env)
        worker = start_worker(env, workers=2)
        try:
            for _ in range(3):  # every job handed out three times over
                for name in ("record-status", "agreement"):
                    result = annota.run("server", "database", "backfills", "run", name,
                                        "--all", "--batch-size", "50", "--no-wait")
                    assert result.returncode == 0, result.stderr
            wait_for(lambda: annota.run("server", "database", "backfills",
                                        "status").returncode == 0,
                     what="every job to complete")
        finally:
            stop(worker)
        rows = job_rows(db) + job_rows(db, "agreement")
        assert len(rows) == 4
        assert all((r.status, r.attempts, r.processed) == ("COMPLETED", 1, r.total)
                   for r in rows), rows
    finally:
        db.dispose()


def test_worker_needs_redis(settings, env):
    result = Annota(env).run("server", "worker")
    assert result.returncode == 2 and "ANNOTA_REDIS_URL" in result.stderr
    unreachable = Annota({**env, "ANNOTA_REDIS_URL": "redis://:pw-s3cret@127.0.0.1:1/0"})
    result = unreachable.run("server", "worker")
    assert result.returncode == 5 and "cannot reach Redis" in result.stderr
    assert "pw-s3cret" not in result.stderr
