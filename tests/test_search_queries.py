"""The query model's contract on every engine: generated queries (filters, sorts, paging,
similarity under filters) against one dataset, each answer compared with the query's
meaning evaluated here, in Python, over the records as they were imported."""

from __future__ import annotations

import math
import os
import random
import uuid
from contextlib import contextmanager
from datetime import timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from annota.config import Settings
from annota.search import connect
from annota.search.live import index_records
from annota.search.query import (
    MetadataFilter,
    ResponseStatusFilter,
    ResponseValueFilter,
    SearchQuery,
    Similarity,
    Sort,
    SuggestionFilter,
    TextQuery,
    TimeFilter,
)
from annota.search.searching import metrics, progress, search
from annota.server.db import open_database
from annota.server.domain import datasets
from annota.server.domain import models as m
from annota.server.schema import migrate as migrations
from tests.conftest import (
    CLUSTER_SETTINGS,
    SEARCH_ENGINES,
    _drop_indices,
    engine_env,
    service_missing,
)
from tests.search_tools import new_user

WORDS = ["red", "green", "apple", "pear", "ripe", "sour", "sweet", "tree"]
LABELS, TOPICS, AGENTS = ["a", "b", "c"], ["x", "y", "z"], ["m1", "m2"]
SOURCES = ["web", "mail", "api"]
DIMS, RECORDS = 8, 160
METADATA_TYPES = {"source": "terms", "n": "integer", "score": "float"}


def _records(users: list[uuid.UUID]) -> list[dict]:
    rng = random.Random(7)
    out = []
    for i in range(RECORDS):
        metadata = {}
        if rng.random() < 0.9:  # one in five a list (a terms property takes either)
            metadata["source"] = (rng.choice(SOURCES) if rng.random() < 0.8
                                  else rng.sample(SOURCES, 2))
        if rng.random() < 0.85:
            metadata["n"] = rng.randint(-5, 40)
        if rng.random() < 0.85:
            metadata["score"] = rng.randint(0, 40) / 8  # exact in a float32 as in a double
        responses = []
        for user in users:
            if rng.random() < 0.6:
                responses.append({"user_id": user, "status": rng.choice(
                    ["draft", "submitted", "discarded"]), "values": {
                    "label": {"value": rng.choice(LABELS)},
                    "topics": {"value": rng.sample(TOPICS, rng.randint(1, 2))},
                    "stars": {"value": rng.randint(1, 5)}}})
        suggestions = []
        if rng.random() < 0.8:
            suggestion = {"question": "label", "value": rng.choice(LABELS)}
            if rng.random() < 0.8:
                suggestion["score"] = rng.randint(0, 8) / 8
            if rng.random() < 0.8:
                suggestion["agent"] = rng.choice(AGENTS)
            suggestions.append(suggestion)
        out.append({
            "fields": {"text": " ".join(rng.choice(WORDS) for _ in range(rng.randint(2, 6)))},
            "metadata": metadata, "external_id": f"e{i}", "responses": responses,
            "suggestions": suggestions,
            "vectors": {"emb": [rng.uniform(-1, 1) for _ in range(DIMS)]}})
    return out


class Dataset:
    """The dataset in the engine, and its records as Python saw them."""

    def __init__(self, engine, dataset_id, records, users, inserted):  # noqa: ANN001
        self.engine, self.id, self.users, self.inserted = engine, dataset_id, users, inserted
        self.records = records  # id -> record dict

    def answer(self, query: SearchQuery, vector=None):  # noqa: ANN001, ANN201
        return search(self.engine, self.id, query, METADATA_TYPES, vector)


@pytest.fixture(scope="module", params=list(SEARCH_ENGINES))
def dataset(request, tmp_path_factory):
    kind, url = _server(request)
    with built(kind, url, tmp_path_factory.mktemp("queries")) as data:
        yield data


@contextmanager
def built(kind: str, url: str, home):  # noqa: ANN001, ANN201
    """The contract's dataset, imported and indexed on one engine."""
    env = engine_env(home, f"sqlite:///{home / 'annota.db'}", url, kind)
    if url and url == os.environ.get(SEARCH_ENGINES["es-cluster"][1]):
        env.update(CLUSTER_SETTINGS)
    settings_ = Settings.from_env(env)
    migrations.migrate(settings_)
    engine = connect(settings_.search)
    db = open_database(settings_.database_url)
    try:
        with db.begin() as connection:
            users = [new_user(connection, f"user-{k}") for k in range(3)]
            workspace = datasets.create_workspace(connection, "ws")
            dataset_id = datasets.create_dataset(
                connection, workspace_id=workspace, name="contract",
                fields=[{"name": "text", "type": "text"}],
                questions=[{"name": "label", "type": "label_selection", "options": LABELS},
                           {"name": "topics", "type": "multi_label_selection",
                            "options": TOPICS},
                           {"name": "stars", "type": "rating", "options": [1, 2, 3, 4, 5]}],
                metadata_properties=[{"name": k, "type": v} for k, v in METADATA_TYPES.items()],
                vector_settings=[{"name": "emb", "dimensions": DIMS}])
            records = _records(users)
            ids = datasets.import_records(connection, dataset_id, records)
            inserted = connection.execute(
                m.Record.__table__.select().where(m.Record.__table__.c.id == ids[0])
            ).one().inserted_at
        with db.connect() as connection:
            index_records(engine, connection, dataset_id, ids)
        yield Dataset(engine, dataset_id, {str(i): r for i, r in zip(ids, records,
                                                                      strict=True)},
                      users, inserted)
    finally:
        db.dispose()
        _drop_indices(env)


def _server(request) -> tuple[str, str]:  # noqa: ANN001
    kind, variable = SEARCH_ENGINES[request.param]
    if variable is None:
        return kind, ""  # embedded
    if not os.environ.get(variable):
        service_missing(f"no {request.param}: set {variable} (`bash scripts/test` starts one)")
    return kind, os.environ[variable]


# -- the meaning of a query, in Python ---------------------------------------------------

def _value_in(value, wanted) -> bool:  # noqa: ANN001
    if isinstance(value, list):
        return any(v in wanted for v in value)
    return value in wanted


def _within(value, f) -> bool:  # noqa: ANN001
    if value is None:
        return False
    return all((
        f.ge is None or value >= f.ge, getattr(f, "gt", None) is None or value > f.gt,
        f.le is None or value <= f.le, getattr(f, "lt", None) is None or value < f.lt))


def matches(record: dict, item, inserted) -> bool:  # noqa: ANN001
    if isinstance(item, MetadataFilter):
        value = record["metadata"].get(item.property)
        if item.values is not None:
            return value is not None and _value_in(value, item.values)
        return _within(value, item)
    responses = record["responses"]
    if isinstance(item, ResponseStatusFilter):
        mine = [r for r in responses if item.user_id in (None, r["user_id"])]
        return any(r["status"] in item.statuses for r in mine) or (
            "pending" in item.statuses and not mine)
    if isinstance(item, ResponseValueFilter):
        return any(item.user_id in (None, r["user_id"])
                   and _value_in(r["values"][item.question]["value"], item.values)
                   for r in responses)
    if isinstance(item, SuggestionFilter):
        found = [s for s in record["suggestions"] if s["question"] == item.question]
        if not found:
            return False
        s = found[0]
        return ((item.values is None or _value_in(s["value"], item.values))
                and (item.score is None or _within(s.get("score"), item.score))
                and (item.agents is None or s.get("agent") in item.agents))
    if isinstance(item, TimeFilter):
        return _within(inserted, item)
    raise TypeError(item)


def expected(data: Dataset, query: SearchQuery) -> list[str]:
    found = [i for i, r in data.records.items()
             if all(matches(r, f, data.inserted) for f in query.filters)]

    def key(record_id: str):  # noqa: ANN202
        parts = []
        for sort in query.sort:
            value = _sort_value(data.records[record_id], sort)
            missing = value is None
            parts.append((missing, 0 if missing else (value if sort.order == "asc"
                                                      else -value)))
        return (*parts, record_id)

    return sorted(found, key=key)


def _sort_value(record: dict, sort: Sort):  # noqa: ANN202
    if sort.by.startswith("metadata."):
        return record["metadata"].get(sort.by.split(".", 1)[1])
    if sort.by.startswith("suggestions."):
        found = [s for s in record["suggestions"] if s["question"] == sort.by.split(".")[1]]
        return found[0].get("score") if found else None
    raise AssertionError(sort)


# -- generated queries -------------------------------------------------------------------

def _subset(items: list) -> st.SearchStrategy:
    return st.lists(st.sampled_from(items), min_size=1, max_size=len(items), unique=True
                    ).map(tuple)


EIGHTHS = st.integers(-8, 48).map(lambda k: k / 8)


@st.composite
def filters(draw, users: list[uuid.UUID], inserted):  # noqa: ANN001, ANN201
    user = st.sampled_from([None, *users])
    kind = draw(st.sampled_from(["terms", "n", "score", "status", "value", "suggestion",
                                 "time"]))
    if kind == "terms":
        return MetadataFilter(property="source", values=draw(_subset([*SOURCES, "none"])))
    if kind in ("n", "score"):
        bound = st.integers(-6, 41) if kind == "n" else EIGHTHS
        names = draw(st.lists(st.sampled_from(["ge", "gt", "le", "lt"]), min_size=1,
                              max_size=2, unique=True))
        if kind == "n" and draw(st.booleans()):
            return MetadataFilter(property="n", values=draw(st.lists(
                st.integers(-5, 40), min_size=1, max_size=5).map(tuple)))
        return MetadataFilter(property=kind, **{n: draw(bound) for n in names})
    if kind == "status":
        return ResponseStatusFilter(user_id=draw(user), statuses=draw(_subset(
            ["pending", "draft", "submitted", "discarded"])))
    if kind == "value":
        question, options = draw(st.sampled_from([("label", LABELS), ("topics", TOPICS),
                                                  ("stars", [1, 2, 3, 4, 5])]))
        return ResponseValueFilter(question=question, values=draw(_subset(options)),
                                   user_id=draw(user))
    if kind == "suggestion":
        low = draw(st.none() | st.integers(0, 8).map(lambda k: k / 8))
        return SuggestionFilter(
            question="label", values=draw(st.none() | _subset(LABELS)),
            score=None if low is None else {"ge": low},
            agents=draw(st.none() | _subset(AGENTS)))
    shift = draw(st.sampled_from([-1, 0, 1]))
    return TimeFilter(type="inserted_at", ge=inserted + timedelta(seconds=shift))


SORTS = st.lists(st.builds(Sort, by=st.sampled_from(
    ["metadata.n", "metadata.score", "suggestions.label.score"]),
    order=st.sampled_from(["asc", "desc"])), max_size=2, unique_by=lambda s: s.by).map(tuple)
RUNS = settings(max_examples=40, deadline=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture])


@RUNS
@given(data=st.data())
def test_filters_sorts_and_pages_mean_the_same_on_every_engine(dataset, data):
    chosen = tuple(data.draw(st.lists(filters(dataset.users, dataset.inserted),
                                      max_size=3)))
    sort = data.draw(SORTS)
    offset, limit = data.draw(st.integers(0, 60)), data.draw(st.integers(0, 60))
    query = SearchQuery(filters=chosen, sort=sort, offset=offset, limit=limit)
    want = expected(dataset, query)
    got = dataset.answer(query)
    assert got.total == len(want), (query, got.total, len(want))
    assert [h.id for h in got.hits] == want[offset:offset + limit], query


def _cosine(a: list[float], b: list[float]) -> float:
    dot = sum(x * y for x, y in zip(a, b, strict=True))
    return dot / (math.sqrt(sum(x * x for x in a)) * math.sqrt(sum(y * y for y in b)))


@RUNS
@given(data=st.data())
def test_similarity_under_filters_finds_the_exact_top_k(dataset, data):
    chosen = tuple(data.draw(st.lists(filters(dataset.users, dataset.inserted),
                                      max_size=2)))
    k = data.draw(st.integers(1, 20))
    order = data.draw(st.sampled_from(["most", "least"]))
    vector = [data.draw(st.integers(-8, 8)) / 8 for _ in range(DIMS)]
    if not any(vector):
        vector[0] = 1.0
    query = SearchQuery(filters=chosen, similarity=Similarity(
        vector="emb", value=tuple(vector), k=k, order=order))
    pool = expected(dataset, SearchQuery(filters=chosen))
    sign = 1 if order == "most" else -1
    exact = sorted(pool, key=lambda i: -sign * _cosine(
        dataset.records[i]["vectors"]["emb"], vector))[:k]
    got = dataset.answer(query, vector)
    ids = [h.id for h in got.hits]
    assert len(ids) == min(k, len(pool))  # filtered first: k come back when k match
    assert set(ids) <= set(pool)
    # a hit as similar as the k-th best (to float32's precision) is as good as it
    cosines = {i: sign * _cosine(dataset.records[i]["vectors"]["emb"], vector) for i in pool}
    kth = min((cosines[i] for i in exact), default=0.0)
    recall = sum(cosines[i] >= kth - 1e-5 for i in ids) / len(exact) if exact else 1.0
    if dataset.engine.kind == "sqlite":
        assert recall == 1.0, query  # exact: every hit as similar as the k-th best
    assert recall >= 0.8, (recall, query)  # approximate engines: near exact here
    for hit in got.hits:
        real = _cosine(dataset.records[hit.id]["vectors"]["emb"], vector)
        assert abs(hit.score - real) < 1e-3


def test_text_is_anded_phrases_hold_and_syntax_is_text(dataset):
    def having(*words: str) -> set[str]:
        return {i for i, r in dataset.records.items()
                if set(words) <= set(r["fields"]["text"].split())}

    both = dataset.answer(SearchQuery(text=TextQuery(q="ripe apple"), limit=1000))
    assert {h.id for h in both.hits} == having("ripe", "apple") and both.total == len(
        having("ripe", "apple"))
    phrase = dataset.answer(SearchQuery(text=TextQuery(q='"ripe apple"'), limit=1000))
    assert {h.id for h in phrase.hits} == {
        i for i, r in dataset.records.items() if " ripe apple " in f" {r['fields']['text']} "}
    odd = dataset.answer(SearchQuery(text=TextQuery(q="apple + ( -pear ~ * ||"), limit=1000))
    assert {h.id for h in odd.hits} == having("apple", "pear")  # operators are text


def test_metrics_under_filters(dataset):
    only = (MetadataFilter(property="n", ge=10),)
    pool = [dataset.records[i] for i in expected(dataset, SearchQuery(filters=only))]
    terms = metrics(dataset.engine, dataset.id, SearchQuery(filters=only), "source", "terms")
    counts: dict[str, int] = {}
    for r in pool:
        given = r["metadata"].get("source")
        for value in set(given if isinstance(given, list) else [given] if given else []):
            counts[value] = counts.get(value, 0) + 1
    assert terms["values"] == counts and terms["total"] == len(pool)
    numbers = metrics(dataset.engine, dataset.id, SearchQuery(filters=only), "score", "float")
    scores = [r["metadata"]["score"] for r in pool if "score" in r["metadata"]]
    assert (numbers["min"], numbers["max"]) == (min(scores), max(scores))


@RUNS
@given(data=st.data())
def test_progress_under_filters(dataset, data):
    """Completed records (submitted by at least the minimum, here 1) and each user's
    responses by status, under generated filters, as the records say."""
    chosen = tuple(data.draw(st.lists(filters(dataset.users, dataset.inserted),
                                      max_size=2)))
    pool = [dataset.records[i] for i in expected(dataset, SearchQuery(filters=chosen))]
    got = progress(dataset.engine, dataset.id, SearchQuery(filters=chosen), 1)
    completed = sum(any(r["status"] == "submitted" for r in rec["responses"])
                    for rec in pool)
    assert (got["total"], got["completed"], got["pending"]) == (
        len(pool), completed, len(pool) - completed)
    users: dict[str, dict[str, int]] = {}
    for rec in pool:
        for r in rec["responses"]:
            counts = users.setdefault(str(r["user_id"]), {
                "submitted": 0, "draft": 0, "discarded": 0, "pending": len(pool)})
            counts[r["status"]] += 1
            counts["pending"] -= 1
    assert got["users"] == users


def _recall_at_10(data: Dataset, vectors: list[list[float]]) -> float:
    """The mean share of the exact 10 nearest that the engine returns (a tie with the
    10th best, to float32's precision, counts as found)."""
    shares = []
    for vector in vectors:
        cosines = {i: _cosine(r["vectors"]["emb"], vector) for i, r in data.records.items()}
        kth = sorted(cosines.values(), reverse=True)[9]
        got = data.answer(SearchQuery(similarity=Similarity(
            vector="emb", value=tuple(vector), k=10)), vector)
        shares.append(sum(cosines[h.id] >= kth - 1e-5 for h in got.hits) / 10)
    return sum(shares) / len(shares)


def test_similarity_recall_at_10_against_exact(dataset, record_property):
    """Exact on the embedded engine; the cluster engines' HNSW recall, reported (and near
    exact on a dataset this small)."""
    rng = random.Random(11)
    recall = _recall_at_10(dataset, [[rng.uniform(-1, 1) for _ in range(DIMS)]
                                     for _ in range(40)])
    record_property("recall_at_10", recall)
    print(f"\nrecall@10 on {dataset.engine.kind}: {recall:.3f}")
    assert recall == 1.0 if dataset.engine.kind == "sqlite" else recall >= 0.9


def test_text_ranking_overlaps_elasticsearch(tmp_path_factory, record_property):
    """The same text queries on Elasticsearch 8 and the embedded engine: the same records
    match (the same total), and the top 10 by relevance (bm25 on both, over different
    statistics: Lucene's per shard, FTS5's per table) overlap; the overlap is reported."""
    url = os.environ.get(SEARCH_ENGINES["elasticsearch8"][1])
    if not url:
        service_missing("no Elasticsearch 8: set ANNOTA_TEST_ELASTICSEARCH_URL")
    rng = random.Random(5)
    texts = [" ".join(rng.sample(WORDS, rng.randint(1, 2))) for _ in range(30)]
    with built("elasticsearch", url, tmp_path_factory.mktemp("rank-es")) as es, \
            built("sqlite", "", tmp_path_factory.mktemp("rank-embedded")) as embedded:
        overlaps = []
        for text in texts:
            query = SearchQuery(text=TextQuery(q=text), limit=10)
            theirs, ours = es.answer(query), embedded.answer(query)
            assert ours.total == theirs.total, text
            # records are the same (same seed), their ids are not: compare external ids
            top = [{h.source["external_id"] for h in r.hits} for r in (theirs, ours)]
            overlaps.append(len(top[0] & top[1]) / max(1, len(top[0])))
    overlap = sum(overlaps) / len(overlaps)
    record_property("top10_overlap", overlap)
    print(f"\ntop-10 overlap with Elasticsearch 8 over {len(texts)} text queries: {overlap:.2f}")
    assert overlap > 0.3  # the same words rank the same records high, mostly


@pytest.mark.parametrize("order", ["asc", "desc"])
def test_a_sort_by_a_property_some_records_hold_a_list_of(dataset, order):
    """Sorted by a terms property that some records hold a list of: a list sorts by its
    least value ascending, by its greatest descending (as the clusters do); records
    without the property last; then by id."""
    def key(record_id: str) -> tuple:
        given = dataset.records[record_id]["metadata"].get("source")
        if given is None:
            return (1, "", record_id)
        values = given if isinstance(given, list) else [given]
        best = min(values) if order == "asc" else max(values)
        return (0, best, record_id)

    ids = sorted(dataset.records, key=key)
    if order == "desc":  # greatest first, ties by id ascending, the missing still last
        present = [i for i in ids if key(i)[0] == 0]
        ids = sorted(present, key=lambda i: (tuple(-ord(c) for c in key(i)[1]), i)) + [
            i for i in ids if key(i)[0] == 1]
    got = dataset.answer(SearchQuery(sort=(Sort(by="metadata.source", order=order),),
                                     limit=len(ids)))
    assert [h.id for h in got.hits] == ids
