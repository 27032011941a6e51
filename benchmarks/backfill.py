"""The record-status backfill against a single hand-written SQL UPDATE, on PostgreSQL.

    python benchmarks/backfill.py [--records 1000000] [--batch-size 1000] [--batch-seconds 0.1]

Seeds N records (0-3 responses each) in one dataset of a fresh PostgreSQL database
(ANNOTA_BENCH_POSTGRES_URL, else the test services' server), then in one run measures:

  (a) the limit: one UPDATE computing every record's status, with a writer updating
      random records of the dataset meanwhile (how long is it blocked?);
  (b) annota's backfill of the same records (batches, each a transaction), with the same
      writer running: batches adapting to --batch-seconds per transaction (the default),
      then, for comparison, fixed at --batch-size.

Prints rows/s of each, (b)/(a) (target >= 0.50), the backfill's transaction times (median,
95th percentile, longest: adaptive batches aim at --batch-seconds, target < 1 s: no row
lock held longer) and the longest a concurrent write waited (target < 1 s).
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import threading
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import sqlalchemy as sa  # noqa: E402

from annota.config import Settings  # noqa: E402
from annota.server.db import open_database  # noqa: E402
from annota.server.domain.record_status import status_update  # noqa: E402
from annota.server.jobs import backfill_jobs as jobs  # noqa: E402
from annota.server.schema import migrate as migrations  # noqa: E402


def admin_sql(server_url: str, sql: str) -> None:
    admin = sa.create_engine(Settings.from_env({"ANNOTA_DATABASE_URL": server_url})
                             .database_url.sqlalchemy_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.exec_driver_sql(sql)
    admin.dispose()


def fresh_database(server_url: str, name: str) -> str:
    from urllib.parse import urlsplit, urlunsplit

    admin_sql(server_url, f'CREATE DATABASE "{name}"')
    return urlunsplit(urlsplit(server_url)._replace(path=f"/{name}"))


def seed(engine: sa.Engine, n: int) -> uuid.UUID:
    with engine.begin() as c:
        run = c.exec_driver_sql
        run("INSERT INTO users (id, first_name, username, role, api_key, password_hash, "
            "inserted_at, updated_at) SELECT gen_random_uuid(), 'u', 'u' || i, 'annotator', "
            "'k' || i, '-', now(), now() FROM generate_series(1, 3) i")
        run("INSERT INTO workspaces (id, name, inserted_at, updated_at) "
            "VALUES (gen_random_uuid(), 'bench', now(), now())")
        dataset = c.execute(sa.text(
            "INSERT INTO datasets (id, name, status, workspace_id, distribution, "
            "allow_extra_metadata, last_activity_at, inserted_at, updated_at) SELECT "
            "gen_random_uuid(), 'bench', 'ready', id, "
            "'{\"strategy\": \"overlap\", \"min_submitted\": 2}', true, now(), now(), now() "
            "FROM workspaces RETURNING id")).scalar_one()
        run("INSERT INTO records (id, fields, dataset_id, status, inserted_at, updated_at) "
            f"SELECT gen_random_uuid(), '{{\"text\": \"t\"}}', '{dataset}', 'pending', now(), "
            f"now() FROM generate_series(1, {n})")
        run("INSERT INTO responses (id, \"values\", status, record_id, user_id, inserted_at, "
            "updated_at) SELECT gen_random_uuid(), '{\"label\": {\"value\": \"a\"}}', "
            "CASE WHEN random() < 0.8 THEN 'submitted' ELSE 'draft' END, r.id, u.id, now(), "
            "now() FROM records r JOIN LATERAL (SELECT id FROM users ORDER BY id "
            "LIMIT (abs(hashtext(r.id::text)) %% 4)) u ON true")
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as c:
        c.exec_driver_sql("VACUUM ANALYZE")
    return dataset


class Writer(threading.Thread):
    """Updates random records of the dataset, one short transaction each, timing them."""

    def __init__(self, engine: sa.Engine, ids: list) -> None:
        super().__init__(daemon=True)
        self.engine, self.ids = engine, ids
        self.stop = threading.Event()
        self.latencies: list[float] = []

    def run(self) -> None:
        rng = random.Random(1)
        while not self.stop.is_set():
            started = time.perf_counter()
            with self.engine.begin() as c:
                c.execute(sa.text("UPDATE records SET updated_at = now() WHERE id = :i"),
                          {"i": rng.choice(self.ids)})
            self.latencies.append(time.perf_counter() - started)
            time.sleep(0.01)


def with_writer(engine: sa.Engine, ids: list, work) -> tuple[float, float]:  # noqa: ANN001
    writer = Writer(engine, ids)
    writer.start()
    time.sleep(0.2)
    started = time.perf_counter()
    work()
    seconds = time.perf_counter() - started
    writer.stop.set()
    writer.join()
    return seconds, max(writer.latencies)


def counts(engine: sa.Engine, dataset: uuid.UUID) -> dict[str, int]:
    with engine.connect() as c:
        return dict(c.execute(sa.text("SELECT status, COUNT(*) FROM records WHERE dataset_id = :d "
                                      "GROUP BY status"), {"d": dataset}).all())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--batch-size", type=int, default=1000,
                        help="the first batch's size (adaptive), or every batch's (fixed)")
    parser.add_argument("--batch-seconds", type=float, default=0.1,
                        help="the transaction time adaptive batches aim at")
    args = parser.parse_args()
    server = (os.environ.get("ANNOTA_BENCH_POSTGRES_URL") or os.environ.get(
        "ANNOTA_TEST_POSTGRES_URL")
        or "postgresql://annota:annota-test-secret@127.0.0.1:54329/postgres")
    name = f"annota_bench_{uuid.uuid4().hex[:8]}"
    url = fresh_database(server, name)
    try:
        run(url, args)
    finally:
        admin_sql(server, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def run(url: str, args: argparse.Namespace) -> None:
    settings = Settings.from_env({"ANNOTA_DATABASE_URL": url, "ANNOTA_HOME": "/tmp"})
    migrations.migrate(settings)
    engine = open_database(settings.database_url)
    started = time.perf_counter()
    dataset = seed(engine, args.records)
    print(f"seeded {args.records} records in {time.perf_counter() - started:.0f}s "
          f"({settings.database_url.masked})")
    with engine.connect() as c:
        ids = c.execute(sa.text("SELECT id FROM records TABLESAMPLE SYSTEM (1) LIMIT 5000")
                        ).scalars().all()

    def raw() -> None:
        with engine.begin() as c:
            c.execute(status_update(dataset, 2))

    raw_seconds, raw_wait = with_writer(engine, ids, raw)
    expected = counts(engine, dataset)
    raw_rate = args.records / raw_seconds
    print(f"raw UPDATE: {raw_rate:,.0f} rows/s ({raw_seconds:.1f}s); a concurrent write waited "
          f"up to {raw_wait:.2f}s")
    for label, batch_seconds in (("adaptive", args.batch_seconds), ("fixed", None)):
        with engine.begin() as c:
            c.exec_driver_sql("UPDATE records SET status = 'pending'")
            c.exec_driver_sql("DELETE FROM backfill_jobs")
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as c:
            c.exec_driver_sql("VACUUM ANALYZE records")
        with engine.begin() as c:
            (job_id,) = jobs.queue_jobs(c, "record-status", dataset_id=str(dataset)).queued
        batches: list[tuple[int, float]] = []

        def ours(job_id=job_id, batch_seconds=batch_seconds, batches=batches) -> None:  # noqa: ANN001
            status = jobs.run_job(engine, job_id, batch_size=args.batch_size,
                                  batch_seconds=batch_seconds,
                                  on_batch=lambda records, took: batches.append((records, took)))
            assert status == "COMPLETED", status

        our_seconds, our_wait = with_writer(engine, ids, ours)
        assert counts(engine, dataset) == expected, (counts(engine, dataset), expected)
        our_rate = args.records / our_seconds
        times = sorted(s for _, s in batches)
        sizes = sorted(n for n, _ in batches[:-1]) or [0]
        aim = f"aiming at {batch_seconds}s" if batch_seconds else f"{args.batch_size} each"
        print(f"backfill, {label} batches ({aim}): {our_rate:,.0f} rows/s ({our_seconds:.1f}s, "
              f"{len(batches)} transactions, median size {sizes[len(sizes) // 2]}); "
              f"backfill/raw = {our_rate / raw_rate:.2f} (target >= 0.50)")
        print(f"  transaction times: median {times[len(times) // 2]:.3f}s, 95th percentile "
              f"{times[int(len(times) * 0.95)]:.3f}s, longest {times[-1]:.3f}s (target < 1s); "
              f"a concurrent write waited up to {our_wait:.3f}s (target < 1s)")
    print(f"same result: {expected}")
    engine.dispose()


if __name__ == "__main__":
    main()
