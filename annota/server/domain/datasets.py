"""Workspaces, datasets with their settings, and bulk record import.

Plain SQLAlchemy Core over the models' tables: the HTTP API, the tests and the benchmarks
create data through these functions. Record import inserts records, responses,
suggestions and vectors in one executemany per table.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from typing import Any

import sqlalchemy as sa

from annota.errors import InvalidInputError, NotFoundError
from annota.server.domain import models as m

QUESTION_TYPES = ("label_selection", "multi_label_selection", "rating", "text", "ranking",
                  "span")
METADATA_TYPES = ("terms", "integer", "float")
FIELD_TYPES = ("text", "image", "chat", "custom")
RESPONSE_STATUSES = ("draft", "submitted", "discarded")


def _stamped(**values: Any) -> dict[str, Any]:
    now = m.utcnow()
    return {"id": uuid.uuid4(), "inserted_at": now, "updated_at": now, **values}


def create_workspace(connection: sa.Connection, name: str) -> uuid.UUID:
    row = _stamped(name=name)
    connection.execute(sa.insert(m.Workspace.__table__), row)
    return row["id"]


def create_dataset(
    connection: sa.Connection,
    *,
    workspace_id: uuid.UUID,
    name: str,
    fields: Iterable[dict],
    questions: Iterable[dict],
    metadata_properties: Iterable[dict] = (),
    vector_settings: Iterable[dict] = (),
    guidelines: str | None = None,
    min_submitted: int = 1,
) -> uuid.UUID:
    """A ready dataset. Settings are dicts: ``{"name", "title"?, "type", ...}``;
    vector settings ``{"name", "dimensions"}``."""
    dataset = _stamped(
        name=name, guidelines=guidelines, status="ready", workspace_id=workspace_id,
        distribution={"strategy": "overlap", "min_submitted": min_submitted},
        last_activity_at=m.utcnow(),
    )
    connection.execute(sa.insert(m.Dataset.__table__), dataset)
    rows: list[tuple[sa.Table, dict]] = []
    for f in fields:
        _check_type("field", f, FIELD_TYPES)
        rows.append((m.Field.__table__, _stamped(
            name=f["name"], title=f.get("title", f["name"]), required=f.get("required", True),
            settings={"type": f["type"]}, dataset_id=dataset["id"])))
    for q in questions:
        _check_type("question", q, QUESTION_TYPES)
        settings = {k: v for k, v in q.items() if k not in ("name", "title", "required",
                                                              "description")}
        rows.append((m.Question.__table__, _stamped(
            name=q["name"], title=q.get("title", q["name"]), description=q.get("description"),
            required=q.get("required", True), settings=settings, dataset_id=dataset["id"])))
    for p in metadata_properties:
        _check_type("metadata property", p, METADATA_TYPES)
        rows.append((m.MetadataProperty.__table__, _stamped(
            name=p["name"], title=p.get("title", p["name"]), settings={"type": p["type"]},
            allowed_roles=p.get("allowed_roles", ["owner", "admin", "annotator"]),
            dataset_id=dataset["id"])))
    for v in vector_settings:
        if int(v.get("dimensions", 0)) < 1:
            raise InvalidInputError(f"vector setting {v.get('name')!r} needs dimensions >= 1")
        rows.append((m.VectorSettings.__table__, _stamped(
            name=v["name"], title=v.get("title", v["name"]), dimensions=int(v["dimensions"]),
            dataset_id=dataset["id"])))
    for table, row in rows:
        connection.execute(sa.insert(table), row)
    return dataset["id"]


def _check_type(what: str, item: dict, allowed: tuple[str, ...]) -> None:
    if not item.get("name"):
        raise InvalidInputError(f"a {what} needs a name")
    if item.get("type") not in allowed:
        raise InvalidInputError(
            f"{what} {item['name']!r} has type {item.get('type')!r}; "
            f"expected one of {', '.join(allowed)}"
        )


def dataset_row(connection: sa.Connection, dataset_id: uuid.UUID | str) -> sa.Row:
    try:
        key = dataset_id if isinstance(dataset_id, uuid.UUID) else uuid.UUID(str(dataset_id))
    except ValueError:
        raise NotFoundError(f"no dataset with id {dataset_id!r} (not a UUID)") from None
    row = connection.execute(
        sa.select(m.Dataset.__table__).where(m.Dataset.id == key)
    ).one_or_none()
    if row is None:
        raise NotFoundError(f"no dataset with id {dataset_id}")
    return row


def _names(connection: sa.Connection, model: type, dataset_id: uuid.UUID) -> dict[str, Any]:
    rows = connection.execute(sa.select(model.name, model.id).where(model.dataset_id == dataset_id))
    return dict(rows.all())


def import_records(
    connection: sa.Connection, dataset_id: uuid.UUID, records: list[dict]
) -> list[uuid.UUID]:
    """Insert records with their responses, suggestions and vectors; returns the ids.

    A record is ``{"fields": {...}, "metadata"?: {...}, "external_id"?: str,
    "responses"?: [{"user_id", "values": {question: {"value": v}}, "status"}],
    "suggestions"?: [{"question", "value", "score"?, "agent"?}],
    "vectors"?: {setting name: [floats]}}``.
    """
    dataset_row(connection, dataset_id)
    questions = _names(connection, m.Question, dataset_id)
    vectors = _names(connection, m.VectorSettings, dataset_id)
    tables: dict[sa.Table, list[dict]] = {
        m.Record.__table__: [], m.Response.__table__: [], m.Suggestion.__table__: [],
        m.Vector.__table__: [],
    }
    ids = []
    for record in records:
        if not isinstance(record.get("fields"), dict) or not record["fields"]:
            raise InvalidInputError("every record needs a non-empty 'fields' object")
        row = _stamped(fields=record["fields"], metadata=record.get("metadata"),
                       external_id=record.get("external_id"), dataset_id=dataset_id)
        ids.append(row["id"])
        tables[m.Record.__table__].append(row)
        for response in record.get("responses", ()):
            unknown = set(response.get("values") or {}) - set(questions)
            if unknown:
                raise InvalidInputError(f"response to unknown questions: {sorted(unknown)}")
            try:
                user_id = uuid.UUID(str(response["user_id"]))
            except (KeyError, ValueError):
                raise InvalidInputError("every response needs a user_id (a UUID)") from None
            if response.get("status", "submitted") not in RESPONSE_STATUSES:
                raise InvalidInputError(f"response status must be one of "
                                        f"{', '.join(RESPONSE_STATUSES)}")
            tables[m.Response.__table__].append(_stamped(
                values=response.get("values"), status=response.get("status", "submitted"),
                record_id=row["id"], user_id=user_id))
        for suggestion in record.get("suggestions", ()):
            if suggestion.get("question") not in questions:
                raise InvalidInputError(f"suggestion for unknown question "
                                        f"{suggestion.get('question')!r}")
            tables[m.Suggestion.__table__].append(_stamped(
                value=suggestion["value"], score=suggestion.get("score"),
                agent=suggestion.get("agent"), type=suggestion.get("type", "model"),
                record_id=row["id"], question_id=questions[suggestion["question"]]))
        for name, value in (record.get("vectors") or {}).items():
            if name not in vectors:
                raise InvalidInputError(f"vector for unknown vector setting {name!r}")
            tables[m.Vector.__table__].append(_stamped(
                value=value, record_id=row["id"], vector_settings_id=vectors[name]))
    for table, rows in tables.items():
        if rows:
            connection.execute(sa.insert(table), rows)
    if tables[m.Response.__table__]:
        from annota.server.domain.derived import refresh_derived

        refresh_derived(connection, dataset_id, ids)  # a finished backfill stays true
    return ids
