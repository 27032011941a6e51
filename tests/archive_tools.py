"""Generated instances for the archive tests, written straight into a database at head."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from hypothesis import strategies as st

from annota.config import Settings
from annota.server import db
from annota.server.archive.snapshot import Figures, figures_of, reflect, snapshot
from annota.server.archive.tables import Scope
from annota.server.domain import models as m
from annota.urls import DatabaseURL

T0 = datetime(2025, 1, 2, 3, 4, 5, 678901)
# text that every database keeps: no NUL (PostgreSQL refuses it), no lone surrogates
TEXT = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"),
               max_size=30)
FLOATS = st.one_of(st.floats(allow_nan=False, allow_infinity=False),
                   st.sampled_from([1.7976931348623157e308, 5e-324, -0.0, 0.1, 1e-07,
                                    2.0 ** 53 + 1]))
INTS = st.integers(-(2 ** 63), 2 ** 63 - 1)
JSON = st.recursive(st.none() | st.booleans() | FLOATS | INTS | TEXT,
                    lambda inner: st.lists(inner, max_size=4)
                    | st.dictionaries(TEXT, inner, max_size=4), max_leaves=12)
STAMPS = st.integers(0, 10 ** 9).map(lambda s: T0 + timedelta(microseconds=s * 997))


@st.composite
def instances(draw: st.DrawFn) -> dict[str, list[dict[str, Any]]]:
    """Users, workspaces, datasets with fields, questions, metadata properties, vector
    settings, records, responses, suggestions and vectors: rows per table."""
    rows: dict[str, list[dict[str, Any]]] = {}
    salt = draw(st.integers(0, 2 ** 64))  # ids differ between examples, never within one

    def add(table: str, **values: Any) -> uuid.UUID:
        values.setdefault("id", uuid.UUID(int=(salt << 32) + sum(map(len, rows.values()))
                                          + 1))
        values.setdefault("inserted_at", draw(STAMPS))
        values.setdefault("updated_at", draw(STAMPS))
        rows.setdefault(table, []).append(values)
        return values["id"]

    users = [add("users", first_name=draw(TEXT), last_name=draw(st.none() | TEXT),
                 username=f"user-{i}-{draw(TEXT)}", role="annotator",
                 api_key=f"sha256:{i}-{draw(TEXT)}", password_hash=draw(TEXT))
             for i in range(draw(st.integers(0, 3)))]
    for w in range(draw(st.integers(1, 2))):
        workspace = add("workspaces", name=f"ws-{w}-{draw(TEXT)}")
        for user in users[: draw(st.integers(0, len(users)))]:
            add("workspaces_users", workspace_id=workspace, user_id=user)
        for d in range(draw(st.integers(0, 2))):
            dataset = add("datasets", name=f"ds-{d}-{draw(TEXT)}", guidelines=draw(
                st.none() | TEXT), status="ready", workspace_id=workspace,
                distribution={"strategy": "overlap", "min_submitted": draw(st.integers(1, 2))},
                allow_extra_metadata=draw(st.booleans()), last_activity_at=draw(STAMPS),
                completed_records=draw(st.none() | st.integers(0, 10)))
            add("fields", name="text", title=draw(TEXT), required=True,
                settings={"type": "text", "extra": draw(JSON)}, dataset_id=dataset)
            question = add("questions", name="label", title=draw(TEXT), description=None,
                           required=True, settings={"type": "label_selection",
                                                    "options": ["a", "b"]},
                           dataset_id=dataset)
            add("metadata_properties", name="m", title="M", settings={"type": "float"},
                allowed_roles=["admin"], dataset_id=dataset)
            vectors = add("vector_settings", name="v", title="V", dimensions=3,
                          dataset_id=dataset)
            for _ in range(draw(st.integers(0, 4))):
                record = add("records", fields={"text": draw(TEXT)},
                             metadata_=draw(st.none() | st.dictionaries(TEXT, JSON, max_size=3)),
                             external_id=draw(st.none() | TEXT), status="pending",
                             dataset_id=dataset)
                for user in draw(st.lists(st.sampled_from(users), unique=True)) if users else []:
                    # values as the API stores them (the agreement backfill reads them)
                    add("responses", values=draw(st.none() | st.fixed_dictionaries(
                        {"label": st.fixed_dictionaries({"value": st.sampled_from("ab")})})),
                        status=draw(
                        st.sampled_from(["draft", "submitted", "discarded"])),
                        record_id=record, user_id=user)
                if draw(st.booleans()):
                    add("suggestions", value=draw(JSON), score=draw(st.none() | FLOATS),
                        agent=draw(st.none() | TEXT), type="model", record_id=record,
                        question_id=question)
                if draw(st.booleans()):
                    add("vectors", value=draw(st.lists(FLOATS, min_size=3, max_size=3)),
                        record_id=record, vector_settings_id=vectors)
    return rows


def insert_instance(connection: sa.Connection, rows: dict[str, list[dict[str, Any]]]) -> None:
    for table in m.Base.metadata.sorted_tables:
        if rows.get(table.name):
            connection.execute(table.insert(), [
                {("metadata" if k == "metadata_" else k): v for k, v in r.items()}
                for r in rows[table.name]])


def figures(url: str, primary: bool = False) -> Figures:
    """Every table's and dataset's count and digest, as verify computes them (``primary``:
    derived values left out)."""
    parsed = DatabaseURL.parse(url)
    database = db.open_database(parsed)
    try:
        with snapshot(database, parsed) as connection:
            return figures_of(connection, reflect(connection), Scope(), primary)
    finally:
        database.dispose()


def settings_for(home: Path, url: str, **extra: str) -> Settings:
    return Settings.from_env({"ANNOTA_HOME": str(home), "ANNOTA_DATABASE_URL": url, **extra})
