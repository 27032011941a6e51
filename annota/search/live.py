"""Keeping a dataset's index current as records arrive (searching it: ``searching.py``)."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import sqlalchemy as sa

from annota.errors import SearchEngineError
from annota.search.bulk import remove, send
from annota.search.documents import documents_for
from annota.search.engine import SearchEngine, alias_name, new_index_name
from annota.search.lease import ReindexLease
from annota.search.mapping import DatasetSchema, dataset_mapping, index_meta, load_schema
from annota.server.db import dialect_of
from annota.server.domain import index_changes

FIRST_INDEX_WAIT = 60.0  # seconds a first import waits for a reindex of the same dataset


def ensure_index(engine: SearchEngine, schema: DatasetSchema) -> str:
    """The dataset's alias, creating its first index behind it when there is none.

    The creation holds the dataset's reindex lease, so two first imports, or a first
    import and a reindex, never put two indices behind one alias. Call it outside any
    database transaction: it may wait for a reindex.
    """
    alias = alias_name(engine.prefix, schema.id)
    if engine.alias_indices(alias):
        return alias
    lease = ReindexLease(engine, str(schema.id))
    lease.acquire(FIRST_INDEX_WAIT)
    with lease:
        if not engine.alias_indices(alias):  # another made it while we waited
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
        sent = send(engine, alias, docs)  # through the alias: its write index
        if any(_index_gone(error) for _, _, error in sent.rejected):
            # a reindex switched the alias and deleted the index this request went to:
            # send them again, through the alias to its new index
            again = {doc_id for doc_id, _, error in sent.rejected if _index_gone(error)}
            retried = send(engine, alias, [d for d in docs if d.id in again])
            sent.done += retried.done
            sent.rejected = [r for r in sent.rejected if r[0] not in again] + retried.rejected
        if sent.rejected:
            raise SearchEngineError(f"{len(sent.rejected)} records were not indexed: "
                                    f"{sent.rejected[0][2]}")
        indexed += sent.done
    engine.refresh(alias)
    return indexed


def _index_gone(error: Any) -> bool:
    return isinstance(error, dict) and error.get("type") == "index_not_found_exception"


def imported_and_indexed(db: sa.Engine, engine: SearchEngine, dataset_id: Any,
                         write: Callable[[sa.Connection], list[uuid.UUID]]
                         ) -> tuple[list[uuid.UUID], int]:
    """``write(connection)`` and the indexing of the records it returns, all or nothing.

    Both happen in one database transaction, which commits only once the index has every
    document. If indexing fails, nothing is committed, and the documents already sent are
    put back as the database has them (removed, or their old version); a client that sends
    the import again creates no duplicate. Should the engine fail that too, `annota server
    search-engine reindex --dataset-id ID` rebuilds the index from the database.
    """
    with db.connect() as connection:
        alias = ensure_index(engine, load_schema(connection, dataset_id))
    with db.connect() as connection:
        transaction = connection.begin()
        ids: list[uuid.UUID] = []
        try:
            sent_to = engine.alias_indices(alias)
            ids = write(connection)
            index_changes.note(connection, uuid.UUID(str(dataset_id)), ids)
            indexed = index_records(engine, connection, dataset_id, ids)
            if _joined_moved(connection, engine, dataset_id, alias, sent_to):
                index_records(engine, connection, dataset_id, ids)
            transaction.commit()
        except BaseException as exc:
            if transaction.is_active:
                transaction.rollback()
            if ids:
                _restore(db, engine, dataset_id, ids)
            if isinstance(exc, SearchEngineError):
                raise SearchEngineError(f"{exc}; nothing was stored: send the import again"
                                        ) from exc
            raise
    return ids, indexed


def deleted_and_unindexed(db: sa.Engine, engine: SearchEngine, dataset_id: Any,
                          record_ids: list[uuid.UUID]) -> int:
    """Delete records and their documents, all or nothing, as an import writes them: one
    transaction that commits only once the index has let go of them. Returns how many
    records were deleted."""
    from annota.server.domain import models as m

    records = m.Record.__table__
    alias = alias_name(engine.prefix, dataset_id)
    with db.connect() as connection, connection.begin():
        sent_to = engine.alias_indices(alias)
        deleted = connection.execute(sa.delete(records).where(
            records.c.dataset_id == dataset_id, records.c.id.in_(record_ids))).rowcount
        if deleted:
            index_changes.note(connection, uuid.UUID(str(dataset_id)), record_ids)
        for _ in range(2):  # once, and again if a reindex switched the alias meanwhile
            if deleted and sent_to:
                gone = remove(engine, alias, [str(i) for i in record_ids])
                if gone.rejected:
                    raise SearchEngineError(f"{len(gone.rejected)} documents were not "
                                            f"deleted: {gone.rejected[0][2]}; nothing was "
                                            "deleted")
                engine.refresh(alias)
            if not _joined_moved(connection, engine, dataset_id, alias, sent_to):
                break
            sent_to = engine.alias_indices(alias)
    return deleted


def _joined_moved(connection: sa.Connection, engine: SearchEngine, dataset_id: Any,
                  alias: str, sent_to: list[str]) -> bool:
    """Just before a writer commits: join the dataset's writes, so that a reindex's final
    check and swap wait for this commit, and it for them (the writer held nothing while it
    wrote and indexed: a reindex pauses its writers only for that check); True when the
    alias points elsewhere than when the documents were sent, so they must go again."""
    dialect_of(connection).join_writes(connection, dataset_id)
    return engine.alias_indices(alias) != sent_to


def _restore(db: sa.Engine, engine: SearchEngine, dataset_id: Any,
             ids: list[uuid.UUID]) -> None:
    """Best effort: the index made to match the database again for ``ids``."""
    try:
        with db.connect() as connection:
            schema = load_schema(connection, dataset_id)
            docs = documents_for(connection, schema, ids)
        alias = alias_name(engine.prefix, dataset_id)
        if engine.alias_indices(alias):
            kept = {doc.id for doc in docs}
            send(engine, alias, docs)
            remove(engine, alias, [str(i) for i in ids if str(i) not in kept])
            engine.refresh(alias)
    except Exception:  # noqa: BLE001, S110 - the caller's error is the one to report
        pass

