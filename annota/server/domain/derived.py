"""Keep derived data current on writes, so a finished backfill stays true.

Whatever writes responses (record import, the HTTP API) calls ``refresh_derived`` in the
same transaction, with the records it touched.
"""

from __future__ import annotations

import uuid

import sqlalchemy as sa

from annota.server.domain.agreement import recompute_records
from annota.server.domain.record_status import RECORDS, min_submitted, recount, status_update


def refresh_derived(connection: sa.Connection, dataset_id: uuid.UUID,
                    record_ids: list[uuid.UUID]) -> None:
    for start in range(0, len(record_ids), 1000):
        chunk = record_ids[start:start + 1000]
        connection.execute(status_update(dataset_id, min_submitted(connection, dataset_id))
                           .where(RECORDS.c.id.in_(chunk)))
        recompute_records(connection, dataset_id, chunk)
    if record_ids:
        recount(connection, dataset_id)
