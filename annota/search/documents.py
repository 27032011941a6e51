"""Search documents from the database: keyset-paginated, a few queries per batch.

Each batch reads its records in a short transaction of its own (no OFFSET, no long
cursor), then loads the batch's responses, suggestions and vectors with one query each.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from annota.search.mapping import DatasetSchema
from annota.server.domain import models as m

RECORDS, RESPONSES = m.Record.__table__, m.Response.__table__
SUGGESTIONS, VECTORS = m.Suggestion.__table__, m.Vector.__table__


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def count_records(connection: sa.Connection, dataset_id: uuid.UUID) -> int:
    return connection.execute(
        sa.select(sa.func.count()).select_from(RECORDS).where(RECORDS.c.dataset_id == dataset_id)
    ).scalar_one()


def build_documents(connection: sa.Connection, schema: DatasetSchema,
                    records: list[sa.Row]) -> list[dict[str, Any]]:
    ids = [r.id for r in records]
    responses: dict[uuid.UUID, list] = {i: [] for i in ids}
    suggestions: dict[uuid.UUID, dict] = {i: {} for i in ids}
    vectors: dict[uuid.UUID, dict] = {i: {} for i in ids}
    questions = {name for name, _ in schema.questions.values()}
    for row in connection.execute(sa.select(
        RESPONSES.c.record_id, RESPONSES.c.user_id, RESPONSES.c.status, RESPONSES.c["values"],
        RESPONSES.c.updated_at,
    ).where(RESPONSES.c.record_id.in_(ids))):
        values = {q: v.get("value") if isinstance(v, dict) else v
                  for q, v in (row.values or {}).items() if q in questions}
        responses[row.record_id].append({
            "user_id": str(row.user_id) if row.user_id else None, "status": row.status,
            "values": values, "updated_at": _iso(row.updated_at),
        })
    for row in connection.execute(sa.select(
        SUGGESTIONS.c.record_id, SUGGESTIONS.c.question_id, SUGGESTIONS.c.value,
        SUGGESTIONS.c.score, SUGGESTIONS.c.agent,
    ).where(SUGGESTIONS.c.record_id.in_(ids))):
        name = schema.questions.get(row.question_id, (None,))[0]
        if name:
            suggestions[row.record_id][name] = {"value": row.value, "score": row.score,
                                                "agent": row.agent}
    for row in connection.execute(sa.select(
        VECTORS.c.record_id, VECTORS.c.vector_settings_id, VECTORS.c.value,
    ).where(VECTORS.c.record_id.in_(ids))):
        name = schema.vectors.get(row.vector_settings_id, (None,))[0]
        if name:
            vectors[row.record_id][name] = row.value
    return [
        {
            "id": str(r.id),
            "dataset_id": str(r.dataset_id),
            "external_id": r.external_id,
            "inserted_at": _iso(r.inserted_at),
            "updated_at": _iso(r.updated_at),
            "fields": {k: v for k, v in (r.fields or {}).items() if k in schema.fields},
            "metadata": r.metadata or {},
            "responses": responses[r.id],
            "suggestions": suggestions[r.id],
            "vectors": vectors[r.id],
        }
        for r in records
    ]


def _record_columns() -> list:
    return [RECORDS.c.id, RECORDS.c.dataset_id, RECORDS.c.external_id, RECORDS.c.fields,
            RECORDS.c.metadata, RECORDS.c.inserted_at, RECORDS.c.updated_at]


def document_batches(db: sa.Engine, schema: DatasetSchema,
                     batch_size: int) -> Iterator[list[dict[str, Any]]]:
    """Every record of the dataset as documents, ``batch_size`` at a time, by primary key."""
    last: uuid.UUID | None = None
    while True:
        query = (sa.select(*_record_columns()).where(RECORDS.c.dataset_id == schema.id)
                 .order_by(RECORDS.c.id).limit(batch_size))
        if last is not None:
            query = query.where(RECORDS.c.id > last)
        with db.connect() as connection:  # one short transaction per batch
            records = connection.execute(query).all()
            if not records:
                return
            docs = build_documents(connection, schema, records)
        yield docs
        last = records[-1].id


def documents_for(connection: sa.Connection, schema: DatasetSchema,
                  ids: list[uuid.UUID]) -> list[dict[str, Any]]:
    """Documents for the given record ids that still exist."""
    records = connection.execute(
        sa.select(*_record_columns()).where(RECORDS.c.id.in_(ids))
    ).all()
    return build_documents(connection, schema, records) if records else []


def record_version_batches(db: sa.Engine, dataset_id: uuid.UUID,
                           batch_size: int) -> Iterator[tuple[str, str | None]]:
    """Every record of the dataset as (id, its version as the documents carry it), in id
    order, read ``batch_size`` at a time. The version is ``updated_at``, which every write
    of a record (or of the responses, suggestions and vectors it brings) moves."""
    last: uuid.UUID | None = None
    while True:
        query = (sa.select(RECORDS.c.id, RECORDS.c.updated_at)
                 .where(RECORDS.c.dataset_id == dataset_id).order_by(RECORDS.c.id)
                 .limit(batch_size))
        if last is not None:
            query = query.where(RECORDS.c.id > last)
        with db.connect() as connection:
            rows = connection.execute(query).all()
        if not rows:
            return
        yield from ((str(i), _iso(updated)) for i, updated in rows)
        last = rows[-1][0]
