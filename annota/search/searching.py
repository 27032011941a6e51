"""Answering annota's queries (``query.py``) from a dataset's index on Elasticsearch or
OpenSearch: records, similar records, metrics of a metadata property, and progress."""

from __future__ import annotations

import uuid
from typing import Any

import sqlalchemy as sa

from annota.search import dsl
from annota.search.engine import SearchEngine, alias_name
from annota.search.query import Hit, SearchQuery, SearchResult, Sort
from annota.server.domain import models as m
from annota.server.domain.validation import DatasetSettings, Problems

_SOURCE = {"excludes": ["vectors"]}  # a hit carries its record, not its embeddings


def search(engine: SearchEngine, dataset_id: uuid.UUID | str, query: SearchQuery,
           metadata_types: dict[str, str], vector: list[float] | None = None
           ) -> SearchResult:
    """The records matching ``query``, with their total. For a similarity search,
    ``vector`` is the vector to compare with (the query's, or its record's)."""
    alias = alias_name(engine.prefix, dataset_id)
    if not engine.alias_indices(alias):
        return SearchResult(total=0, hits=())
    if query.similarity is not None:
        return _similar(engine, alias, query, vector)
    sorts = query.sort or ((Sort(by="relevance", order="desc"),) if query.text else ())
    response = engine.run_search(alias, {
        "query": dsl.bool_query(query), "from": query.offset, "size": query.limit,
        "sort": dsl.sort_clauses(sorts, metadata_types), "track_total_hits": True,
        "_source": _SOURCE})
    hits = response["hits"]
    return SearchResult(total=_total(hits), hits=tuple(
        Hit(id=h["_id"], score=h.get("_score"), source=h["_source"]) for h in hits["hits"]))


def _similar(engine: SearchEngine, alias: str, query: SearchQuery,
             vector: list[float] | None) -> SearchResult:
    """The k most (or least) similar records by cosine similarity. The least similar to v
    are the most similar to -v; an engine scores cosine c as (1 + c) / 2."""
    similarity = query.similarity
    assert similarity is not None and vector is not None
    sign = 1.0 if similarity.order == "most" else -1.0
    body = engine.similarity_body(similarity.vector, [sign * v for v in vector],
                                  similarity.k, dsl.filter_clauses(query.filters))
    response = engine.run_search(alias, {**body, "_source": _SOURCE})
    hits = []
    for h in response["hits"]["hits"]:
        cosine = sign * (2.0 * h["_score"] - 1.0)
        if similarity.threshold is not None and sign * (cosine - similarity.threshold) < 0:
            continue  # most: at least the threshold; least: at most
        hits.append(Hit(id=h["_id"], score=cosine, source=h["_source"]))
    return SearchResult(total=len(hits), hits=tuple(hits))


def metrics(engine: SearchEngine, dataset_id: uuid.UUID | str, query: SearchQuery,
            property_name: str, kind: str) -> dict[str, Any]:
    """A metadata property over the records matching ``query``'s filters: value counts
    (terms) or min and max (integer, float)."""
    total, aggs = _aggregated(engine, dataset_id, query,
                              dsl.metrics_aggregation(kind, property_name))
    if kind == "terms":
        buckets = aggs.get("values", {}).get("buckets", [])
        return {"type": kind, "total": total,
                "values": {str(b["key"]): b["doc_count"] for b in buckets}}
    low, high = (aggs.get(n, {}).get("value") for n in ("min", "max"))
    if kind == "integer":
        low, high = (None if v is None else int(v) for v in (low, high))
    return {"type": kind, "total": total, "min": low, "max": high}


def progress(engine: SearchEngine, dataset_id: uuid.UUID | str, query: SearchQuery,
             min_submitted: int) -> dict[str, Any]:
    """Of the records matching ``query``'s filters: how many are completed and pending,
    and per user who answered any, their responses by status and the records they have
    not answered (``pending``)."""
    total, aggs = _aggregated(engine, dataset_id, query,
                              dsl.progress_aggregation(min_submitted))
    completed = aggs.get("completed", {}).get("doc_count", 0)
    users = {}
    for bucket in aggs.get("responses", {}).get("users", {}).get("buckets", []):
        statuses = {s["key"]: s["doc_count"] for s in bucket["statuses"]["buckets"]}
        users[str(bucket["key"])] = {**{s: statuses.get(s, 0) for s in (
            "submitted", "draft", "discarded")}, "pending": total - bucket["doc_count"]}
    return {"total": total, "completed": completed, "pending": total - completed,
            "users": users}


def _aggregated(engine: SearchEngine, dataset_id: uuid.UUID | str, query: SearchQuery,
                aggs: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    """(the count, the aggregations) of the records matching ``query``'s filters; (0, {})
    when the dataset has no index yet."""
    alias = alias_name(engine.prefix, dataset_id)
    if not engine.alias_indices(alias):
        return 0, {}
    response = engine.run_search(alias, {
        "query": {"bool": {"filter": dsl.filter_clauses(query.filters)}}, "size": 0,
        "track_total_hits": True, "aggs": aggs})
    return _total(response["hits"]), response.get("aggregations", {})


def _total(hits: dict[str, Any]) -> int:
    total = hits.get("total", 0)
    return total["value"] if isinstance(total, dict) else int(total)


def query_vector(connection: sa.Connection, query: SearchQuery, settings: DatasetSettings,
                 root: tuple[str | int, ...] = ()) -> list[float] | None:
    """The vector a similarity search compares with: its own, or its record's."""
    similarity = query.similarity
    if similarity is None:
        return None
    if similarity.value is not None:
        return list(similarity.value)
    vectors = m.Vector.__table__
    settings_id = settings.vectors[similarity.vector][0]
    value = connection.execute(sa.select(vectors.c.value).where(
        vectors.c.record_id == similarity.record_id,
        vectors.c.vector_settings_id == settings_id)).scalar()
    if value is None:
        problems = Problems()
        problems.add((*root, "similarity", "record_id"),
                     f"no record of the dataset has this id and a {similarity.vector!r} vector")
        problems.check()
    return list(value)


def item(hit: Hit) -> dict[str, Any]:
    """A hit as the API returns it."""
    return {"id": hit.id, "score": hit.score, **{k: hit.source.get(k) for k in (
        "external_id", "fields", "metadata", "responses", "suggestions", "inserted_at",
        "updated_at")}}
