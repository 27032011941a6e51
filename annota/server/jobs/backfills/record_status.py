"""record-status: recompute each record's status (see ``annota.server.domain.record_status``)."""

from __future__ import annotations

import uuid

import sqlalchemy as sa

from annota.server.domain.record_status import RECORDS, min_submitted, recount, status_update
from annota.server.jobs.backfills.base import Backfill


class RecordStatus(Backfill):
    name = "record-status"
    version = 1
    since = "c0178eeb3592"
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
        # writes only the records whose status is wrong: a rerun writes nothing
        connection.execute(
            status_update(dataset_id, min_submitted(connection, dataset_id)).where(bounded))
        if last is None:  # the final, partial batch: count what it covered
            return None, connection.execute(sa.select(sa.func.count()).select_from(RECORDS)
                                            .where(in_dataset, after)).scalar_one()
        return str(last), batch_size

    def finish(self, connection: sa.Connection, dataset_id: uuid.UUID) -> None:
        """The dataset's count of completed records, from the statuses now computed (the
        column exists from release 2.3; the backfill also runs at 2.3's gate, before)."""
        if "completed_records" in {c["name"] for c in sa.inspect(connection).get_columns(
                "datasets")}:
            recount(connection, dataset_id)

    def recompute(self, connection: sa.Connection, dataset_id: uuid.UUID,
                  record_ids: list[uuid.UUID]) -> None:
        minimum = min_submitted(connection, dataset_id)
        connection.execute(status_update(dataset_id, minimum)
                           .where(RECORDS.c.id.in_(record_ids)))
