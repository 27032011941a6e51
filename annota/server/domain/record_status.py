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
    """One UPDATE computing the status of records (restrict with ``.where``) from source."""
    submitted = (sa.select(sa.func.count()).select_from(RESPONSES)
                 .where(RESPONSES.c.record_id == RECORDS.c.id,
                        RESPONSES.c.status == "submitted")
                 .scalar_subquery())
    return (sa.update(RECORDS)
            .where(RECORDS.c.dataset_id == dataset_id)
            .values(status=sa.case((submitted >= minimum, "completed"), else_="pending")))


def recount(connection: sa.Connection, dataset_id: uuid.UUID) -> None:
    """Store the dataset's count of completed records; after statuses changed."""
    completed = (sa.select(sa.func.count()).select_from(RECORDS)
                 .where(RECORDS.c.dataset_id == dataset_id, RECORDS.c.status == "completed")
                 .scalar_subquery())
    connection.execute(sa.update(DATASETS).where(DATASETS.c.id == dataset_id)
                       .values(completed_records=completed))
