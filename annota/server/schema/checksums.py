"""History integrity: the SHA-256 of each revision file as it was when applied.

``migrate`` records a revision's checksum in the transaction that applies it (and forgets
it in the one that reverts it), in ``revision_checksums`` (made by release 2.2; revisions
applied in the same run before it existed are recorded as soon as it does). ``check``
compares the records with the files this annota ships: a revision changed after it was
applied means the database may not hold what the history now says, as Flyway's
``validate`` reports.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime, timezone

import sqlalchemy as sa

from annota.server.schema.history import Revision, history

TABLE = sa.table("revision_checksums", sa.column("revision", sa.String),
                 sa.column("checksum", sa.String), sa.column("applied_at", sa.DateTime))


def checksum(revision: Revision) -> str:
    return hashlib.sha256(revision.path.read_bytes()).hexdigest()


def _exists(connection: sa.Connection) -> bool:
    return sa.inspect(connection).has_table("revision_checksums")


class Recorder:
    """Called in each revision's transaction: records (or forgets) its checksum, holding
    back those applied before the table exists."""

    def __init__(self) -> None:
        self.waiting: list[Revision] = []

    def applied(self, connection: sa.Connection, revision: Revision) -> None:
        self.waiting.append(revision)
        if not _exists(connection):
            return
        now = datetime.now(timezone.utc).replace(tzinfo=None)
        for done in self.waiting:
            connection.execute(sa.delete(TABLE).where(TABLE.c.revision == done.revision))
            connection.execute(sa.insert(TABLE).values(
                revision=done.revision, checksum=checksum(done), applied_at=now))
        self.waiting = []

    def reverted(self, connection: sa.Connection, revision: Revision) -> None:
        if _exists(connection):
            connection.execute(sa.delete(TABLE).where(TABLE.c.revision == revision.revision))


@dataclass(frozen=True)
class Changed:
    revision: Revision
    recorded: str
    now: str

    def line(self) -> str:
        r = self.revision
        return (f"revision {r.revision} ({r.release}) changed after it was applied: "
                f"{r.path.name} has SHA-256 {self.now[:12]}..., recorded "
                f"{self.recorded[:12]}... when applied")


def changed(connection: sa.Connection) -> list[Changed]:
    """The applied revisions whose file differs from the one that was applied."""
    if not _exists(connection):
        return []
    hist = history()
    found = []
    for revision_id, recorded in connection.execute(
            sa.select(TABLE.c.revision, TABLE.c.checksum).order_by(TABLE.c.revision)):
        if revision_id not in hist:
            continue  # a newer annota's revision: `check` reports the schema ahead
        revision = hist.get(revision_id)
        now = checksum(revision)
        if now != recorded:
            found.append(Changed(revision, recorded, now))
    return sorted(found, key=lambda c: hist.position(c.revision.revision))
