"""annota's reindex against the engine's own limit, in one run on one engine.

    python benchmarks/reindex.py [--records 100000] [--senders 1,2,4] [--memory-check]
                                 [--pinned]
    python benchmarks/reindex.py --pause 100000,1000000 [--pause-runs 5] [--senders 2]

Seeds N records (responses, a suggestion, metadata and a vector each) into a fresh
SQLite database (or ANNOTA_DATABASE_URL), then measures in separate processes:

  (a) annota's reindex of that dataset (database -> documents -> bulk -> identity check ->
      alias swap), with each number of parallel senders;
  (b) a raw bulk load of the same documents, already built in memory, into an index with
      the same mapping, settings, batch size and client, from as many threads: the
      engine's limit here.

Prints records/s of each, annota/raw with one sender, and annota's best against the best
raw figure (target >= 0.90). With --memory-check it also seeds 4N records and compares
annota's peak RSS at N and 4N, with the best number of senders (target: flat). The engine comes
from ANNOTA_SEARCH_ENGINE / ANNOTA_ELASTICSEARCH (default: the test services' Elasticsearch).

With --pinned the comparison runs twice: once as above (engine, database and loader share
every CPU), then with the engine's process on CPU 0 and both loaders on the others, as
when the engine has machines of its own. On a 2-core machine the engine alone uses most
of both cores during a bulk load, so in the shared layout every CPU-second annota spends
reading the database is taken from the engine; the pinned layout shows what annota costs
when it does not compete for the engine's CPU. Pinning needs the right to set the engine's
CPU affinity (root, or the engine's own user).

With --pause it measures instead how long a reindex pauses the dataset's writers, at each
size given: reindexes one after another while a client imports batches of 5,000-10,000
records (the API's path), printing each pause and their p50 and max (target: well under a
second, and not growing with N), and what the client saw (slowest import, refusals).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import resource
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

DIMENSIONS = 16
LABELS = ["positive", "negative", "neutral"]


def settings_from_env():  # noqa: ANN201
    from annota.config import Settings

    return Settings.from_env(os.environ)


def seed(n: int) -> str:
    import sqlalchemy as sa

    from annota.server.db import open_database
    from annota.server.domain import datasets
    from annota.server.domain import models as m
    from annota.server.schema import migrate as migrations

    settings = settings_from_env()
    migrations.migrate(settings)
    db = open_database(settings.database_url)
    rng = random.Random(n)
    with db.begin() as connection:
        users = []
        for k in range(2):
            users.append(uuid.uuid4())
            connection.execute(sa.insert(m.User.__table__), {
                "id": users[-1], "first_name": "a",
                "username": f"bench-{n}-{k}-{uuid.uuid4().hex[:8]}",
                "role": "annotator", "api_key": uuid.uuid4().hex, "password_hash": "-",
                "inserted_at": m.utcnow(), "updated_at": m.utcnow()})
        workspace = datasets.create_workspace(connection, f"bench-{n}-{uuid.uuid4().hex[:6]}")
        dataset = datasets.create_dataset(
            connection, workspace_id=workspace, name=f"bench-{n}",
            fields=[{"name": "text", "type": "text"}],
            questions=[{"name": "sentiment", "type": "label_selection", "options": LABELS},
                       {"name": "quality", "type": "rating"}],
            metadata_properties=[{"name": "source", "type": "terms"},
                                 {"name": "length", "type": "integer"}],
            vector_settings=[{"name": "embedding", "dimensions": DIMENSIONS}])
    for start in range(0, n, 2000):
        batch = [{
            "fields": {"text": f"review {i}: the product was {LABELS[i % 3]} and arrived "
                               f"on day {i % 31}"},
            "metadata": {"source": ["web", "mail", "app"][i % 3], "length": i % 500},
            "responses": [{"user_id": u, "status": "submitted",
                           "values": {"sentiment": {"value": LABELS[(i + k) % 3]},
                                      "quality": {"value": 1 + (i + k) % 5}}}
                          for k, u in enumerate(users)],
            "suggestions": [{"question": "sentiment", "value": LABELS[i % 3], "score": 0.9,
                             "agent": "bench-model"}],
            "vectors": {"embedding": [rng.uniform(-1, 1) for _ in range(DIMENSIONS)]},
        } for i in range(start, min(n, start + 2000))]
        with db.begin() as connection:
            datasets.import_records(connection, dataset, batch)
    db.dispose()
    return str(dataset)


def child_reindex(dataset: str, batch_size: int, senders: int) -> dict:
    from annota.search import reindex

    started = time.perf_counter()
    summary = reindex.reindex(settings_from_env(), [dataset], batch_size=batch_size,
                              senders=senders)
    seconds = time.perf_counter() - started
    (result,) = summary.results
    assert result.swapped and not result.rejected, result.to_dict()
    return {"seconds": seconds, "records": result.indexed, "paused": result.paused,
            "pauses": result.pauses, "checked_while_paused": result.paused_changes}


def child_raw(dataset: str, batch_size: int, senders: int) -> dict:
    """The limit: documents already built in memory, bulk-loaded with the same client."""
    from annota.search import connect
    from annota.search.documents import document_batches
    from annota.search.engine import new_index_name
    from annota.search.mapping import dataset_mapping, index_meta, load_schema
    from annota.server.db import open_database

    settings = settings_from_env()
    engine = connect(settings.search)
    db = open_database(settings.database_url)
    with db.connect() as connection:
        schema = load_schema(connection, dataset)
    docs = [d for batch in document_batches(db, schema, 5000) for d in batch]
    index = new_index_name(f"{settings.search.index_prefix}-raw", dataset)
    engine.create_index(index, {"index": {"number_of_shards": 1, "number_of_replicas": 0,
                                          "refresh_interval": "-1"},
                                **engine.index_settings(vectors=True)},
                        dataset_mapping(engine, schema, index_meta(schema)))
    from concurrent.futures import ThreadPoolExecutor

    def load(start: int) -> None:
        operations = []
        for doc in docs[start:start + batch_size]:
            operations += [{"index": {"_index": index, "_id": doc.id}}, doc.source]
        response = engine.bulk(operations)
        assert not response.get("errors")

    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=senders) as pool:
        list(pool.map(load, range(0, len(docs), batch_size)))
    engine.put_settings(index, {"index": {"refresh_interval": None}})
    engine.refresh(index)
    seconds = time.perf_counter() - started
    count = engine.count(index)
    engine.delete_index(index)
    return {"seconds": seconds, "records": count}


def run_child(kind: str, dataset: str, batch_size: int, senders: int,
              cpus: set[int] | None = None) -> dict:
    out = subprocess.run(
        [sys.executable, __file__, "--child", kind, "--dataset", dataset,
         "--batch-size", str(batch_size), "--senders", str(senders)],
        check=True, capture_output=True, text=True, env=os.environ,
        preexec_fn=(lambda: os.sched_setaffinity(0, cpus)) if cpus else None,
    ).stdout
    return json.loads(out.strip().splitlines()[-1])


def record_batch(start: int, size: int, users: list[uuid.UUID]) -> list[dict]:
    rng = random.Random(start)
    return [{"fields": {"text": f"imported {i}: the product was {LABELS[i % 3]}"},
             "metadata": {"source": "app", "length": i % 500}, "external_id": f"live-{i}",
             "responses": [{"user_id": u, "status": "submitted",
                            "values": {"sentiment": {"value": LABELS[(i + k) % 3]},
                                       "quality": {"value": 1 + (i + k) % 5}}}
                           for k, u in enumerate(users)],
             "vectors": {"embedding": [rng.uniform(-1, 1) for _ in range(DIMENSIONS)]}}
            for i in range(start, start + size)]


def pauses_under_writes(dataset: str, runs: int, batch_size: int, senders: int,
                        gap: float) -> None:
    """``runs`` reindexes (each its own process) while a client imports batches of
    5,000-10,000 records through the API's all-or-nothing path, ``gap`` seconds apart:
    each reindex's writers' pause, and what the client saw."""
    import threading

    import sqlalchemy as sa

    from annota.search import connect
    from annota.search.live import imported_and_indexed
    from annota.server.db import open_database
    from annota.server.domain import datasets
    from annota.server.domain import models as m

    settings = settings_from_env()
    db = open_database(settings.database_url)
    engine = connect(settings.search)
    with db.connect() as connection:
        users = list(connection.execute(sa.select(m.User.id).where(
            m.User.username.like("bench-%"))).scalars())[:2]
    stop, latencies, failures = threading.Event(), [], []

    def client() -> None:
        rng, n = random.Random(7), 10_000_000
        while not stop.wait(gap):
            size = rng.randint(5000, 10000)
            batch = record_batch(n, size, users)
            started = time.perf_counter()
            try:
                imported_and_indexed(db, engine, uuid.UUID(dataset),
                                     lambda c, b=batch: datasets.import_records(
                                         c, uuid.UUID(dataset), b))
                latencies.append(time.perf_counter() - started)
            except Exception as exc:  # noqa: BLE001 - counted and shown
                failures.append(f"{type(exc).__name__}: {exc}"[:200])
            n += size

    def drop_imported() -> None:
        """The client's records of the last run, deleted (the next reindex rebuilds from
        the database): every run reindexes about N records."""
        with db.begin() as connection:
            connection.execute(sa.delete(m.Record.__table__).where(
                m.Record.dataset_id == uuid.UUID(dataset),
                m.Record.external_id.like("live-%")))

    from annota.search.live import ensure_index
    from annota.search.mapping import load_schema

    with db.connect() as connection:  # the dataset's first index, as its first import made
        ensure_index(engine, load_schema(connection, dataset))
    writer = threading.Thread(target=client, daemon=True)
    writer.start()
    pauses = []
    try:
        for _ in range(runs):
            result = run_child("reindex", dataset, batch_size, senders)
            pauses.append(result)
            drop_imported()
            print(f"  reindex {result['records']:,} records in {result['seconds']:.1f}s: "
                  f"writers paused {result['paused'] * 1000:.0f} ms at the longest "
                  f"({result['pauses']} pause(s)), {result['checked_while_paused']} changed "
                  "records checked in the last")
    finally:
        stop.set()
        writer.join(timeout=300)
        db.dispose()
    ms = sorted(p["paused"] * 1000 for p in pauses)
    print(f"writers' pause over {runs} reindexes: p50 {ms[len(ms) // 2]:.0f} ms, max "
          f"{ms[-1]:.0f} ms; {len(latencies)} imports of 5,000-10,000 records meanwhile, "
          f"slowest {max(latencies, default=0):.1f}s; {len(failures)} refused"
          + (f" ({failures[0]})" if failures else ""))


def engine_pids(url: str) -> list[int]:
    """The processes listening on the engine's port (``ss`` from iproute2)."""
    port = url.rstrip("/").rsplit(":", 1)[-1]
    out = subprocess.run(["ss", "-ltnpH", f"sport = :{port}"], capture_output=True,
                         text=True, check=True).stdout
    return sorted({int(p) for p in re.findall(r"pid=(\d+)", out)})


def pin(pids: list[int], cpus: set[int]) -> None:
    for pid in pids:
        for task in Path(f"/proc/{pid}/task").iterdir():
            os.sched_setaffinity(int(task.name), cpus)


def compare(dataset: str, counts: list[int], batch_size: int,
            loader_cpus: set[int] | None = None) -> tuple[dict, int]:
    def rate(result: dict) -> float:
        return result["records"] / result["seconds"]

    ours, raw = {}, {}
    for senders in counts:
        raw[senders] = run_child("raw", dataset, batch_size, senders, loader_cpus)
        ours[senders] = run_child("reindex", dataset, batch_size, senders, loader_cpus)
        print(f"senders={senders}: annota {rate(ours[senders]):,.0f} records/s "
              f"({ours[senders]['seconds']:.1f}s, peak RSS "
              f"{ours[senders]['peak_rss_mib']:.0f} MiB); raw bulk {rate(raw[senders]):,.0f} "
              f"records/s ({raw[senders]['seconds']:.1f}s); annota/raw "
              f"{rate(ours[senders]) / rate(raw[senders]):.2f}")
    best_raw = max(counts, key=lambda n: rate(raw[n]))
    best_ours = max(counts, key=lambda n: rate(ours[n]))
    print(f"one sender: annota/raw = {rate(ours[counts[0]]) / rate(raw[counts[0]]):.2f}")
    print(f"best: annota {rate(ours[best_ours]):,.0f} records/s ({best_ours} senders) / raw "
          f"{rate(raw[best_raw]):,.0f} records/s ({best_raw} senders) = "
          f"{rate(ours[best_ours]) / rate(raw[best_raw]):.2f} (target >= 0.90)")
    return ours, best_ours


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--batch-size", type=int, default=500)
    parser.add_argument("--senders", default="1,2,4",
                        help="numbers of parallel senders to try (comma-separated)")
    parser.add_argument("--memory-check", action="store_true", help="also seed 4N records")
    parser.add_argument("--pinned", action="store_true",
                        help="also compare with the engine on CPU 0 and the loaders on the rest")
    parser.add_argument("--pause", default="",
                        help="record counts (comma-separated, e.g. 100000,1000000) at which to "
                             "measure the writers' pause of reindexes under imports, and skip "
                             "the throughput comparison")
    parser.add_argument("--pause-runs", type=int, default=5,
                        help="reindexes per record count for the pause's p50 and max")
    parser.add_argument("--pause-gap", type=float, default=5.0,
                        help="seconds between the client's imports")
    parser.add_argument("--pause-dataset",
                        help="measure on this dataset of the database (seeded before) "
                             "instead of seeding")
    parser.add_argument("--child", choices=["reindex", "raw"], help=argparse.SUPPRESS)
    parser.add_argument("--dataset", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        result = (child_reindex if args.child == "reindex" else child_raw)(
            args.dataset, args.batch_size, int(args.senders))
        result["peak_rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(json.dumps(result))
        return

    tmp = tempfile.mkdtemp(prefix="annota-bench-")
    os.environ.setdefault("ANNOTA_HOME", tmp)
    os.environ.setdefault("ANNOTA_ELASTICSEARCH", "http://127.0.0.1:59200")
    os.environ.setdefault("ANNOTA_SEARCH_INDEX_PREFIX", f"bench-{uuid.uuid4().hex[:6]}")
    settings = settings_from_env()
    print(f"engine {settings.search.engine} at {settings.search.masked_url}, "
          f"database {settings.database_url.masked}, batch size {args.batch_size}")
    counts = [int(n) for n in args.senders.split(",")]
    if args.pause or args.pause_dataset:
        for n in [int(x) for x in args.pause.split(",") if x] or [0]:
            started = time.perf_counter()
            dataset = args.pause_dataset or seed(n)
            print(f"seeded {n:,} records in {time.perf_counter() - started:.0f}s; " if n else
                  f"dataset {dataset}; ", end="")
            print(f"{args.pause_runs} reindexes under imports:")
            pauses_under_writes(dataset, args.pause_runs, args.batch_size, counts[-1],
                                args.pause_gap)
        cleanup(settings)
        return
    started = time.perf_counter()
    dataset = seed(args.records)
    print(f"seeded {args.records} records in {time.perf_counter() - started:.0f}s")
    print(f"-- shared: engine, database and loader on all {os.cpu_count()} CPUs")
    ours, best_ours = compare(dataset, counts, args.batch_size)
    if args.pinned:
        everything = set(range(os.cpu_count() or 1))
        pids = engine_pids(settings.search.url)
        print(f"-- pinned: the engine (pids {pids}) on CPU 0, the loaders on "
              f"CPU {sorted(everything - {0})}")
        pin(pids, {0})
        try:
            compare(dataset, counts, args.batch_size, everything - {0})
        finally:
            pin(pids, everything)
    if args.memory_check:
        started = time.perf_counter()
        large = seed(4 * args.records)
        print(f"seeded {4 * args.records} records in {time.perf_counter() - started:.0f}s")
        big = run_child("reindex", large, args.batch_size, best_ours)
        small = ours[best_ours]
        print(f"peak RSS at N: {small['peak_rss_mib']:.0f} MiB, at 4N: "
              f"{big['peak_rss_mib']:.0f} MiB, ratio "
              f"{big['peak_rss_mib'] / small['peak_rss_mib']:.2f} (target: flat, ~1.0)")
    cleanup(settings)


def cleanup(settings) -> None:  # noqa: ANN001
    from annota.search import connect
    from annota.search.engine import index_pattern

    engine = connect(settings.search)
    for name in engine.indices(index_pattern(settings.search.index_prefix)):
        engine.delete_index(name)


if __name__ == "__main__":
    main()
