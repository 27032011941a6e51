"""record-status: a record is completed once it has the dataset's minimum number of
submitted responses (``distribution.min_submitted``), else pending."""

from __future__ import annotations

import uuid

import sqlalchemy as sa

from annota.server import models as m
from annota.server.backfills.base import RECORDS, Backfill

RESPONSES, DATASETS = m.Response.__table__, m.Dataset.__table__


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


class RecordStatus(Backfill):
    name = "record-status"
    version = 1
    description = "each record's status (pending / completed) from its submitted responses"

    def run_batch(self, connection: sa.Connection, dataset_id: uuid.UUID, cursor: str | None,
                  batch_size: int) -> tuple[str | None, int]:
        """One UPDATE over a key range: the batch's last id is looked up in the index, and
        no list of ids travels to the server and back."""
        in_dataset = RECORDS.c.dataset_id == dataset_id
        after = RECORDS.c.id > uuid.UUID(cursor) if cursor else sa.true()
        last = connection.execute(
            sa.select(RECORDS.c.id).where(in_dataset, after).order_by(RECORDS.c.id)
            .offset(batch_size - 1).limit(1)).scalar_one_or_none()
        bounded = sa.and_(after, RECORDS.c.id <= last) if last is not None else after
        updated = connection.execute(
            status_update(dataset_id, min_submitted(connection, dataset_id)).where(bounded)
        ).rowcount
        if last is None:  # the final, partial batch
            return None, updated
        return str(last), updated

    def recompute(self, connection: sa.Connection, dataset_id: uuid.UUID,
                  record_ids: list[uuid.UUID]) -> None:
        minimum = min_submitted(connection, dataset_id)
        connection.execute(status_update(dataset_id, minimum)
                           .where(RECORDS.c.id.in_(record_ids)))
