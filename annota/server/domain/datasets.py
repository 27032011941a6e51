"""Workspaces, datasets with their settings, and bulk record import.

Plain SQLAlchemy Core over the models' tables: the HTTP API, the tests and the benchmarks
create data through these functions. Input is checked whole against the dataset's
settings first (``validation.py``), so a bad request writes nothing. Record import
inserts records, responses, suggestions and vectors in one executemany per table.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from typing import Any

import sqlalchemy as sa

from annota.errors import ConflictError, NotFoundError
from annota.server.domain import models as m
from annota.server.domain.validation import (
    DatasetSettings,
    check_dataset_settings,
    check_records,
    user_ids_in,
)


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
    vector settings ``{"name", "dimensions"}``. Checked whole before anything is written;
    a dataset of the same name in the workspace is a ``ConflictError``."""
    fields, questions = list(fields), list(questions)
    metadata_properties, vector_settings = list(metadata_properties), list(vector_settings)
    check_dataset_settings(fields, questions, metadata_properties, vector_settings)
    taken = connection.execute(sa.select(m.Dataset.id).where(
        m.Dataset.workspace_id == workspace_id, m.Dataset.name == name)).first()
    if taken:
        raise ConflictError(f"the workspace has a dataset named {name!r} already")
    dataset = _stamped(
        name=name, guidelines=guidelines, status="ready", workspace_id=workspace_id,
        distribution={"strategy": "overlap", "min_submitted": min_submitted},
        last_activity_at=m.utcnow(),
    )
    connection.execute(sa.insert(m.Dataset.__table__), dataset)
    rows: list[tuple[sa.Table, dict]] = []
    for f in fields:
        rows.append((m.Field.__table__, _stamped(
            name=f["name"], title=f.get("title", f["name"]), required=f.get("required", True),
            settings={"type": f["type"]}, dataset_id=dataset["id"])))
    for q in questions:
        settings = {k: v for k, v in q.items() if k not in ("name", "title", "required",
                                                              "description")}
        rows.append((m.Question.__table__, _stamped(
            name=q["name"], title=q.get("title", q["name"]), description=q.get("description"),
            required=q.get("required", True), settings=settings, dataset_id=dataset["id"])))
    for p in metadata_properties:
        rows.append((m.MetadataProperty.__table__, _stamped(
            name=p["name"], title=p.get("title", p["name"]), settings={"type": p["type"]},
            allowed_roles=p.get("allowed_roles", ["owner", "admin", "annotator"]),
            dataset_id=dataset["id"])))
    for v in vector_settings:
        rows.append((m.VectorSettings.__table__, _stamped(
            name=v["name"], title=v.get("title", v["name"]), dimensions=int(v["dimensions"]),
            dataset_id=dataset["id"])))
    for table, row in rows:
        connection.execute(sa.insert(table), row)
    return dataset["id"]


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


def dataset_by_id_or_name(connection: sa.Connection, key: str) -> sa.Row:
    """The dataset with this id, or else the one dataset with this name (a name that
    several workspaces use is refused: give the id)."""
    try:
        return dataset_row(connection, uuid.UUID(key))
    except ValueError:
        pass
    rows = connection.execute(sa.select(m.Dataset.__table__).where(
        m.Dataset.name == key)).all()
    if len(rows) > 1:
        raise NotFoundError(f"{len(rows)} datasets are named {key!r}; give the dataset's id")
    if not rows:
        raise NotFoundError(f"no dataset with id or name {key!r}")
    return rows[0]


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
    "vectors"?: {setting name: [floats]}}``. Every record is checked against the dataset's
    settings before anything is written. A record whose ``external_id`` the dataset has
    already is updated in place: its fields and metadata, and the responses, suggestions
    and vectors it brings, replacing those of the same user, question or vector setting.
    So re-sending an import (a client that retries) never duplicates a record.
    """
    dataset_row(connection, dataset_id)
    settings = DatasetSettings.load(connection, dataset_id, user_ids_in(records))
    check_records(settings, records)
    known = _records_by_external_id(
        connection, dataset_id, [r["external_id"] for r in records if r.get("external_id")])
    tables: dict[sa.Table, list[dict]] = {
        m.Record.__table__: [], m.Response.__table__: [], m.Suggestion.__table__: [],
        m.Vector.__table__: [],
    }
    updated: list[dict] = []
    ids = []
    for record in records:
        record_id = known.get(record.get("external_id"))
        values = {"fields": record["fields"], "metadata": record.get("metadata")}
        if record_id is None:
            # "pending" until refresh_derived computes it, in this transaction
            row = _stamped(external_id=record.get("external_id"), dataset_id=dataset_id,
                           status="pending", **values)
            record_id = row["id"]
            tables[m.Record.__table__].append(row)
        else:
            updated.append({"record_id": record_id, "updated_at": m.utcnow(), **values})
        ids.append(record_id)
        for response in record.get("responses") or ():
            tables[m.Response.__table__].append(_stamped(
                values=response.get("values"), status=response.get("status", "submitted"),
                record_id=record_id, user_id=uuid.UUID(str(response["user_id"]))))
        for suggestion in record.get("suggestions") or ():
            tables[m.Suggestion.__table__].append(_stamped(
                value=suggestion["value"], score=suggestion.get("score"),
                agent=suggestion.get("agent"), type=suggestion.get("type", "model"),
                record_id=record_id,
                question_id=settings.questions[suggestion["question"]][0]))
        for name, value in (record.get("vectors") or {}).items():
            tables[m.Vector.__table__].append(_stamped(
                value=value, record_id=record_id,
                vector_settings_id=settings.vectors[name][0]))
    if updated:
        _replace(connection, updated, tables)
    for table, rows in tables.items():
        if rows:
            connection.execute(sa.insert(table), rows)
    if tables[m.Response.__table__]:
        from annota.server.domain.derived import refresh_derived

        refresh_derived(connection, dataset_id, ids)  # a finished backfill stays true
    return ids


def _records_by_external_id(connection: sa.Connection, dataset_id: uuid.UUID,
                            external_ids: list[str]) -> dict[str, uuid.UUID]:
    records = m.Record.__table__
    found: dict[str, uuid.UUID] = {}
    for start in range(0, len(external_ids), 1000):
        found.update(connection.execute(
            sa.select(records.c.external_id, records.c.id).where(
                records.c.dataset_id == dataset_id,
                records.c.external_id.in_(external_ids[start:start + 1000]))).tuples().all())
    return found


def _replace(connection: sa.Connection, updated: list[dict],
             children: dict[sa.Table, list[dict]]) -> None:
    """Update records in place, and clear the children the import brings anew (one per
    user, question, vector setting), so the inserts that follow replace them."""
    records = m.Record.__table__
    connection.execute(
        sa.update(records).where(records.c.id == sa.bindparam("record_id"))
        .values(fields=sa.bindparam("fields"), metadata=sa.bindparam("metadata"),
                updated_at=sa.bindparam("updated_at")), updated)
    mine = {row["record_id"] for row in updated}
    for table, key in ((m.Response.__table__, "user_id"),
                       (m.Suggestion.__table__, "question_id"),
                       (m.Vector.__table__, "vector_settings_id")):
        pairs = [{"r": row["record_id"], "k": row[key]}
                 for row in children[table] if row["record_id"] in mine]
        if pairs:
            connection.execute(sa.delete(table).where(
                table.c.record_id == sa.bindparam("r"), table.c[key] == sa.bindparam("k")),
                pairs)
