"""Keeping a dataset's index current as records arrive, and searching it."""

from __future__ import annotations

import uuid
from typing import Any

import sqlalchemy as sa

from annota.errors import SearchEngineError
from annota.search.documents import documents_for
from annota.search.engine import SearchEngine, alias_name, new_index_name
from annota.search.mapping import DatasetSchema, dataset_mapping, index_meta, load_schema


def ensure_index(engine: SearchEngine, schema: DatasetSchema) -> str:
    """The dataset's alias, creating its first index behind it when there is none."""
    alias = alias_name(engine.prefix, schema.id)
    if not engine.alias_indices(alias):
        settings = {"index": {"number_of_shards": engine.settings.shards,
                              "number_of_replicas": engine.settings.replicas},
                    **engine.index_settings(vectors=bool(schema.vectors))}
        engine.create_index(new_index_name(engine.prefix, schema.id), settings,
                            dataset_mapping(engine, schema, index_meta(schema)), [alias])
    return alias


def index_records(engine: SearchEngine, connection: sa.Connection, dataset_id: Any,
                  record_ids: list[uuid.UUID]) -> int:
    """Index (or re-index) these records now, visible to search when this returns."""
    schema = load_schema(connection, dataset_id)
    alias = ensure_index(engine, schema)
    indexed = 0
    for start in range(0, len(record_ids), 500):
        docs = documents_for(connection, schema, record_ids[start:start + 500])
        operations: list[dict] = []
        for doc in docs:
            operations += [{"index": {"_index": alias, "_id": doc["id"]}}, doc]
        if operations:
            response = engine.bulk(operations)
            failed = [i["index"] for i in response["items"] if i["index"]["status"] >= 300]
            if failed:
                raise SearchEngineError(f"{len(failed)} records were not indexed: "
                                        f"{failed[0].get('error')}")
            indexed += len(docs)
    engine.refresh(alias)
    return indexed


def search_records(engine: SearchEngine, dataset_id: Any, *, text: str | None = None,
                   terms: dict[str, list] | None = None,
                   ranges: dict[str, dict[str, float]] | None = None,
                   limit: int = 20) -> list[dict[str, Any]]:
    """Full-text over the record's fields plus metadata filters (terms and ranges)."""
    must = [{"multi_match": {"query": text, "fields": ["fields.*"]}}] if text else []
    filters: list[dict] = [{"terms": {f"metadata.{k}": v}} for k, v in (terms or {}).items()]
    filters += [{"range": {f"metadata.{k}": v}} for k, v in (ranges or {}).items()]
    query = {"bool": {"must": must or [{"match_all": {}}], "filter": filters}}
    alias = alias_name(engine.prefix, dataset_id)
    if not engine.alias_indices(alias):
        return []
    hits = engine.search(alias, query, size=limit)
    return [{"id": h["_id"], "score": h.get("_score"), "fields": h["_source"]["fields"],
             "metadata": h["_source"]["metadata"]} for h in hits]
