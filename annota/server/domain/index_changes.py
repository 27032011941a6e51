"""The records each dataset's writers changed, for a reindex's final check (``index_changes``).

Every transaction that writes or deletes a dataset's records notes them here (``note``),
with a token of its own: one row per record, the newest write's token. A reindex clears the
dataset's rows before it proves its new index equal to the whole dataset (``clear``); every
write that commits after that is then here. It catches up with them while writers go on,
forgetting each row it caught up with only if its token is still the one it read
(``forget``: a write meanwhile keeps its row), and pauses the writers only to check the few
left. No clock is compared anywhere.
"""

from __future__ import annotations

import uuid

import sqlalchemy as sa

from annota.server.db import dialect_of
from annota.server.domain import models as m

CHANGES = m.IndexChange.__table__
CHUNK = 1000


def note(connection: sa.Connection, dataset_id: uuid.UUID,
         record_ids: list[uuid.UUID]) -> None:
    """In the writer's transaction: these records changed (or were deleted)."""
    if not record_ids:
        return
    token = uuid.uuid4()
    upsert = dialect_of(connection).upsert(CHANGES, ["dataset_id", "record_id"], ["token"])
    ordered = sorted(set(record_ids))  # one lock order for writers that overlap
    for start in range(0, len(ordered), CHUNK):
        connection.execute(upsert, [{"dataset_id": dataset_id, "record_id": r, "token": token}
                                    for r in ordered[start:start + CHUNK]])


def clear(connection: sa.Connection, dataset_id: uuid.UUID) -> None:
    """Forget every committed change of the dataset (a write still open stays noted)."""
    connection.execute(sa.delete(CHANGES).where(CHANGES.c.dataset_id == dataset_id))


def pending(connection: sa.Connection, dataset_id: uuid.UUID) -> list[tuple[uuid.UUID, uuid.UUID]]:
    """(record id, token) of every change noted since the dataset's last ``clear``."""
    return [(r, t) for r, t in connection.execute(
        sa.select(CHANGES.c.record_id, CHANGES.c.token).where(CHANGES.c.dataset_id == dataset_id)
        .order_by(CHANGES.c.record_id))]


def forget(connection: sa.Connection, dataset_id: uuid.UUID,
           changes: list[tuple[uuid.UUID, uuid.UUID]]) -> None:
    """Forget these changes, each only if no write noted its record again since."""
    delete = sa.delete(CHANGES).where(
        CHANGES.c.dataset_id == dataset_id, CHANGES.c.record_id == sa.bindparam("r"),
        CHANGES.c.token == sa.bindparam("t"))
    for start in range(0, len(changes), CHUNK):
        connection.execute(delete, [{"r": r, "t": t} for r, t in changes[start:start + CHUNK]])
