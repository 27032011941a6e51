"""Rebuild every dataset's search index with zero search downtime.

Per dataset: build a new timestamped index (refresh off, no replicas) from the database
by keyset pagination, bulk-index with retries on HTTP 429, catch up on records written
meanwhile, restore refresh and replicas, check the index count against the database,
then point the dataset's alias at the new index atomically and delete the old one.
Search keeps answering from the old index until the swap. A mismatch or a rejected
document refuses the swap; rejected documents are written to a JSONL report.
"""

from __future__ import annotations

import json
import queue
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from annota.config import Settings
from annota.errors import ReindexError
from annota.search import connect
from annota.search.bulk import remove, send
from annota.search.documents import (
    Document,
    count_records,
    document_batches,
    documents_for,
    record_version_batches,
    record_versions,
)
from annota.search.engine import SearchEngine, alias_name, new_index_name
from annota.search.lease import ReindexLease
from annota.search.mapping import DatasetSchema, dataset_mapping, index_meta, load_schema
from annota.server.db import dialect_of, open_database, read_only, writable
from annota.server.domain import index_changes
from annota.server.domain import models as m
from annota.server.schema.migrate import ensure_at_head

WRITERS_WAIT = 60.0  # seconds the final check waits for the dataset's writers to pause
CATCH_UP_ROUNDS = 5  # catch-ups with the writers' changes before a pause, at most
CAUGHT_UP = 100  # changes few enough to check with the writers paused
PAUSES = 5  # pauses that may give way to another catch-up (the last one checks whatever)


@dataclass
class DatasetPlan:
    dataset_id: str
    name: str
    records: int
    alias: str
    current: list[str]  # the indices the alias points at now
    fingerprint: str = field(default="", repr=False)  # of the dataset's settings

    def to_dict(self) -> dict[str, Any]:
        return {"dataset_id": self.dataset_id, "name": self.name, "records": self.records,
                "alias": self.alias, "current_indices": self.current}


@dataclass
class DatasetResult:
    plan: DatasetPlan
    index: str
    indexed: int = 0
    caught_up: int = 0  # documents (re)indexed for records written during the build
    rejected: int = 0
    retried: int = 0  # documents sent again after the engine answered 429
    seconds: float = 0.0
    paused: float | None = None  # the longest the dataset's writers were paused, seconds
    pauses: int = 0  # how many times (a pause that found too much to check gave way)
    paused_changes: int = 0  # records changed since the last catch-up, checked in the pause
    swapped: bool = False
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {**self.plan.to_dict(), "index": self.index, "indexed": self.indexed,
                "caught_up": self.caught_up, "rejected": self.rejected,
                "retried": self.retried,
                "seconds": round(self.seconds, 3),
                "writers_paused_seconds": None if self.paused is None else round(self.paused, 4),
                "writers_paused": self.pauses,
                "checked_while_paused": self.paused_changes,
                "swapped": self.swapped, "error": self.error}


@dataclass
class ReindexSummary:
    results: list[DatasetResult] = field(default_factory=list)
    report: Path | None = None

    @property
    def failed(self) -> list[DatasetResult]:
        return [r for r in self.results if r.error]


class ReindexReporter:
    """What reindex tells as it goes; the CLI draws progress, tests record it."""

    def planned(self, plans: list[DatasetPlan]) -> None: ...
    def dataset_started(self, plan: DatasetPlan, index: str) -> None: ...
    def progressed(self, plan: DatasetPlan, done: int) -> None: ...
    def dataset_finished(self, result: DatasetResult) -> None: ...
    def note(self, message: str) -> None: ...


class RejectReport:
    """The JSONL file of rejected documents, created on the first rejection."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.count = 0
        self._file = None

    def write(self, dataset_id: str, index: str, doc_id: str, status: Any, error: Any) -> None:
        if self._file is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._file = self.path.open("a", encoding="utf-8")
        self._file.write(json.dumps({"dataset_id": dataset_id, "index": index,
                                     "record_id": doc_id, "status": status,
                                     "error": error}) + "\n")
        self._file.flush()
        self.count += 1

    def close(self) -> None:
        if self._file:
            self._file.close()


def _dataset_ids(db: sa.Engine, wanted: list[str] | None) -> list[str]:
    from annota.server.domain.datasets import dataset_row

    with db.connect() as connection:
        if wanted:
            return [str(dataset_row(connection, d).id) for d in wanted]
        table = m.Dataset.__table__
        return [str(i) for i in connection.execute(
            sa.select(table.c.id).order_by(table.c.inserted_at, table.c.id)).scalars()]


def plan(settings: Settings, dataset_ids: list[str] | None = None,
         engine: SearchEngine | None = None) -> list[DatasetPlan]:
    """What a reindex would do: each dataset, its record count and its current index."""
    ensure_at_head(settings)
    engine = engine or connect(settings.search)
    db = read_only(open_database(settings.database_url))
    try:
        plans = []
        for dataset_id in _dataset_ids(db, dataset_ids):
            with db.connect() as connection:
                schema = load_schema(connection, dataset_id)
                records = count_records(connection, schema.id)
            alias = alias_name(engine.prefix, dataset_id)
            plans.append(DatasetPlan(dataset_id, schema.name, records, alias,
                                     engine.alias_indices(alias), schema.fingerprint))
        return plans
    finally:
        db.dispose()


def reindex(
    settings: Settings,
    dataset_ids: list[str] | None = None,
    *,
    batch_size: int = 500,
    in_place: bool = False,
    report_path: Path | None = None,
    reporter: ReindexReporter | None = None,
    wait: float = 300.0,
    senders: int = 2,
) -> ReindexSummary:
    """Rebuild the indices of ``dataset_ids`` (default: every dataset).

    One run per dataset at a time, across machines: each dataset's build holds its lease
    (``lease.py``); a second run waits up to ``wait`` seconds for it, then raises
    ``ReindexBusyError``. Runs on different datasets proceed in parallel.

    Re-runnable: an interrupted run leaves every alias on its old index; running again
    builds afresh, and ``cleanup`` removes what the interrupted run left.
    """
    reporter = reporter or ReindexReporter()
    ensure_at_head(settings)
    engine = connect(settings.search)
    plans = plan(settings, dataset_ids, engine)
    reporter.planned(plans)
    stamp = datetime.now().strftime("%Y%m%dT%H%M%S")
    report = RejectReport(report_path or settings.home / "reindex" / f"rejected-{stamp}.jsonl")
    db = read_only(open_database(settings.database_url))  # a reindex only reads
    summary = ReindexSummary()
    try:
        for p in plans:
            lease = ReindexLease(engine, p.dataset_id)
            lease.acquire(wait, on_wait=lambda holder, p=p: reporter.note(
                f"{p.name}: another reindex of it runs on {holder.get('host')} (pid "
                f"{holder.get('pid')}); waiting for it"))
            with lease:
                run = _DatasetReindex(db, engine, p, batch_size, report, reporter, lease,
                                      senders)
                summary.results.append(run.in_place() if in_place else run.rebuild())
    finally:
        report.close()
        db.dispose()
    summary.report = report.path if report.count else None
    return summary


def prefetched(items: Iterator[Any], depth: int = 20, chunk: int = 1000) -> Iterator[Any]:
    """``items``, read ahead by a thread into a bounded queue of chunks; its error is
    raised here."""
    buffer: queue.Queue = queue.Queue(maxsize=depth)
    failure: list[BaseException] = []
    stop = threading.Event()

    def put(part: list | None) -> bool:
        while not stop.is_set():
            try:
                buffer.put(part, timeout=0.5)
                return True
            except queue.Full:
                continue
        return False

    def read() -> None:
        try:
            part: list = []
            for item in items:
                part.append(item)
                if len(part) == chunk:
                    if not put(part):
                        return
                    part = []
            if part:
                put(part)
        except BaseException as exc:  # handed to the consumer
            failure.append(exc)
        finally:
            put(None)

    reader = threading.Thread(target=read, name="reindex-prefetch", daemon=True)
    reader.start()
    try:
        while (part := buffer.get()) is not None:
            yield from part
        if failure:
            raise failure[0]
    finally:
        stop.set()  # closed early: the reader stops at its next item
        reader.join(timeout=5)


def identity_differences(db: sa.Engine, engine: SearchEngine, index: str,
                         dataset_id: Any) -> tuple[list[str], list[str]]:
    """(records whose document is missing or at another version, documents of no record):
    the index against the database by identity, a merge of both sides in id order, so
    memory stays flat but for the differences. Each side is read ahead in a thread of its
    own, so the database and the engine work at once."""
    stale: list[str] = []
    extra: list[str] = []
    ours = prefetched(record_version_batches(db, dataset_id, 10000))
    theirs = prefetched(engine.iter_versions(index))
    mine, doc = next(ours, None), next(theirs, None)
    while mine is not None or doc is not None:
        if doc is None or (mine is not None and mine[0] < doc[0]):
            stale.append(mine[0])
            mine = next(ours, None)
        elif mine is None or doc[0] < mine[0]:
            extra.append(doc[0])
            doc = next(theirs, None)
        else:
            if mine[1] != doc[1]:
                stale.append(mine[0])
            mine, doc = next(ours, None), next(theirs, None)
    return stale, extra


class _DatasetReindex:
    def __init__(self, db: sa.Engine, engine: SearchEngine, plan: DatasetPlan, batch_size: int,
                 report: RejectReport, reporter: ReindexReporter,
                 lease: ReindexLease, senders: int = 2) -> None:
        self.db, self.engine, self.plan, self.lease = db, engine, plan, lease
        self.writer = writable(db)  # for the index_changes rows it clears and forgets
        self._replaced: list[str] = []  # the indices the alias pointed at before the swap
        self.senders = senders
        self.batch_size, self.report, self.reporter = batch_size, report, reporter
        with db.connect() as connection:
            self.schema: DatasetSchema = load_schema(connection, plan.dataset_id)
        self.index = new_index_name(engine.prefix, plan.dataset_id)
        self.result = DatasetResult(plan, self.index)
        self.meta = index_meta(self.schema)
        self._rejected: set[str] = set()  # a repair may resend (and fix) a document
        self._lock = threading.Lock()  # the senders share the result and the report

    # -- the two modes ------------------------------------------------------------------
    def rebuild(self) -> DatasetResult:
        """Build; prove the new index equal to the whole dataset while writers go on; catch
        up with what they changed since; then, with the dataset's writers paused, check
        and repair only what they changed since the last catch-up, and swap. The pause
        lasts as long as a few changed records take, whatever the dataset's size. Writes
        made at any time reach the new index: those before the pause by the proof and the
        catch-ups, those after it through the alias."""
        started = time.perf_counter()
        self._build(aliases=[])
        swapped = False
        # from here on, every write that commits is noted in index_changes
        with self.writer.begin() as connection:
            index_changes.clear(connection, self.schema.id)
        if self._reconciled(rounds=2, settle=False):  # the whole-dataset proof
            try:
                for attempt in range(PAUSES):
                    self._catch_up()
                    swapped = self._paused_swap(last=attempt == PAUSES - 1)
                    if swapped is not None:
                        break
            except ReindexError as exc:  # writers never paused: try again later
                self.result.error = str(exc)
            if swapped:
                with self.writer.begin() as connection:  # writes go through the alias now
                    index_changes.clear(connection, self.schema.id)
                for old in self._replaced:
                    if old != self.plan.alias:
                        self.engine.delete_index(old)
        self.result.seconds = time.perf_counter() - started
        self.reporter.dataset_finished(self.result)
        return self.result

    def _catch_up(self) -> None:
        """Catch up with the writers' changes, without pausing them, until a round finds
        few enough to check while they wait (or enough rounds went by)."""
        for _ in range(CATCH_UP_ROUNDS):
            if self._caught_up() <= CAUGHT_UP:
                return

    def _paused_swap(self, *, last: bool) -> bool | None:
        """With the dataset's writers paused: check the records they changed since the last
        catch-up, and swap. None, at once, when a write that committed just before the
        pause left more than a few to check (unless ``last``): the writers go on, and the
        reindex catches up and pauses them again."""
        started = time.perf_counter()
        try:
            with dialect_of(self.db).writes_paused(self.db, self.schema.id, WRITERS_WAIT):
                with self.db.connect() as connection:
                    ids = [r for r, _ in index_changes.pending(connection, self.schema.id)]
                if len(ids) > CAUGHT_UP and not last:
                    return None
                if not (self._changes_indexed(ids) and self._still_leased()):
                    return False
                self._replaced = self._swap()
                return True
        finally:
            paused = time.perf_counter() - started
            self.result.pauses += 1
            self.result.paused = max(self.result.paused or 0.0, paused)
            self.reporter.note(f"{self.plan.name}: writers paused for {paused * 1000:.0f} ms")

    def _caught_up(self) -> int:
        """Index the records changed since the proof (or the last catch-up) as the database
        has them now, and forget those changes; how many there were."""
        with self.db.connect() as connection:
            changes = index_changes.pending(connection, self.schema.id)
        if changes:
            self._sync([r for r, _ in changes])
            with self.writer.begin() as connection:
                index_changes.forget(connection, self.schema.id, changes)
        return len(changes)

    def _changes_indexed(self, ids: list[uuid.UUID]) -> bool:
        """Under the writers' pause: the records changed since the last catch-up, indexed,
        then checked by identity (each at its version, or gone with its record)."""
        self.result.paused_changes = len(ids)
        if not ids:
            return True
        self._sync(ids)
        self.engine.refresh(self.index)
        with self.db.connect() as connection:
            ours = record_versions(connection, self.schema.id, ids)
        theirs = self.engine.versions_of(self.index, [str(i) for i in ids])
        if ours == theirs and not self._rejected:
            return True
        self.result.error = (
            f"{len(self._rejected)} documents rejected (see the report); " if self._rejected
            else f"{sum(ours.get(k) != theirs.get(k) for k in {*ours, *theirs})} changed "
                 "records differ from their documents after a repair; "
        ) + f"alias not switched, {self.index} left for inspection"
        return False

    def _sync(self, ids: list[uuid.UUID]) -> None:
        """The documents of these records as the database has them now; the documents of
        those it no longer has, removed."""
        for start in range(0, len(ids), self.batch_size):
            chunk = ids[start:start + self.batch_size]
            with self.db.connect() as connection:
                docs = documents_for(connection, self.schema, chunk)
            if docs:
                self.result.caught_up += self._send(docs)
            have = {d.id for d in docs}
            remove(self.engine, self.index, [str(i) for i in chunk if str(i) not in have])

    def in_place(self) -> DatasetResult:
        """The old behaviour: delete, then refill under the alias (search is down meanwhile)."""
        started = time.perf_counter()
        for old in self.engine.alias_indices(self.plan.alias):
            self.engine.delete_index(old)
        self._build(aliases=[self.plan.alias])
        self.result.swapped = self._reconciled()
        self.result.seconds = time.perf_counter() - started
        self.reporter.dataset_finished(self.result)
        return self.result

    def _swap(self) -> list[str]:
        """Point the alias at the new index, as the only (write) index; returns the indices
        it pointed at, read now, not from a plan made before the build."""
        current = self.engine.alias_indices(self.plan.alias)
        legacy = [i for i in current if i == self.plan.alias]
        actions = [{"remove_index": {"index": i}} for i in legacy]
        actions += [{"remove": {"index": i, "alias": self.plan.alias}}
                    for i in current if i not in legacy]
        actions.append({"add": {"index": self.index, "alias": self.plan.alias,
                                "is_write_index": True}})
        self.engine.update_aliases(actions)
        self.result.swapped = True
        return current

    # -- steps --------------------------------------------------------------------------
    def _build(self, aliases: list[str]) -> None:
        build_settings = {"index": {"number_of_shards": self.engine.settings.shards,
                                    "number_of_replicas": 0, "refresh_interval": "-1"},
                          **self.engine.index_settings(vectors=bool(self.schema.vectors))}
        self.lease.renew(index=self.index)  # named before it exists: `cleanup` spares it
        self.engine.create_index(self.index, build_settings,
                                 dataset_mapping(self.engine, self.schema, self.meta), aliases)
        self.reporter.dataset_started(self.plan, self.index)
        self._fill()
        self.engine.put_settings(self.index, {"index": {
            "number_of_replicas": self.engine.settings.replicas, "refresh_interval": None}})

    def _fill(self) -> None:
        """``senders`` threads index the batches one reader thread reads ahead."""
        batches = prefetched(document_batches(self.db, self.schema, self.batch_size),
                             depth=2 * self.senders, chunk=1)
        take = threading.Lock()  # a generator serves one thread at a time
        failures: list[BaseException] = []

        def consume() -> None:
            while not failures:
                try:
                    with take:
                        docs = next(batches, None)
                    if docs is None:
                        return
                    indexed = self._send(docs)
                except BaseException as exc:  # handed to the caller, which raises it
                    failures.append(exc)
                    return
                with self._lock:
                    self.result.indexed += indexed
                    done = self.result.indexed + self.result.rejected
                self.reporter.progressed(self.plan, done)

        senders = [threading.Thread(target=consume, name=f"reindex-sender-{i}", daemon=True)
                   for i in range(self.senders)]
        for sender in senders:
            sender.start()
        for sender in senders:
            sender.join()
        with take:
            batches.close()  # stops the reader when a sender failed first
        if failures:
            raise failures[0]

    def _send(self, docs: list[Document]) -> int:
        """Bulk-index ``docs`` (429s retried with backoff, counted); reports every other
        refusal. Returns how many were indexed. Safe from several sender threads."""
        sent = send(self.engine, self.index, docs)
        with self._lock:
            self.result.retried += sent.retried
            for doc_id, status, error in sent.rejected:
                self._reject(doc_id, status, error)
            ok = {doc.id for doc in docs} - {r[0] for r in sent.rejected}
            self._rejected.difference_update(ok)
        return sent.done

    def _reject(self, doc_id: str, status: Any, error: Any) -> None:
        if doc_id not in self._rejected:
            self.report.write(self.plan.dataset_id, self.index, doc_id, status, error)
        self._rejected.add(doc_id)
        self.result.rejected = len(self._rejected)

    def _reconciled(self, rounds: int = 5, *, settle: bool = True) -> bool:
        """Make the index equal the database by identity: every record's document at the
        record's version, and no other document, repairing from the database. With
        ``settle`` it must end equal; without, ``rounds`` repairs only narrow the gap
        (writers are still at work). False (the reason in the result) when documents were
        rejected or it would not settle."""
        for _ in range(rounds):
            if self._rejected:
                break
            self.engine.refresh(self.index)
            stale, extra = self._differences()
            if not stale and not extra:
                self.result.rejected = 0
                return True
            self._repair(stale, extra)
        self.result.rejected = len(self._rejected)
        if not settle and not self._rejected:
            return True
        if self._rejected:
            self.result.error = (f"{self.result.rejected} documents rejected (see the report); "
                                 f"alias not switched, {self.index} left for inspection")
        else:
            self.result.error = (f"the index would not settle to the database after {rounds} "
                                 f"repairs; alias not switched ({self.index} left for "
                                 "inspection)")
        return False

    def _differences(self) -> tuple[list[str], list[str]]:
        stale, extra = identity_differences(self.db, self.engine, self.index, self.schema.id)
        return [i for i in stale if i not in self._rejected], extra

    def _repair(self, stale: list[str], extra: list[str]) -> None:
        self._sync([uuid.UUID(i) for i in stale])
        remove(self.engine, self.index, extra)

    def _still_leased(self) -> bool:
        if self.lease.held():
            return True
        self.result.error = ("lost the reindex lease (the run stalled and another took it "
                             f"over); alias not switched, {self.index} left for cleanup")
        return False
