"""Search documents as the database renders them equal what the records say.

The database builds each document as JSON text (``documents.py``, ``json_sql.py``). Here
Hypothesis writes records of every odd shape straight into SQLite and PostgreSQL (values
of any JSON kind, floats with every digit, undeclared members, missing metadata, responses
whose values are not objects, no responses at all), and each document must equal the one
written here in plain Python from the same rows.
"""

from __future__ import annotations

import json
import math
import os
import uuid
from datetime import datetime, timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from annota.search.documents import document_batches, documents_for, record_version_batches
from annota.search.mapping import load_schema
from annota.server.domain import datasets
from annota.server.domain import models as m
from annota.server.schema import migrate as migrations

FIELDS = ["text", "title-2"]
QUESTIONS = {"label": "label_selection", "stars": "rating", "notes": "text"}
UNDECLARED = "undeclared"

LETTERS = st.characters(exclude_categories=["Cs"], exclude_characters="\x00")  # as stored
scalars = (st.none() | st.booleans() | st.integers(-(2**53), 2**53)
           | st.floats(allow_nan=False, allow_infinity=False)
           | st.text(LETTERS, max_size=8))
json_values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(
    st.text(LETTERS, max_size=5), inner, max_size=3),
    max_leaves=6)
moments = st.datetimes(datetime(1990, 1, 1), datetime(2090, 1, 1)) | st.datetimes(
    datetime(1990, 1, 1), datetime(2090, 1, 1)).map(lambda d: d.replace(microsecond=0))


def members(names: list[str]) -> st.SearchStrategy[dict[str, Any]]:
    return st.dictionaries(st.sampled_from([*names, UNDECLARED]), json_values, max_size=4)


answers = st.dictionaries(
    st.sampled_from([*QUESTIONS, UNDECLARED]),
    st.one_of(json_values, st.fixed_dictionaries({"value": json_values}),
              st.fixed_dictionaries({}, optional={"other": json_values})), max_size=4)
records = st.lists(st.fixed_dictionaries({
    "fields": members(FIELDS),
    "metadata": st.none() | members(["source"]) | st.lists(scalars, max_size=2),
    "external_id": st.none() | st.text(LETTERS, max_size=6),
    "inserted_at": moments, "updated_at": moments,
    "responses": st.lists(st.fixed_dictionaries({
        "user": st.booleans(), "status": st.sampled_from(["draft", "submitted", "discarded"]),
        "values": st.none() | answers, "updated_at": moments}), max_size=2),
    "suggestions": st.dictionaries(st.sampled_from(list(QUESTIONS)), st.fixed_dictionaries({
        "value": json_values, "agent": st.none() | st.text(LETTERS, max_size=5),
        "score": st.none() | st.floats(-1e6, 1e6, allow_nan=False)}), max_size=3),
    "vector": st.none() | st.lists(st.floats(-1, 1, allow_nan=False), min_size=3, max_size=3),
}), min_size=1, max_size=4)


@pytest.fixture
def dataset(settings, db):
    migrations.migrate(settings)
    with db.begin() as connection:
        workspace = datasets.create_workspace(connection, "docs")
        dataset = datasets.create_dataset(
            connection, workspace_id=workspace, name="docs",
            fields=[{"name": f, "type": "text"} for f in FIELDS],
            questions=[{"name": "label", "type": "label_selection", "options": ["a", "b"]},
                       {"name": "stars", "type": "rating"}, {"name": "notes", "type": "text"}],
            metadata_properties=[{"name": "source", "type": "terms"}],
            vector_settings=[{"name": "embedding", "dimensions": 3}])
        users = []
        for k in range(2):
            users.append(uuid.uuid4())
            connection.execute(m.User.__table__.insert(), {
                "id": users[-1], "first_name": "a", "username": f"docs-{k}", "role": "annotator",
                "api_key": uuid.uuid4().hex, "password_hash": "-",
                "inserted_at": m.utcnow(), "updated_at": m.utcnow()})
        schema = load_schema(connection, dataset)
    return schema, users


def write(db, schema, users, examples: list[dict]) -> list[dict]:  # noqa: ANN001
    """The rows, inserted as they are (no validation), and the documents they make."""
    questions = {name: qid for qid, (name, _) in schema.questions.items()}
    (vector_id,) = schema.vectors
    expected = []
    with db.begin() as connection:
        for example in examples:
            record = uuid.uuid4()
            connection.execute(m.Record.__table__.insert(), {
                "id": record, "dataset_id": schema.id, "fields": example["fields"],
                "metadata": example["metadata"], "external_id": example["external_id"],
                "status": "pending",
                "inserted_at": example["inserted_at"], "updated_at": example["updated_at"]})
            responses = []
            for k, response in enumerate(example["responses"]):
                user = users[k] if response["user"] else None
                connection.execute(m.Response.__table__.insert(), {
                    "id": uuid.uuid4(), "record_id": record, "user_id": user,
                    "status": response["status"], "values": response["values"],
                    "inserted_at": response["updated_at"], "updated_at": response["updated_at"]})
                values = response["values"] if isinstance(response["values"], dict) else {}
                responses.append({
                    "user_id": str(user) if user else None, "status": response["status"],
                    "values": {q: v.get("value") if isinstance(v, dict) else v
                               for q, v in values.items() if q in QUESTIONS},
                    "updated_at": response["updated_at"].isoformat()})
            for name, suggestion in example["suggestions"].items():
                connection.execute(m.Suggestion.__table__.insert(), {
                    "id": uuid.uuid4(), "record_id": record, "question_id": questions[name],
                    **suggestion, "inserted_at": m.utcnow(), "updated_at": m.utcnow()})
            if example["vector"] is not None:
                connection.execute(m.Vector.__table__.insert(), {
                    "id": uuid.uuid4(), "record_id": record, "vector_settings_id": vector_id,
                    "value": example["vector"], "inserted_at": m.utcnow(),
                    "updated_at": m.utcnow()})
            metadata = example["metadata"]
            expected.append({
                "id": str(record), "dataset_id": str(schema.id),
                "external_id": example["external_id"],
                "inserted_at": example["inserted_at"].isoformat(),
                "updated_at": example["updated_at"].isoformat(),
                "fields": {k: v for k, v in example["fields"].items() if k in FIELDS},
                "metadata": metadata if isinstance(metadata, dict) else {},
                "responses": responses,
                "submitted": sum(r["status"] == "submitted" for r in responses),
                "suggestions": example["suggestions"],
                "vectors": {} if example["vector"] is None else {"embedding": example["vector"]},
            })
    return expected


def same(ours: Any, theirs: Any) -> bool:
    """Equal as JSON: numbers by value (SQLite prints a REAL column with 15 digits)."""
    if isinstance(ours, bool) or isinstance(theirs, bool):
        return ours is theirs
    if isinstance(ours, (int, float)) and isinstance(theirs, (int, float)):
        return math.isclose(ours, theirs, rel_tol=1e-14, abs_tol=1e-300)
    if isinstance(ours, dict) and isinstance(theirs, dict):
        return ours.keys() == theirs.keys() and all(same(ours[k], theirs[k]) for k in ours)
    if isinstance(ours, list) and isinstance(theirs, list):
        return len(ours) == len(theirs) and all(map(same, ours, theirs))
    return ours == theirs


def by_user(responses: list[dict]) -> list[dict]:
    return sorted(responses, key=lambda r: (r["user_id"] or "", json.dumps(r, sort_keys=True)))


@hypothesis_settings(max_examples=int(os.environ.get("DOCS_EXAMPLES", "25")), deadline=None,
                     suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(examples=records)
def test_documents_equal_the_records(db, dataset, examples):
    schema, users = dataset
    expected = write(db, schema, users, examples)
    with db.connect() as connection:
        docs = documents_for(connection, schema, [uuid.UUID(e["id"]) for e in expected])
    assert sorted(d.id for d in docs) == sorted(e["id"] for e in expected)
    for doc in docs:
        source = json.loads(doc.source)
        (wanted,) = [e for e in expected if e["id"] == doc.id]
        assert doc.version == wanted["updated_at"] == source["updated_at"]
        source["responses"], wanted["responses"] = (by_user(source["responses"]),
                                                    by_user(wanted["responses"]))
        differing = {k: (source.get(k), wanted[k]) for k in wanted
                     if not same(source.get(k), wanted[k])}
        assert source.keys() == wanted.keys() and not differing, differing


def test_every_record_once_in_id_order_with_its_version(db, dataset):
    schema, users = dataset
    start = datetime(2024, 1, 1)
    examples = [{"fields": {"text": str(i)}, "metadata": None, "external_id": None,
                 "inserted_at": start, "updated_at": start + timedelta(seconds=i),
                 "responses": [], "suggestions": {}, "vector": None} for i in range(23)]
    expected = write(db, schema, users, examples)
    batches = list(document_batches(db, schema, 5))
    assert [len(b) for b in batches] == [5, 5, 5, 5, 3]
    ids = [d.id for b in batches for d in b]
    assert ids == sorted(e["id"] for e in expected)
    versions = dict(record_version_batches(db, schema.id, 4))
    assert versions == {e["id"]: e["updated_at"] for e in expected}
    assert [d.version for b in batches for d in b] == [versions[i] for i in ids]
