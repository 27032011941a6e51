"""The embedded engine against Elasticsearch 8, in one run on the same records.

    python benchmarks/search.py [--records 100000] [--dims 384] [--queries 100]
                                [--elasticsearch URL] [--work DIR]

Seeds N records into a fresh SQLite database: a text of 8-24 words drawn (Zipf-like)
from a vocabulary of 3,000, metadata (terms, integer, float), responses of three users
(some records left pending for each), a suggestion, and a vector of ``--dims``. Then, for
each engine (Elasticsearch at ``--elasticsearch``, default the test services'; the
embedded engine in a file beside the database), each step in a process of its own:

  (a) reindex: records/s of ``annota server search-engine reindex``'s library call;
  (b) latency of ``--queries`` generated queries of each kind, through annota's
      ``searching`` functions (the API's path), after a warm-up: p50 and p95 in ms for
      text, text + filters, pending for a user, a sort, metrics, and similarity with and
      without a filter;
  (c) peak RSS: of the embedded engine's query process (everything it holds); of
      Elasticsearch's JVM (VmHWM of its process, heap and off-heap);
  (d) disk: the index's store size, and the embedded engine's file (with its WAL).

Prints a table with embedded / Elasticsearch ratios (for latency, targets: embedded p95 <=
Elasticsearch p95; for reindex: embedded records/s >= Elasticsearch's).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

LABELS = ["positive", "negative", "neutral"]
SOURCES = ["web", "mail", "app", "api", "scan"]
KINDS = ["text", "text+filters", "pending-for-user", "sort", "metrics", "similarity",
         "similarity+filter"]


def vocabulary() -> list[str]:
    rng = random.Random(1)
    letters = "abcdefghijklmnopqrstuvwxyz"
    words: set[str] = set()
    while len(words) < 3000:
        words.add("".join(rng.choice(letters) for _ in range(rng.randint(3, 9))))
    return sorted(words)


def settings_for(env: dict[str, str]):  # noqa: ANN201
    from annota.config import Settings

    return Settings.from_env(env)


def seed(env: dict[str, str], n: int, dims: int) -> str:
    import sqlalchemy as sa

    from annota.server.db import open_database
    from annota.server.domain import datasets
    from annota.server.domain import models as m
    from annota.server.schema import migrate as migrations

    settings = settings_for(env)
    migrations.migrate(settings)
    db = open_database(settings.database_url)
    rng = random.Random(n)
    words = vocabulary()
    weights = [1 / (rank + 1) for rank in range(len(words))]
    with db.begin() as connection:
        users = []
        for k in range(3):
            users.append(uuid.uuid4())
            connection.execute(sa.insert(m.User.__table__), {
                "id": users[-1], "first_name": "a", "username": f"bench-{k}",
                "role": "annotator", "api_key": uuid.uuid4().hex, "password_hash": "-",
                "inserted_at": m.utcnow(), "updated_at": m.utcnow()})
        workspace = datasets.create_workspace(connection, "bench")
        dataset = datasets.create_dataset(
            connection, workspace_id=workspace, name="bench",
            fields=[{"name": "text", "type": "text"}],
            questions=[{"name": "sentiment", "type": "label_selection", "options": LABELS},
                       {"name": "quality", "type": "rating", "options": [1, 2, 3, 4, 5]}],
            metadata_properties=[{"name": "source", "type": "terms"},
                                 {"name": "length", "type": "integer"},
                                 {"name": "score", "type": "float"}],
            vector_settings=[{"name": "embedding", "dimensions": dims}])
    for start in range(0, n, 1000):
        batch = []
        for _ in range(start, min(n, start + 1000)):
            responses = [{"user_id": u, "status": rng.choice(["submitted", "draft",
                                                              "discarded"]),
                          "values": {"sentiment": {"value": rng.choice(LABELS)},
                                     "quality": {"value": rng.randint(1, 5)}}}
                         for u in users if rng.random() < 0.5]
            batch.append({
                "fields": {"text": " ".join(rng.choices(words, weights, k=rng.randint(8, 24)))},
                "metadata": {"source": rng.choice(SOURCES), "length": rng.randint(0, 999),
                             "score": rng.randint(0, 1000) / 8},
                "responses": responses,
                "suggestions": [{"question": "sentiment", "value": rng.choice(LABELS),
                                 "score": rng.randint(0, 100) / 100, "agent": "bench"}],
                "vectors": {"embedding": [rng.gauss(0, 1) for _ in range(dims)]},
            })
        with db.begin() as connection:
            datasets.import_records(connection, dataset, batch)
        print(f"  seeded {min(n, start + 1000)}", file=sys.stderr, end="\r")
    db.dispose()
    return str(dataset)


def child_reindex(env: dict[str, str]) -> dict:
    from annota.search import reindex

    started = time.perf_counter()
    summary = reindex.reindex(settings_for(env), batch_size=500)
    seconds = time.perf_counter() - started
    (result,) = summary.results
    assert result.swapped and not result.rejected, result.to_dict()
    return {"seconds": seconds, "records": result.indexed}


def queries(dataset: str, users: list[str], dims: int, n: int) -> list[tuple[str, object]]:
    from annota.search.query import (
        MetadataFilter,
        ResponseStatusFilter,
        SearchQuery,
        Similarity,
        Sort,
        TextQuery,
    )

    rng = random.Random(42)
    words = vocabulary()[:600]  # words common enough to match
    out: list[tuple[str, object]] = []
    for _ in range(n):
        text = TextQuery(q=" ".join(rng.sample(words, rng.randint(1, 2))))
        source = MetadataFilter(property="source", values=(rng.choice(SOURCES),))
        low = rng.randint(0, 800)
        out += [
            ("text", SearchQuery(text=text, limit=20)),
            ("text+filters", SearchQuery(text=text, filters=(
                source, MetadataFilter(property="length", ge=low, lt=low + 400)), limit=20)),
            ("pending-for-user", SearchQuery(filters=(ResponseStatusFilter(
                user_id=uuid.UUID(rng.choice(users)), statuses=("pending",)),), limit=20)),
            ("sort", SearchQuery(filters=(source,), sort=(
                Sort(by="metadata.score", order=rng.choice(["asc", "desc"])),), limit=20)),
            ("metrics", SearchQuery(filters=(MetadataFilter(property="length", ge=low),))),
            ("similarity", SearchQuery(similarity=Similarity(
                vector="embedding", value=tuple(rng.gauss(0, 1) for _ in range(dims)), k=10))),
            ("similarity+filter", SearchQuery(filters=(source,), similarity=Similarity(
                vector="embedding", value=tuple(rng.gauss(0, 1) for _ in range(dims)), k=10))),
        ]
    return out


def child_queries(env: dict[str, str], dataset: str, dims: int, n: int) -> dict:
    import sqlalchemy as sa

    from annota.search import connect
    from annota.search.searching import metrics, search
    from annota.server.db import open_database
    from annota.server.domain import models as m

    settings = settings_for(env)
    engine = connect(settings.search)
    db = open_database(settings.database_url)
    with db.connect() as connection:
        users = [str(u) for u in connection.execute(sa.select(m.User.id)).scalars()]
    db.dispose()
    types = {"source": "terms", "length": "integer", "score": "float"}

    def run(kind: str, query) -> None:  # noqa: ANN001
        if kind == "metrics":
            metrics(engine, dataset, query, "source", "terms")
        else:
            vector = list(query.similarity.value) if query.similarity else None
            search(engine, dataset, query, types, vector)

    generated = queries(dataset, users, dims, n)
    for kind, query in generated[:len(KINDS) * 5]:  # warm-up: caches, vector matrices
        run(kind, query)
    times: dict[str, list[float]] = {k: [] for k in KINDS}
    for kind, query in generated:
        started = time.perf_counter()
        run(kind, query)
        times[kind].append((time.perf_counter() - started) * 1000)
    return {"latency": {k: [statistics.median(v), _p95(v)] for k, v in times.items()},
            "rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def _p95(values: list[float]) -> float:
    return statistics.quantiles(values, n=20)[-1]


def run_child(kind: str, env: dict[str, str], *args: str) -> dict:
    out = subprocess.run([sys.executable, __file__, "--child", kind, *args],
                         check=True, capture_output=True, text=True, env=env).stdout
    return json.loads(out.strip().splitlines()[-1])


def jvm_peak_rss(url: str) -> float | None:
    """VmHWM of the Elasticsearch node at ``url`` (its process id from the nodes API), MiB:
    heap and off-heap, over the node's life."""
    from elasticsearch import Elasticsearch

    nodes = Elasticsearch(url).nodes.info(node_id="_local", metric="process")
    pid = next(iter(nodes["nodes"].values()))["process"]["id"]
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None  # not on this machine
    return int(next(line.split()[1] for line in status.splitlines()
                    if line.startswith("VmHWM"))) / 1024


def disk_of(env: dict[str, str]) -> float:
    settings = settings_for(env)
    if settings.search.engine == "sqlite":
        path = settings.search.path
        return sum(p.stat().st_size for p in path.parent.glob(path.name + "*")) / 2**20
    from annota.search import connect

    engine = connect(settings.search)
    stats = engine.client.indices.stats(index=f"{settings.search.index_prefix}.records.*")
    return stats["_all"]["primaries"]["store"]["size_in_bytes"] / 2**20


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--dims", type=int, default=384)
    parser.add_argument("--queries", type=int, default=100)
    parser.add_argument("--elasticsearch", default=os.environ.get(
        "ANNOTA_TEST_ELASTICSEARCH_URL", "http://127.0.0.1:59200"))
    parser.add_argument("--work", type=Path,
                        help="a directory to keep the seeded database in (seeded once)")
    parser.add_argument("--seed-only", action="store_true")
    parser.add_argument("--child")
    parser.add_argument("--dataset")
    args = parser.parse_args()
    if args.child == "reindex":
        print(json.dumps(child_reindex(dict(os.environ))))
        return
    if args.child == "queries":
        print(json.dumps(child_queries(dict(os.environ), args.dataset, args.dims,
                                       args.queries)))
        return
    work = args.work or Path(tempfile.mkdtemp(prefix="annota-search-bench-"))
    base = {k: v for k, v in os.environ.items() if not k.startswith("ANNOTA_")}
    base.update({"ANNOTA_HOME": str(work), "ANNOTA_DATABASE_URL":
                 f"sqlite:///{work / 'annota.db'}"})
    marker = work / "dataset"
    if marker.exists():
        dataset = marker.read_text()
    else:
        started = time.perf_counter()
        dataset = seed(base, args.records, args.dims)
        marker.write_text(dataset)
        print(f"seeded {args.records} records in {time.perf_counter() - started:.0f} s",
              file=sys.stderr)
    if args.seed_only:
        return
    engines = {
        "elasticsearch": {**base, "ANNOTA_SEARCH_ENGINE": "elasticsearch",
                          "ANNOTA_ELASTICSEARCH": args.elasticsearch,
                          "ANNOTA_SEARCH_INDEX_PREFIX": f"bench-{uuid.uuid4().hex[:8]}"},
        "embedded": {**base, "ANNOTA_SEARCH_ENGINE": "sqlite",
                     "ANNOTA_SEARCH_PATH": str(work / f"search-{uuid.uuid4().hex[:8]}.db")},
    }
    results = {}
    for name, env in engines.items():
        print(f"{name}: reindex", file=sys.stderr)
        reindexed = run_child("reindex", env)
        print(f"{name}: queries", file=sys.stderr)
        asked = run_child("queries", env, "--dataset", dataset, "--dims", str(args.dims),
                          "--queries", str(args.queries))
        rss = asked["rss_mib"] if name == "embedded" else jvm_peak_rss(args.elasticsearch)
        results[name] = {"rate": reindexed["records"] / reindexed["seconds"],
                         "seconds": reindexed["seconds"], "latency": asked["latency"],
                         "rss": rss, "disk": disk_of(env)}
    report(results, args)


def report(results: dict, args: argparse.Namespace) -> None:
    es, em = results["elasticsearch"], results["embedded"]
    print(f"\n{args.records} records, {args.dims}-dimension vectors, {args.queries} queries "
          "of each kind\n")
    print("| measure | Elasticsearch 8 | embedded | embedded / Elasticsearch |")
    print("| --- | --- | --- | --- |")
    print(f"| reindex records/s | {es['rate']:.0f} ({es['seconds']:.1f} s) | "
          f"{em['rate']:.0f} ({em['seconds']:.1f} s) | {em['rate'] / es['rate']:.2f} |")
    for kind in KINDS:
        (e50, e95), (m50, m95) = es["latency"][kind], em["latency"][kind]
        print(f"| {kind} p50 / p95 ms | {e50:.1f} / {e95:.1f} | {m50:.1f} / {m95:.1f} | "
              f"{m95 / e95:.2f} (p95) |")
    rss = "n/a" if es["rss"] is None else f"{es['rss']:.0f}"
    ratio = "" if es["rss"] is None else f"{em['rss'] / es['rss']:.2f}"
    print(f"| peak RSS MiB | {rss} (JVM) | {em['rss']:.0f} (query process) | {ratio} |")
    print(f"| disk MiB | {es['disk']:.0f} | {em['disk']:.0f} | {em['disk'] / es['disk']:.2f} |")


if __name__ == "__main__":
    main()
