"""One reindex per dataset at a time, across processes: the lease in the engine. Two runs
started together, a run that waits no longer, a run whose lease was taken, first imports
racing each other and a reindex: the alias always ends on exactly one index."""

from __future__ import annotations

import threading
import time

import pytest
import sqlalchemy as sa

from annota.errors import SearchEngineError
from annota.search import connect
from annota.search import reindex as reindexing
from annota.search.lease import ReindexLease, lease_index
from annota.search.live import ensure_index
from annota.search.mapping import load_schema
from annota.server.db import open_database
from annota.server.domain import models as m
from tests.conftest import Annota
from tests.search_tools import (
    Started,
    alias_of,
    create_dataset,
    engine_of,
    migrated,
    run_in_thread,
)


def test_two_reindexes_started_together_end_on_one_index(search_env):
    settings = migrated(search_env)
    # builds long enough (200 batches) that two processes started together overlap even
    # on the embedded engine, which indexes 300 records in a tenth of a second
    dataset = create_dataset(settings, 1000)
    annota = Annota(search_env)
    runs = [annota.popen("server", "search-engine", "reindex", "--batch-size", "5")
            for _ in range(2)]
    outputs = [run.communicate(timeout=300)[0] for run in runs]
    assert [run.returncode for run in runs] == [0, 0], outputs
    assert any("waiting for it" in out for out in outputs), outputs  # one waited
    engine, alias = engine_of(settings), alias_of(settings, dataset)
    (index,) = engine.alias_indices(alias)
    engine.refresh(alias)
    assert engine.count(alias) == 1000
    assert list(engine.indices(f"{alias}*")) == [index]  # nothing left behind
    assert engine.get_document(lease_index(engine.prefix), str(dataset)) is None  # released


def test_a_run_that_may_not_wait_exits_13_and_changes_nothing(search_env):
    settings = migrated(search_env)
    dataset = create_dataset(settings, 20)
    reindexing.reindex(settings)
    engine, alias = engine_of(settings), alias_of(settings, dataset)
    before = engine.alias_indices(alias)
    with ReindexLease(engine, str(dataset)) as held:
        held.acquire(5)
        result = Annota(search_env).run("server", "search-engine", "reindex", "--wait", "1")
    assert result.returncode == 13, result.stderr
    assert "another reindex of dataset" in result.stderr and "--wait" in result.stderr
    assert engine.alias_indices(alias) == before
    assert len(engine.indices(f"{alias}*")) == 1


def test_a_dead_holder_is_taken_over_and_a_stolen_lease_stops_the_swap(search_env):
    settings = migrated(search_env)
    dataset = create_dataset(settings, 200)
    reindexing.reindex(settings)
    engine, alias = engine_of(settings), alias_of(settings, dataset)
    (old,) = engine.alias_indices(alias)

    dead = ReindexLease(engine, str(dataset), renew_seconds=3600)  # never renews: "killed"
    dead.acquire(5)
    waiter = ReindexLease(engine, str(dataset), stale_seconds=1.0)
    started = time.monotonic()
    waiter.acquire(30)  # takes over once the holder's version stood still for 1 s
    assert 0.9 <= time.monotonic() - started < 20
    assert not dead.held()  # the dead one, waking up, finds it lost the lease
    waiter.release()

    class Thief(reindexing.ReindexReporter):
        def progressed(self, plan, done: int) -> None:  # noqa: ANN001
            body, version = engine.get_document(lease_index(engine.prefix), str(dataset))
            engine.replace_document(lease_index(engine.prefix), str(dataset),
                                    {**body, "owner": "thief"}, version)

    summary = reindexing.reindex(settings, batch_size=50, reporter=Thief())
    (result,) = summary.results
    assert not result.swapped and "lost the reindex lease" in result.error
    assert engine.alias_indices(alias) == [old]


def test_first_imports_racing_each_other_and_a_reindex_make_one_index(search_env):
    settings = migrated(search_env)
    dataset = create_dataset(settings, 0)
    engine = engine_of(settings)
    alias = alias_of(settings, dataset)
    db = open_database(settings.database_url)
    with db.connect() as connection:
        schema = load_schema(connection, dataset)
    db.dispose()
    runs = [run_in_thread(ensure_index, connect(settings.search), schema) for _ in range(4)]
    runs.append(run_in_thread(reindexing.reindex, settings))
    for thread, _ in runs:
        thread.join(timeout=120)
    assert [box["error"] for _, box in runs if "error" in box] == []
    assert len(engine.alias_indices(alias)) == 1


def test_an_alias_action_the_engine_refuses_fails(search_env):
    settings = migrated(search_env)
    dataset = create_dataset(settings, 5)
    reindexing.reindex(settings)
    engine, alias = engine_of(settings), alias_of(settings, dataset)
    (index,) = engine.alias_indices(alias)
    with pytest.raises(SearchEngineError, match="could not switch aliases"):
        engine.update_aliases([{"remove": {"index": index, "alias": f"{alias}-nope"}}])
    with pytest.raises(SearchEngineError, match="could not switch aliases"):
        engine.check_aliases_switched({"acknowledged": True, "errors": True})
    assert engine.alias_indices(alias) == [index]


def test_on_sqlite_a_reindex_reads_while_a_writer_holds_the_lock(search_env):
    settings = migrated(search_env)
    dataset = create_dataset(settings, 50)
    writer = open_database(settings.database_url)
    reading = Started()
    box: dict = {}
    with writer.begin() as connection:  # BEGIN IMMEDIATE: the write lock, held
        connection.exec_driver_sql("UPDATE datasets SET guidelines = 'busy'")
        thread = threading.Thread(target=lambda: box.update(
            summary=reindexing.reindex(settings, batch_size=10, reporter=reading)))
        thread.start()
        # the reindex reads records while the writer still holds the lock (it would wait
        # out the 30 s busy timeout, then fail, if reads took the write lock)
        assert reading.event.wait(20)
    thread.join(timeout=120)  # the writer is done: the final check and swap go ahead
    writer.dispose()
    (result,) = box["summary"].results
    assert result.swapped and result.indexed == 50, result.error
    assert engine_of(settings).count(alias_of(settings, dataset)) == 50


@pytest.fixture(params=["sqlite", "postgresql"])
def any_db_search_env(request, tmp_path, search_server):
    from tests.conftest import _drop_indices, _search_env

    url = request.getfixturevalue("sqlite_url" if request.param == "sqlite" else "postgres_url")
    env = _search_env(tmp_path, url, search_server)
    yield env
    _drop_indices(env)


def test_writes_at_every_moment_of_a_reindex_reach_the_new_index(any_db_search_env):
    """While the index is rebuilt, writers keep going through the API's all-or-nothing path:
    small batches of new records with an update by external id, large batches in long
    transactions (held open for seconds), and deletes. Afterwards the alias has exactly
    one index, whose ids and versions are the database's."""
    from annota.search.documents import record_version_batches
    from annota.search.live import deleted_and_unindexed, imported_and_indexed
    from annota.server.domain import datasets
    from tests.search_tools import record

    settings = migrated(any_db_search_env)
    dataset = create_dataset(settings, 400)
    reindexing.reindex(settings)
    engine, alias = engine_of(settings), alias_of(settings, dataset)
    db = open_database(settings.database_url)
    with db.connect() as connection:
        users = [r[0] for r in connection.exec_driver_sql("SELECT id FROM users").all()]
    stop, written, deleted, failures = threading.Event(), [], [], []

    def import_(batch: list[dict], hold: float = 0.0) -> None:
        def write(connection):  # noqa: ANN001, ANN202
            ids = datasets.import_records(connection, dataset, batch)
            time.sleep(hold)  # a long transaction: open, its rows written, not committed
            return ids
        ids, _ = imported_and_indexed(db, connect(settings.search), dataset, write)
        written.extend(ids)

    # writers at a steady rate (on SQLite they queue for its one write lock, which also
    # pauses them for the final check: saturating it would time them out by design)
    def small_batches() -> None:
        n = 10_000
        while not stop.wait(0.05):
            import_([record(n + k, users[:1]) for k in range(3)]
                    + [record(n % 400, users[:1], word="updated")])  # an update by ext id
            n += 3

    def long_transactions() -> None:
        n = 50_000
        while not stop.wait(0.5):
            import_([record(n + k, users[:1]) for k in range(150)], hold=1.5)
            n += 150

    def deletes() -> None:
        while not stop.wait(0.5):
            with db.connect() as connection:
                # a record of the long transactions' (nobody updates those meanwhile)
                victim = connection.execute(sa.select(m.Record.id).where(
                    m.Record.dataset_id == dataset, m.Record.external_id.like("ext-5____"))
                    .limit(1)).scalar()
            if victim is not None:
                deleted.append(deleted_and_unindexed(db, connect(settings.search), dataset,
                                                     [victim]))

    def guarded(work):  # noqa: ANN001, ANN202
        def run() -> None:
            try:
                work()
            except Exception as exc:  # noqa: BLE001 - reported below
                failures.append(exc)
        return run

    writers = [threading.Thread(target=guarded(w))
               for w in (small_batches, long_transactions, deletes)]
    for writer in writers:
        writer.start()
    try:
        deadline = time.monotonic() + 60
        while len(written) < 160 and time.monotonic() < deadline and not failures:
            time.sleep(0.1)  # every kind of writer is at work before the reindex starts
        before = len(written), len(deleted)
        summary = reindexing.reindex(settings, batch_size=10)
        during = len(written) - before[0], len(deleted) - before[1]
    finally:
        stop.set()
        for writer in writers:
            writer.join(timeout=120)
    assert failures == []
    (result,) = summary.results
    assert result.swapped, result.error
    assert during[0] > 0 and sum(deleted) > 0, during  # writes and deletes meanwhile
    (index,) = engine.alias_indices(alias)
    engine.refresh(alias)
    expected = dict(record_version_batches(db, dataset, 1000))
    db.dispose()
    assert dict(engine.iter_versions(index)) == expected


@pytest.fixture
def cluster_env(tmp_path, sqlite_url):
    import os

    from tests.conftest import SEARCH_ENGINES, _drop_indices, _search_env, service_missing

    kind, variable = SEARCH_ENGINES["es-cluster"]
    if not os.environ.get(variable):
        service_missing(f"no two-node cluster: set {variable} (`bash scripts/test` starts one)")
    env = _search_env(tmp_path, sqlite_url, (kind, os.environ[variable]))
    yield env
    _drop_indices(env)


def test_on_a_cluster_429s_are_retried_and_replicas_restored(cluster_env):
    """The cluster's nodes have one write thread and a write queue of 1: parallel senders
    make it refuse bulk work with 429, which the reindex sends again until the index
    equals the database."""
    settings = migrated(cluster_env)
    dataset = create_dataset(settings, 3000)
    summary = reindexing.reindex(settings, batch_size=50, senders=16)
    (result,) = summary.results
    assert result.swapped and result.indexed == 3000, result.error
    assert result.retried > 0  # the engine did refuse, and the refused were sent again
    engine, alias = engine_of(settings), alias_of(settings, dataset)
    (index,) = engine.alias_indices(alias)
    health = engine.client.cluster.health(index=index, wait_for_status="green", timeout="60s")
    assert health["status"] == "green" and health["active_shards"] == 4  # 2 shards x 2 copies
    assert engine.count(alias) == 3000


def test_large_records_go_in_requests_bounded_in_bytes(cluster_env):
    """The cluster accepts requests of at most 20 MB: ten records of 3 MB in one batch
    would be refused (413) as one request; bounded in bytes, they all arrive."""
    from annota.server.domain import datasets
    from tests.search_tools import record

    settings = migrated(cluster_env)
    dataset = create_dataset(settings, 0)
    db = open_database(settings.database_url)
    with db.begin() as connection:
        users = [r[0] for r in connection.exec_driver_sql("SELECT id FROM users").all()]
        big = [{**record(i, users), "fields": {"text": f"{i} " + "word " * 600_000,
                                                "image": f"https://img/{i}.png"}}
               for i in range(10)]
        datasets.import_records(connection, dataset, big)
    db.dispose()
    summary = reindexing.reindex(settings, batch_size=50)  # one batch of 30 MB
    (result,) = summary.results
    assert result.swapped and result.indexed == 10 and result.rejected == 0, result.error
    assert engine_of(settings).count(alias_of(settings, dataset)) == 10
