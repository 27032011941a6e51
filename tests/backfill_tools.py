"""Legacy datasets (release 2.0, before derived data existed) with hand-computed answers."""

from __future__ import annotations

import uuid
from datetime import datetime

import sqlalchemy as sa

from annota.config import Settings
from annota.server.schema import migrate as migrations
from tests.schema_tools import insert, insert_many

T0 = datetime(2024, 3, 1, 9, 0, 0)
STAMP = {"inserted_at": T0, "updated_at": T0}

# dataset "overlap-1" (one submitted response completes a record), label question answers:
# record -> [(user, status, label)]
LABELLED = {
    "r1": [(0, "submitted", "a"), (1, "submitted", "a")],
    "r2": [(0, "submitted", "a"), (1, "submitted", "b")],
    "r3": [(0, "submitted", "b"), (1, "submitted", "b"), (2, "draft", "a")],
    "r4": [(0, "submitted", "b"), (1, "submitted", "b")],
    "r5": [(0, "draft", "a")],
    "r6": [(0, "submitted", "a"), (1, "submitted", "a"), (2, "submitted", "b")],
}
EXPECTED_STATUS_1 = {"r1": "completed", "r2": "completed", "r3": "completed",
                     "r4": "completed", "r5": "pending", "r6": "completed"}
EXPECTED_PERCENT = {"r1": 1.0, "r2": 0.0, "r3": 1.0, "r4": 1.0, "r5": None, "r6": 1 / 3}
# by hand: coincidences o_aa=3, o_ab=o_ba=2, o_bb=4; n_a=5, n_b=6, n=11;
# alpha = 1 - (n - 1)(o_ab + o_ba) / (n^2 - n_a^2 - n_b^2) = 1 - 40/60
EXPECTED_ALPHA = 1 / 3

# dataset "overlap-2" (two submitted responses needed)
TWO_NEEDED = {
    "s1": [(0, "submitted", "a"), (1, "submitted", "a")],
    "s2": [(0, "submitted", "a"), (1, "draft", "a")],
    "s3": [(0, "discarded", "a"), (1, "submitted", "b")],
    "s4": [],
}
EXPECTED_STATUS_2 = {"s1": "completed", "s2": "pending", "s3": "pending", "s4": "pending"}


def legacy_database(settings: Settings, db: sa.Engine, *, extra_records: int = 0) -> dict:
    """Migrate to 2.0 and fill two datasets as 2.0 stored them; returns their ids."""
    migrations.migrate(settings, "2.0")
    with db.begin() as connection:
        users = [insert(connection, "users", first_name=f"u{i}", username=f"u{i}",
                        role="annotator", api_key=f"key-{i}", password_hash="-", **STAMP)
                 for i in range(3)]
        workspace = insert(connection, "workspaces", name="legacy", **STAMP)
        ids = {}
        for name, minimum, answers in (("overlap-1", 1, LABELLED), ("overlap-2", 2, TWO_NEEDED)):
            dataset = insert(connection, "datasets", name=name, status="ready",
                             workspace_id=workspace, last_activity_at=T0,
                             distribution={"strategy": "overlap", "min_submitted": minimum},
                             **STAMP)
            ids[name] = dataset
            insert(connection, "fields", name="text", title="Text", required=True,
                   settings={"type": "text"}, dataset_id=dataset, **STAMP)
            insert(connection, "questions", name="label", title="Label", required=True,
                   settings={"type": "label_selection", "options": ["a", "b"]},
                   dataset_id=dataset, **STAMP)
            insert(connection, "questions", name="stars", title="Stars", required=False,
                   settings={"type": "rating", "options": [1, 2, 3]}, dataset_id=dataset,
                   **STAMP)
            for external_id, responses in answers.items():
                record = insert(connection, "records", fields={"text": external_id},
                                external_id=external_id, dataset_id=dataset, **STAMP)
                for user, status, label in responses:
                    insert(connection, "responses", status=status, record_id=record,
                           user_id=users[user], **STAMP,
                           values={"label": {"value": label}, "stars": {"value": 2}})
            extra = range(extra_records if name == "overlap-1" else 0)
            records = insert_many(connection, "records", [
                {"fields": {"text": f"x{i}"}, "external_id": f"x{i}", "dataset_id": dataset,
                 **STAMP} for i in extra])
            insert_many(connection, "responses", [
                {"status": "submitted", "record_id": record, "user_id": users[user],
                 "values": {"label": {"value": "ab"[i % 2]}}, **STAMP}
                for i, record in enumerate(records) for user in range(i % 3)])
    # to head, past the release gate of 2.3 that waits for record-status: these tests run
    # the backfills themselves (tests/test_upgrade.py checks the gate)
    migrations.migrate(settings, force=True)
    return {k: uuid.UUID(str(v)) if not isinstance(v, uuid.UUID) else v
            for k, v in ids.items()}


def statuses(db: sa.Engine, dataset_id: uuid.UUID) -> dict[str, str]:
    from annota.server.domain import models as m

    records = m.Record.__table__
    with db.connect() as connection:
        return dict(connection.execute(
            sa.select(records.c.external_id, records.c.status)
            .where(records.c.dataset_id == dataset_id)).all())


def expected_statuses(db: sa.Engine, dataset_id: uuid.UUID, minimum: int) -> dict[str, str]:
    """Record status computed independently, in one SQL query."""
    with db.connect() as connection:
        rows = connection.execute(sa.text(
            "SELECT r.external_id, (SELECT COUNT(*) FROM responses s WHERE s.record_id = r.id "
            "AND s.status = 'submitted') FROM records r WHERE r.dataset_id = :d"),
            {"d": dataset_id.hex if db.dialect.name == "sqlite" else dataset_id}).all()
    return {e: "completed" if n >= minimum else "pending" for e, n in rows}
