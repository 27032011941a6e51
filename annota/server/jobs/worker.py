"""``annota server worker``: RQ workers that run backfill jobs queued on Redis."""

from __future__ import annotations

import multiprocessing
import signal
import socket
import sys
import uuid

from annota.config import Settings
from annota.errors import ConfigurationError
from annota.server.jobs.runner import QUEUE_NAME, check_redis
from annota.server.schema.migrate import ensure_at_head


def _work(url: str, index: int, burst: bool) -> None:
    from redis import Redis
    from rq import Queue, Worker

    connection = Redis.from_url(url)
    # unique even where hosts share a name and pids (containers on the host's network)
    name = (f"annota-{socket.gethostname()}-{multiprocessing.current_process().pid}-{index}-"
            f"{uuid.uuid4().hex[:8]}")
    Worker([Queue(QUEUE_NAME, connection=connection)], connection=connection,
           name=name).work(burst=burst, with_scheduler=False)


def run_workers(settings: Settings, count: int = 1, *, burst: bool = False) -> None:
    """Run ``count`` workers until stopped (or, with ``burst``, until the queue is empty)."""
    url = settings.redis_url
    if not url:
        raise ConfigurationError(
            "annota server worker needs ANNOTA_REDIS_URL (e.g. redis://localhost:6379/0); "
            "without it, backfills run in-process"
        )
    check_redis(url)
    ensure_at_head(settings)
    if count == 1:
        _work(url, 0, burst)
        return
    workers = [multiprocessing.Process(target=_work, args=(url, i, burst), daemon=False)
               for i in range(count)]
    for w in workers:
        w.start()

    def stop(signum, _frame) -> None:  # noqa: ANN001
        for w in workers:
            if w.is_alive():
                w.terminate()
        sys.exit(128 + signum)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    for w in workers:
        w.join()
