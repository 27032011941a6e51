"""The embedded engine's in-memory columns against the documents as written, and its exact
vector search, both ways: numpy's in-memory matrices (this
Python's sqlite3 cannot load extensions) and sqlite-vec inside SQLite (Debian's Python,
which can, in a virtualenv of its own). Each against cosine computed here, exactly."""

from __future__ import annotations

import json
import math
import os
import random
import shutil
import subprocess
from pathlib import Path

import pytest

from annota.config import Settings
from annota.search import connect
from annota.search.bulk import remove, send
from annota.search.documents import Document
from annota.search.sqlite.engine import SqliteEngine
from tests.conftest import engine_env, service_missing

ROOT = Path(__file__).resolve().parent.parent
DIMS = 6
MAPPING = {"_meta": {}, "properties": {
    "metadata": {"properties": {"group": {"type": "keyword"}}},
    "vectors": {"properties": {"emb": {"type": "dense_vector", "dims": DIMS}}}}}


def _cosine(a: list[float], b: list[float]) -> float:
    dot = sum(x * y for x, y in zip(a, b, strict=True))
    return dot / (math.sqrt(sum(x * x for x in a)) * math.sqrt(sum(y * y for y in b)))


def _doc(i: int, vector: list[float]) -> Document:
    source = {"id": f"d{i:04d}", "updated_at": "2026-01-01T00:00:00",
              "metadata": {"group": "even" if i % 2 == 0 else "odd"}, "vectors": {"emb": vector}}
    return Document(f"d{i:04d}", "v", json.dumps(source))


def _exact(vectors: dict[str, list[float]], query: list[float], k: int,
           allowed: set[str] | None = None) -> list[str]:
    pool = [i for i in vectors if allowed is None or i in allowed]
    return sorted(pool, key=lambda i: -_cosine(vectors[i], query))[:k]


def test_numpy_matrices_follow_every_write(tmp_path, monkeypatch):
    """Indexed, then changed, deleted and added: each query answers as exact cosine over
    the documents the index has at that moment (the matrix catches up by sequence)."""
    from annota.search.query import MetadataFilter

    # the log of deletions pruned at every write: a matrix behind it must be rebuilt
    monkeypatch.setattr("annota.search.sqlite.engine.PRUNE_EVERY", 1)
    env = engine_env(tmp_path, f"sqlite:///{tmp_path / 'annota.db'}", "", "sqlite")
    engine = connect(Settings.from_env(env).search)
    assert isinstance(engine, SqliteEngine) and "numpy" in engine.info().version
    engine.create_index("vec-test", {}, MAPPING, ["vec-alias"])
    rng = random.Random(3)
    vectors = {f"d{i:04d}": [rng.gauss(0, 1) for _ in range(DIMS)] for i in range(300)}
    assert not send(engine, "vec-alias", [_doc(int(i[1:]), v) for i, v in vectors.items()]
                    ).rejected
    for round_ in range(4):
        for _ in range(5):
            query = [rng.gauss(0, 1) for _ in range(DIMS)]
            hits = engine.nearest("vec-alias", "emb", query, 10, ())
            assert [h.id for h in hits] == _exact(vectors, query, 10), round_
            for hit in hits:
                assert abs(hit.score - _cosine(vectors[hit.id], query)) < 1e-5
            even = {i for i in vectors if int(i[1:]) % 2 == 0}
            filtered = engine.nearest("vec-alias", "emb", query, 7, (
                MetadataFilter(property="group", values=("even",)),))
            assert [h.id for h in filtered] == _exact(vectors, query, 7, even)
        changed = rng.sample(sorted(vectors), 20)
        for i in changed:
            vectors[i] = [rng.gauss(0, 1) for _ in range(DIMS)]
        gone = rng.sample(sorted(set(vectors) - set(changed)), 15)
        added = {f"d{1000 + round_ * 10 + j:04d}": [rng.gauss(0, 1) for _ in range(DIMS)]
                 for j in range(10)}
        vectors.update(added)
        assert not send(engine, "vec-alias", [_doc(int(i[1:]), vectors[i])
                                              for i in [*changed, *added]]).rejected
        assert not remove(engine, "vec-alias", gone).rejected
        for i in gone:
            del vectors[i]
        some = sorted(vectors)[round_]  # a write after the deletions prunes their log
        assert not send(engine, "vec-alias", [_doc(int(some[1:]), vectors[some])]).rejected


SCRIPT = r"""
import json, random, sqlite3, sys
from array import array
sys.path.insert(0, sys.argv[1])
from annota.search.sqlite import vectors

rng = random.Random(9)
connection = sqlite3.connect(":memory:")
assert vectors.extension_loaded(connection), "sqlite-vec did not load"
connection.execute("CREATE TABLE x1_vec (rid INTEGER, name TEXT, vector BLOB, seq INTEGER)")
connection.execute("CREATE TABLE x1_gone (rid INTEGER, seq INTEGER)")
rows = {rid: [rng.gauss(0, 1) for _ in range(8)] for rid in range(1, 501)}
connection.executemany("INSERT INTO x1_vec VALUES (?, 'emb', ?, 1)",
                       [(r, array("f", v).tobytes()) for r, v in rows.items()])
out = []
for _ in range(20):
    query = [rng.gauss(0, 1) for _ in range(8)]
    k = rng.randint(1, 30)
    odd = [r for r in rows if r % 2]
    cursor = connection.cursor()
    out.append({
        "query": query, "k": k,
        "extension": vectors.by_extension(cursor, "x1", "emb", query, k, None, []),
        "extension_odd": vectors.by_extension(
            cursor, "x1", "emb", query, k, "SELECT rid FROM x1_vec WHERE rid % 2 = 1", []),
        "numpy": vectors.Matrices().nearest(cursor, ("m",), "x1", "emb", (1, 0), query, k,
                                            None),
        "numpy_odd": vectors.Matrices().nearest(cursor, ("m",), "x1", "emb", (1, 0), query, k,
                                                odd),
    })
print(json.dumps({"rows": rows, "answers": out}))
"""


@pytest.fixture(scope="session")
def extension_python(tmp_path_factory) -> str:
    """Debian's Python (its sqlite3 loads extensions) in a virtualenv with sqlite-vec and
    numpy, as annota's dependencies pin them."""
    system = shutil.which("python3", path="/usr/bin")
    if system is None:
        service_missing("no /usr/bin/python3 (Debian's python3): `bash scripts/test` needs it")
    loads = subprocess.run([system, "-c", "import sqlite3; sqlite3.connect(':memory:')"
                            ".enable_load_extension(True)"], capture_output=True)
    if loads.returncode:
        service_missing("/usr/bin/python3's sqlite3 cannot load extensions")
    venv = tmp_path_factory.mktemp("vec-venv")
    subprocess.run([system, "-m", "venv", str(venv)], check=True)
    pins = [d for d in _dependencies() if d.startswith(("numpy", "sqlite-vec"))]
    subprocess.run([str(venv / "bin" / "pip"), "install", "-q", *pins], check=True,
                   env={**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1"})
    return str(venv / "bin" / "python")


def _dependencies() -> list[str]:
    import tomllib

    return tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]


def test_sqlite_vec_and_numpy_give_the_same_exact_answers(extension_python):
    done = subprocess.run([extension_python, "-c", SCRIPT, str(ROOT)], capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    found = json.loads(done.stdout)
    rows = {int(r): v for r, v in found["rows"].items()}
    for answer in found["answers"]:
        query, k = answer["query"], answer["k"]
        for way, allowed in (("", None), ("_odd", {r for r in rows if r % 2})):
            pool = [r for r in rows if allowed is None or r in allowed]
            exact = sorted(pool, key=lambda r: -_cosine(rows[r], query))[:k]
            for kind in ("extension", "numpy"):
                got = answer[kind + way]
                assert [rid for rid, _ in got] == exact, (kind, way)
                for rid, score in got:
                    assert abs(score - _cosine(rows[rid], query)) < 1e-5


@pytest.mark.parametrize("prune_every", [1000, 1])
def test_in_memory_columns_follow_every_write(tmp_path, monkeypatch, prune_every):
    """Filters, totals, sorts and progress answered from the in-memory columns stay equal
    to the documents as they are written, rewritten and deleted: caught up write by write,
    and rebuilt whole when the log of deletions was pruned meanwhile."""
    import uuid as uuid_

    from annota.search.query import MetadataFilter, ResponseStatusFilter, SearchQuery, Sort

    monkeypatch.setattr("annota.search.sqlite.engine.PRUNE_EVERY", prune_every)
    env = engine_env(tmp_path, f"sqlite:///{tmp_path / 'annota.db'}", "", "sqlite")
    engine = connect(Settings.from_env(env).search)
    mapping = {"_meta": {}, "properties": {"metadata": {"properties": {
        "group": {"type": "keyword"}, "n": {"type": "long"}}}}}
    engine.create_index("cols-test", {}, mapping, ["cols-alias"])
    rng = random.Random(8)
    users = [str(uuid_.uuid4()) for _ in range(3)]
    docs: dict[str, dict] = {}

    def new_doc() -> dict:
        metadata = {"group": rng.choice(["a", "b", "c"])}
        if rng.random() < 0.8:
            metadata["n"] = rng.randint(0, 20)
        responses = [{"user_id": u, "status": rng.choice(["draft", "submitted", "discarded"])}
                     for u in users if rng.random() < 0.5]
        return {"metadata": metadata, "updated_at": "2026-01-01T00:00:00",
                "responses": responses,
                "submitted": sum(r["status"] == "submitted" for r in responses)}

    def sent(ids: list[str]) -> None:
        assert not send(engine, "cols-alias", [Document(i, "v", json.dumps(
            {"id": i, **docs[i]})) for i in ids]).rejected

    def statuses(doc: dict) -> dict[str, str]:
        return {r["user_id"]: r["status"] for r in doc["responses"]}

    for _ in range(60):
        docs[str(uuid_.uuid4())] = new_doc()
    sent(sorted(docs))
    for round_ in range(5):
        user = users[round_ % 3]
        query = SearchQuery(filters=(
            ResponseStatusFilter(user_id=uuid_.UUID(user), statuses=("pending", "draft")),
            MetadataFilter(property="group", values=("a", "b"))),
            sort=(Sort(by="metadata.n", order="desc"),), limit=100)
        want = [i for i, d in docs.items() if statuses(d).get(user) in (None, "draft")
                and d["metadata"]["group"] in ("a", "b")]
        want.sort(key=lambda i: (docs[i]["metadata"].get("n") is None,
                                 -docs[i]["metadata"].get("n", 0), i))
        got = engine.find("cols-alias", query, {})
        assert (got.total, [h.id for h in got.hits]) == (len(want), want), round_
        total, completed, by_user = engine.progress("cols-alias", (), 1)
        assert (total, completed) == (len(docs), sum(
            "submitted" in statuses(d).values() for d in docs.values()))
        for u in users:
            counts: dict[str, int] = {}
            for d in docs.values():
                if u in statuses(d):
                    counts[statuses(d)[u]] = counts.get(statuses(d)[u], 0) + 1
            assert by_user.get(u, {}) == counts
        changed = rng.sample(sorted(docs), 15)
        for i in changed:
            docs[i] = new_doc()
        gone = rng.sample(sorted(set(docs) - set(changed)), 8)
        added = [str(uuid_.uuid4()) for _ in range(6)]
        for i in added:
            docs[i] = new_doc()
        sent(changed + added)
        assert not remove(engine, "cols-alias", gone).rejected
        for i in gone:
            del docs[i]
        sent([sorted(docs)[0]])  # a write after the deletions prunes their log
