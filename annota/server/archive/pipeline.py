"""``copy``'s common move, SQLite to PostgreSQL, with both machines' cores at work.

This process reads each table's rows as SQLite stores them, makes their ``COPY`` text and
their digests (the source's figures) in one pass, and hands the text to one worker thread
that owns the target connection. The worker streams it into ``COPY``, and as soon as a
table is in, builds that table's indexes and constraints again (``Rebuild.loaded``) and
sums its digest on the server (the target's figures), while this process goes on with
the next table. The queue between them is bounded, so memory does not grow with the
data. Everything happens in the target's one transaction: the caller commits it only
when both sides' figures agree.
"""

from __future__ import annotations

import queue
import threading
from concurrent.futures import Future, ThreadPoolExecutor

import sqlalchemy as sa

from annota.server.archive import rowdigest
from annota.server.archive.rebuild import Rebuild
from annota.server.archive.snapshot import Figures
from annota.server.archive.tables import TableSpec

QUEUED = 96  # chunks of tables.READ_BATCH rows waiting for the server (about 64 MiB)
_WAIT = 0.2


class _Stopped(Exception):
    """This side failed: the worker leaves the COPY it is in (so it is not completed)."""


def sqlite_to_postgresql(source: sa.Connection, specs: list[TableSpec],
                         target: sa.Connection, have: dict[str, TableSpec],
                         jsonb: frozenset[tuple[str, str]], rebuild: Rebuild | None,
                         progress) -> tuple[Figures, Figures]:  # noqa: ANN001
    """Every row of ``specs`` from ``source`` into ``target``: (the source's figures, the
    target's), each table's taken once it is loaded and its indexes are built."""
    ours, theirs = rowdigest.Tally(), rowdigest.Tally()
    rowdigest.prepare_postgresql(target)
    stopping = threading.Event()
    loads: list[Future] = []
    with ThreadPoolExecutor(1, thread_name_prefix="annota-copy") as worker:
        try:
            for spec in specs:
                chunks: queue.Queue = queue.Queue(QUEUED)
                loads.append(worker.submit(_load, target, spec, have[spec.name], chunks,
                                           rebuild, jsonb, theirs, stopping))
                batch, sums = rowdigest.row_batches(spec, jsonb), ours.table(spec.name)
                for rows in rowdigest.sqlite_rows(source, spec):
                    text, digests = batch(rows)
                    _put(chunks, text, loads)
                    rowdigest.count_batch(sums, digests)
                    progress.advanced(len(rows))
                _put(chunks, None, loads)
            for load in loads:
                load.result()
        finally:
            stopping.set()  # a failure here: the worker stops at once (a no-op otherwise)
    return ours.figures(), theirs.figures()


def _put(chunks: queue.Queue, item: str | None, loads: list[Future]) -> None:
    while True:
        _raise_failed(loads)
        try:
            chunks.put(item, timeout=_WAIT)
            return
        except queue.Full:
            continue


def _raise_failed(loads: list[Future]) -> None:
    for load in loads:
        if load.done() and load.exception() is not None:
            raise load.exception()


def _take(chunks: queue.Queue, stopping: threading.Event) -> str | None:
    while not stopping.is_set():
        try:
            return chunks.get(timeout=_WAIT)
        except queue.Empty:
            continue
    raise _Stopped


def _load(target: sa.Connection, spec: TableSpec, have: TableSpec, chunks: queue.Queue,
          rebuild: Rebuild | None, jsonb: frozenset[tuple[str, str]],
          theirs: rowdigest.Tally, stopping: threading.Event) -> None:
    if stopping.is_set():
        raise _Stopped
    names = ", ".join(f'"{c}"' for c in spec.columns)
    raw = target.connection.dbapi_connection
    with raw.cursor() as cursor, cursor.copy(f'COPY "{spec.name}" ({names}) FROM STDIN') as copy:
        while (text := _take(chunks, stopping)) is not None:
            copy.write(text)
    if rebuild is not None:
        rebuild.loaded(spec.name)
    theirs.tables[spec.name] = rowdigest.postgresql_table(target, have, jsonb)
