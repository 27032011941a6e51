"""The migration lock's two mechanisms; each dialect picks one (see ``dialects.py``).

An advisory lock on the migrating PostgreSQL session, or an OS file lock, which works
across processes and is released by the kernel if its holder dies (even ``kill -9``).
Both wait up to a timeout, polling.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from annota.errors import MigrationLockTimeoutError

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection, Engine

# the advisory-lock key that means "annota is migrating this database"
ADVISORY_LOCK_KEY = 0x1E3E_2A4C_5B6D_7F01
POLL_SECONDS = 0.2


def wait_for(
    try_acquire: Callable[[], bool], timeout: float, on_wait: Callable[[], None], what: str
) -> None:
    deadline = time.monotonic() + timeout
    if try_acquire():
        return
    on_wait()
    while time.monotonic() < deadline:
        time.sleep(POLL_SECONDS)
        if try_acquire():
            return
    raise MigrationLockTimeoutError(
        f"another migration still holds {what} after {timeout:g}s; wait for it to finish "
        "or raise --lock-timeout"
    )


@contextmanager
def advisory_lock(connection: Connection, *, timeout: float,
                  on_wait: Callable[[], None]) -> Iterator[None]:
    """A session-level PostgreSQL advisory lock held by ``connection``."""
    import sqlalchemy as sa

    def try_acquire() -> bool:
        got = connection.execute(
            sa.text("SELECT pg_try_advisory_lock(:key)"), {"key": ADVISORY_LOCK_KEY}
        ).scalar_one()
        connection.commit()  # the lock is session-level; leave no transaction open
        return bool(got)

    wait_for(try_acquire, timeout, on_wait, "the PostgreSQL advisory lock")
    try:
        yield
    finally:
        _unlock(connection, ADVISORY_LOCK_KEY)


def _unlock(connection: Connection, key: int) -> None:
    """Release a session-level advisory lock, leaving no transaction open."""
    import sqlalchemy as sa

    if connection.in_transaction():
        connection.rollback()
    connection.execute(sa.text("SELECT pg_advisory_unlock(:key)"), {"key": key})
    connection.commit()


def dataset_key(dataset_id: object) -> int:
    """A 64-bit advisory-lock key of its own for each dataset."""
    import uuid

    return int.from_bytes(uuid.UUID(str(dataset_id)).bytes[:8], "big", signed=True)


@contextmanager
def exclusive_advisory_lock(connection: Connection, key: int, *, timeout: float,
                            timed_out: Callable[[str], Exception]) -> Iterator[None]:
    """A session-level exclusive advisory lock on ``key``: the shared holders (writers'
    own transactions) are waited for, and, as PostgreSQL queues lock requests in order,
    writers that come after it wait for it (polling could starve among busy writers)."""
    import sqlalchemy as sa
    from sqlalchemy.exc import OperationalError

    try:
        connection.exec_driver_sql(f"SET lock_timeout = '{int(timeout * 1000)}ms'")
        connection.execute(sa.text("SELECT pg_advisory_lock(:key)"), {"key": key})
        connection.exec_driver_sql("RESET lock_timeout")
        connection.commit()
    except OperationalError:
        connection.rollback()
        raise timed_out(f"the dataset's writers after {timeout:g}s") from None
    try:
        yield
    finally:
        _unlock(connection, key)


@contextmanager
def file_lock(path: Path, *, timeout: float, on_wait: Callable[[], None]) -> Iterator[None]:
    """An OS lock on ``path`` (created if missing)."""
    from filelock import FileLock, Timeout

    lock = FileLock(path)

    def try_acquire() -> bool:
        try:
            lock.acquire(timeout=0)
        except Timeout:
            return False
        return True

    wait_for(try_acquire, timeout, on_wait, f"the lock file {path}")
    try:
        yield
    finally:
        lock.release()


class Blockers:
    """The sessions that block PostgreSQL backend ``pid``, sampled every ``every`` seconds
    from a connection of its own while ``pid`` works: when a statement gives up on a lock,
    the last sample says who held it."""

    QUERY = ("SELECT pid, application_name, usename, state, xact_start FROM pg_stat_activity "
             "WHERE pid = ANY(pg_blocking_pids(%(pid)s)) ORDER BY xact_start NULLS LAST")

    def __init__(self, database: Engine | None, pid: int | None, every: float = 0.2) -> None:
        import threading

        self.database, self.pid, self.every = database, pid, every
        self.seen: list[tuple] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="annota-blockers",
                                        daemon=True)

    def __enter__(self) -> Blockers:
        if self.database is not None and self.pid is not None:
            self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)

    def _watch(self) -> None:
        try:
            with self.database.connect() as connection:  # type: ignore[union-attr]
                while not self._stop.wait(self.every):
                    rows = connection.exec_driver_sql(self.QUERY, {"pid": self.pid}).all()
                    connection.rollback()
                    if rows:
                        self.seen = [tuple(r) for r in rows]
        except Exception:  # noqa: BLE001, S110 - only a better message is lost
            pass

    def described(self) -> str:
        if not self.seen:
            return "no blocking session was seen"
        return "; ".join(
            f"pid {pid} (application {app or '?'!r}, user {user}, {state or 'active'}"
            + (f", in a transaction since {since:%Y-%m-%d %H:%M:%S}" if since else "") + ")"
            for pid, app, user, state, since in self.seen[:3])
