"""What a backfill is: a named, versioned unit of derived-data work applied per dataset.

``run_batch`` recomputes the derived data of the next ``batch_size`` records after
``cursor`` from their source rows (never incrementing), inside the caller's transaction,
which also saves the new cursor: a crash resumes from the cursor and a rerun changes
nothing.
"""

from __future__ import annotations

import uuid
from abc import ABC, abstractmethod

import sqlalchemy as sa

from annota.server.domain import models as m

RECORDS = m.Record.__table__


class Backfill(ABC):
    name: str
    version: int
    description: str
    # the revision that registers its jobs: it runs on a schema at this revision or later
    # (a release gate may need it finished before the schema reaches head), so it may use
    # only tables and columns that exist from there on
    since: str

    def total(self, connection: sa.Connection, dataset_id: uuid.UUID) -> int:
        return connection.execute(
            sa.select(sa.func.count()).select_from(RECORDS)
            .where(RECORDS.c.dataset_id == dataset_id)
        ).scalar_one()

    def next_ids(self, connection: sa.Connection, dataset_id: uuid.UUID, cursor: str | None,
                 batch_size: int) -> list[uuid.UUID]:
        """The next batch of record ids by primary key (keyset pagination)."""
        query = (sa.select(RECORDS.c.id).where(RECORDS.c.dataset_id == dataset_id)
                 .order_by(RECORDS.c.id).limit(batch_size))
        if cursor:
            query = query.where(RECORDS.c.id > uuid.UUID(cursor))
        return list(connection.execute(query).scalars())

    def run_batch(self, connection: sa.Connection, dataset_id: uuid.UUID, cursor: str | None,
                  batch_size: int) -> tuple[str | None, int]:
        """Recompute one batch; returns (new cursor or None when done, records processed)."""
        ids = self.next_ids(connection, dataset_id, cursor, batch_size)
        if not ids:
            return None, 0
        self.recompute(connection, dataset_id, ids)
        return str(ids[-1]), len(ids)

    @abstractmethod
    def recompute(self, connection: sa.Connection, dataset_id: uuid.UUID,
                  record_ids: list[uuid.UUID]) -> None:
        """Recompute the derived data of these records from their source rows."""

    def finish(self, connection: sa.Connection, dataset_id: uuid.UUID) -> None:  # noqa: B027
        """Dataset-wide work after the last batch (e.g. an aggregate); optional."""
