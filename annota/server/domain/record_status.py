"""A record's status: completed once it has the dataset's minimum number of submitted
responses (``distribution.min_submitted``), else pending. Computed from source rows."""

from __future__ import annotations

import uuid

import sqlalchemy as sa

from annota.server.domain import models as m

RECORDS, RESPONSES, DATASETS = m.Record.__table__, m.Response.__table__, m.Dataset.__table__


def min_submitted(connection: sa.Connection, dataset_id: uuid.UUID) -> int:
    distribution = connection.execute(
        sa.select(DATASETS.c.distribution).where(DATASETS.c.id == dataset_id)
    ).scalar_one()
    return int((distribution or {}).get("min_submitted", 1))


def status_update(dataset_id: uuid.UUID, minimum: int) -> sa.Update:
    """One UPDATE computing the status of records (restrict with ``.where``) from source.

    It writes only the records whose status changes, and leaves their ``updated_at``
    alone: a status is derived from the responses, whose writes move it already, and no
    search document carries it, so a backfill changes no record's version."""
    submitted = (sa.select(sa.func.count()).select_from(RESPONSES)
                 .where(RESPONSES.c.record_id == RECORDS.c.id,
                        RESPONSES.c.status == "submitted")
                 .scalar_subquery())
    status = sa.case((submitted >= minimum, "completed"), else_="pending")
    return (sa.update(RECORDS)
            .where(RECORDS.c.dataset_id == dataset_id, RECORDS.c.status.is_distinct_from(status))
            .values(status=status, updated_at=RECORDS.c.updated_at))


def recount(connection: sa.Connection, dataset_id: uuid.UUID) -> None:
    """Store the dataset's count of completed records, when it changed; after statuses
    changed. A derived count: the dataset's ``updated_at`` stays."""
    completed = (sa.select(sa.func.count()).select_from(RECORDS)
                 .where(RECORDS.c.dataset_id == dataset_id, RECORDS.c.status == "completed")
                 .scalar_subquery())
    connection.execute(sa.update(DATASETS).where(
        DATASETS.c.id == dataset_id, DATASETS.c.completed_records.is_distinct_from(completed))
        .values(completed_records=completed, updated_at=DATASETS.c.updated_at))
