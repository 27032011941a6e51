"""Answering annota's queries (``query.py``) from a dataset's index, on whichever engine:
records, similar records, metrics of a metadata property, and progress. Each engine
compiles the query its own way (``SearchEngine.find``, ``nearest``, ``metrics``,
``progress``); what is the same on all of them is here."""

from __future__ import annotations

import uuid
from typing import Any

import sqlalchemy as sa

from annota.search.engine import SearchEngine, alias_name
from annota.search.query import Hit, SearchQuery, SearchResult
from annota.server.domain import models as m
from annota.server.domain.validation import DatasetSettings, Problems


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
    return engine.find(alias, query, metadata_types)


def _similar(engine: SearchEngine, alias: str, query: SearchQuery,
             vector: list[float] | None) -> SearchResult:
    """The k most (or least) similar records by cosine similarity: the least similar to v
    are the most similar to -v."""
    similarity = query.similarity
    assert similarity is not None and vector is not None
    sign = 1.0 if similarity.order == "most" else -1.0
    hits = []
    for h in engine.nearest(alias, similarity.vector, [sign * v for v in vector],
                            similarity.k, query.filters):
        cosine = sign * (h.score or 0.0)
        if similarity.threshold is not None and sign * (cosine - similarity.threshold) < 0:
            continue  # most: at least the threshold; least: at most
        hits.append(Hit(id=h.id, score=cosine, source=h.source))
    return SearchResult(total=len(hits), hits=tuple(hits))


def metrics(engine: SearchEngine, dataset_id: uuid.UUID | str, query: SearchQuery,
            property_name: str, kind: str) -> dict[str, Any]:
    """A metadata property over the records matching ``query``'s filters: value counts
    (terms) or min and max (integer, float)."""
    alias = alias_name(engine.prefix, dataset_id)
    if not engine.alias_indices(alias):
        total, found = 0, {}
    else:
        total, found = engine.metrics(alias, query.filters, property_name, kind)
    if kind == "terms":
        return {"type": kind, "total": total, "values": found.get("values", {})}
    low, high = found.get("min"), found.get("max")
    if kind == "integer":
        low, high = (None if v is None else int(v) for v in (low, high))
    return {"type": kind, "total": total, "min": low, "max": high}


def progress(engine: SearchEngine, dataset_id: uuid.UUID | str, query: SearchQuery,
             min_submitted: int) -> dict[str, Any]:
    """Of the records matching ``query``'s filters: how many are completed and pending,
    and per user who answered any, their responses by status and the records they have
    not answered (``pending``)."""
    alias = alias_name(engine.prefix, dataset_id)
    total, completed, by_user = (engine.progress(alias, query.filters, min_submitted)
                                 if engine.alias_indices(alias) else (0, 0, {}))
    users = {user: {**{s: statuses.get(s, 0) for s in ("submitted", "draft", "discarded")},
                    "pending": total - sum(statuses.values())}
             for user, statuses in by_user.items()}
    return {"total": total, "completed": completed, "pending": total - completed,
            "users": users}


def answer(connection: sa.Connection, engine: SearchEngine, dataset_id: uuid.UUID,
           query: SearchQuery, root: tuple[str | int, ...] = ()) -> SearchResult:
    """``query`` checked against the dataset (``InvalidInputError`` with every problem's
    location under ``root``), then answered."""
    from annota.search.query import check_query

    dataset = DatasetSettings.load(connection, dataset_id)
    check_query(query, dataset, root)
    vector = query_vector(connection, query, dataset, root)
    return search(engine, dataset_id, query, dataset.metadata, vector)


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
