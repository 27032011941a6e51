"""Bulk indexing through the clients' own helper (``streaming_bulk``): chunks bounded in
documents and in bytes (a large record never makes a request the engine refuses with
413), and documents the engine refuses with 429 sent again after a backoff, counted.

Documents arrive as JSON text (``documents.Document``) and go to the engine as they are."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from annota.search.documents import Document
from annota.search.engine import SearchEngine

MAX_RETRIES = 8
CHUNK_DOCS = 500
CHUNK_BYTES = 10 * 1024 * 1024  # well under the engines' 100 MB http.max_content_length


@dataclass
class BulkResult:
    done: int = 0
    rejected: list[tuple[str, Any, Any]] = field(default_factory=list)  # (id, status, error)
    retried: int = 0  # documents sent again after the engine answered 429


def send(engine: SearchEngine, index: str, docs: list[Document], *,
         max_retries: int = MAX_RETRIES, backoff: float = 0.5,
         chunk_docs: int = CHUNK_DOCS, chunk_bytes: int = CHUNK_BYTES) -> BulkResult:
    """Index ``docs`` into ``index``."""
    return _stream(engine, index, [(d.id, d.source) for d in docs], "index", max_retries,
                   backoff, chunk_docs, chunk_bytes)


def remove(engine: SearchEngine, index: str, ids: list[str], *,
           max_retries: int = MAX_RETRIES, backoff: float = 0.5) -> BulkResult:
    """Delete the documents ``ids`` from ``index``; one already gone counts as done."""
    return _stream(engine, index, [(i, None) for i in ids], "delete", max_retries, backoff,
                   CHUNK_DOCS, CHUNK_BYTES)


def _stream(engine: SearchEngine, index: str, items: list[tuple[str, str | None]], op: str,
            max_retries: int, backoff: float, chunk_docs: int, chunk_bytes: int
            ) -> BulkResult:
    result = BulkResult()
    pending = items
    for attempt in range(max_retries + 1):
        by_id = dict(pending)
        actions = ({"_op_type": op, "_index": index, "_id": doc_id,
                    **({"_source": source} if op == "index" else {})}
                   for doc_id, source in pending)
        again = []
        for ok, item in engine.stream_bulk(actions, chunk_docs=chunk_docs,
                                           chunk_bytes=chunk_bytes):
            outcome = next(iter(item.values()))
            if not isinstance(outcome.get("status"), int):  # no answer at all (connection)
                raise engine.unreachable(outcome.get("exception")
                                         or RuntimeError(str(outcome.get("error"))))
            if ok or (op == "delete" and outcome.get("status") == 404):
                result.done += 1
            elif outcome.get("status") == 429:
                again.append((outcome["_id"], by_id[outcome["_id"]]))
            else:
                result.rejected.append((outcome["_id"], outcome.get("status"),
                                        outcome.get("error")))
        if not again:
            return result
        result.retried += len(again)
        pending = again
        time.sleep(min(30.0, backoff * 2**attempt))
    result.rejected += [(doc_id, 429, f"still refused after {max_retries} retries")
                        for doc_id, _ in pending]
    return result
