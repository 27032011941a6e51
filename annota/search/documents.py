"""Search documents, built by the database as JSON text: one query per batch.

A document is the record with its responses, suggestions and vectors. The database
renders it (``server/db/json_sql.py`` holds each dialect's JSON functions), so building
costs Python almost nothing, and the text goes to the engine as it is. The same query
serves a reindex (keyset-paginated by id, each batch in a short transaction of its own)
and live indexing (given ids, inside the writer's transaction).

A document's version is its ``updated_at`` as the document carries it, rendered by the
same SQL expression, so the index and the database compare exactly.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any, NamedTuple

import sqlalchemy as sa

from annota.search.mapping import DatasetSchema
from annota.server.db import dialect_of
from annota.server.domain import models as m

RECORDS = m.Record.__table__


class Document(NamedTuple):
    id: str
    version: str
    source: str  # the document as JSON text


def count_records(connection: sa.Connection, dataset_id: uuid.UUID) -> int:
    return connection.execute(
        sa.select(sa.func.count()).select_from(RECORDS).where(RECORDS.c.dataset_id == dataset_id)
    ).scalar_one()


def _document(j: Any) -> str:
    """The JSON document of record ``r``; ``:field_names`` and ``:question_names`` are the
    members kept."""
    fields = j.object_of("f.key", j.member("r.fields", "f"),
                         f"FROM {j.members('r.fields', 'f')} WHERE f.key IN :field_names")
    answers = 's."values"'
    values = j.object_of("v.key", j.inner_value(answers, "v"),
                         f"FROM {j.members(answers, 'v')} WHERE v.key IN :question_names")
    responses = j.array_of(
        j.object(("user_id", j.uuid("s.user_id")), ("status", "s.status"),
                 ("values", values), ("updated_at", j.timestamp("s.updated_at"))),
        "FROM responses s WHERE s.record_id = r.id")
    # the record is complete once this reaches the dataset's minimum (as its status is)
    submitted = ("(SELECT count(*) FROM responses s WHERE s.record_id = r.id "
                 "AND s.status = 'submitted')")
    suggestions = j.object_of(
        "q.name", j.object(("value", j.value("g.value")), ("score", j.value("g.score")),
                           ("agent", "g.agent")),
        "FROM suggestions g JOIN questions q ON q.id = g.question_id "
        "WHERE g.record_id = r.id AND q.dataset_id = r.dataset_id")
    vectors = j.object_of(
        "vs.name", j.value("v.value"),
        "FROM vectors v JOIN vector_settings vs ON vs.id = v.vector_settings_id "
        "WHERE v.record_id = r.id AND vs.dataset_id = r.dataset_id")
    return j.object(
        ("id", j.uuid("r.id")), ("dataset_id", j.uuid("r.dataset_id")),
        ("external_id", "r.external_id"), ("inserted_at", j.timestamp("r.inserted_at")),
        ("updated_at", j.timestamp("r.updated_at")), ("fields", fields),
        ("metadata", j.object_or_empty("r.metadata")), ("responses", responses),
        ("submitted", submitted), ("suggestions", suggestions), ("vectors", vectors))


def _select(connection: sa.Connection, where: str, *, source: bool,
            **params: Any) -> list[sa.Row]:
    """(id, version[, source]) of the records of ``where`` (about ``r``), each parameter
    bound with its type: ``dataset``, ``after`` and the list ``ids`` are UUIDs."""
    j = dialect_of(connection).json
    columns = [f"{j.uuid('r.id')} AS id", f"{j.timestamp('r.updated_at')} AS version"]
    if source:
        columns.append(f"{j.text(_document(j))} AS source")
    query = sa.text(f"SELECT {', '.join(columns)} FROM records r WHERE {where}").bindparams(
        *(sa.bindparam(k, type_=sa.Uuid) for k in ("dataset", "after") if k in params),
        *(sa.bindparam(k, expanding=True, type_=sa.Uuid if k == "ids" else None)
          for k in ("ids", "field_names", "question_names") if k in params))
    return connection.execute(query, params).all()


def _members(schema: DatasetSchema) -> dict[str, list[str]]:
    """The dataset's field and question names, bound so that members the dataset no
    longer declares stay out of its documents."""
    return {"field_names": sorted(schema.fields) or [""],
            "question_names": sorted(schema.question_types) or [""]}


def _pages(db: sa.Engine, dataset_id: uuid.UUID, batch_size: int, *, source: bool,
           **params: Any) -> Iterator[list[sa.Row]]:
    """The dataset's records by keyset pagination on (dataset_id, id), one short
    transaction per page."""
    last: uuid.UUID | None = None
    while True:
        after = "" if last is None else "AND r.id > :after "
        where = f"r.dataset_id = :dataset {after}ORDER BY r.id LIMIT {int(batch_size)}"
        keys = {"dataset": dataset_id, **({"after": last} if last else {}), **params}
        with db.connect() as connection:
            rows = _select(connection, where, source=source, **keys)
        if not rows:
            return
        yield rows
        last = uuid.UUID(rows[-1][0])


def document_batches(db: sa.Engine, schema: DatasetSchema,
                     batch_size: int) -> Iterator[list[Document]]:
    """Every record of the dataset as documents, ``batch_size`` at a time, by primary key."""
    for rows in _pages(db, schema.id, batch_size, source=True, **_members(schema)):
        yield [Document(*row) for row in rows]


def documents_for(connection: sa.Connection, schema: DatasetSchema,
                  ids: list[uuid.UUID]) -> list[Document]:
    """Documents for the given record ids that still exist (in the dataset)."""
    if not ids:
        return []
    return [Document(*row) for row in _select(
        connection, "r.dataset_id = :dataset AND r.id IN :ids", source=True,
        dataset=schema.id, ids=list(ids), **_members(schema))]


def record_version_batches(db: sa.Engine, dataset_id: uuid.UUID,
                           batch_size: int) -> Iterator[tuple[str, str]]:
    """Every record of the dataset as (id, its version as its document carries it), in id
    order, read ``batch_size`` at a time. The version is ``updated_at``, which every write
    of a record (or of the responses, suggestions and vectors it brings) moves."""
    for rows in _pages(db, dataset_id, batch_size, source=False):
        yield from ((i, version) for i, version in rows)


def record_versions(connection: sa.Connection, dataset_id: uuid.UUID,
                    ids: list[uuid.UUID]) -> dict[str, str]:
    """{id: version} of the given records that exist (in the dataset)."""
    found: dict[str, str] = {}
    for start in range(0, len(ids), 1000):
        found.update((i, v) for i, v in _select(
            connection, "r.dataset_id = :dataset AND r.id IN :ids", source=False,
            dataset=dataset_id, ids=list(ids[start:start + 1000])))
    return found
