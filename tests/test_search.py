"""The search layer and reindex on real Elasticsearch 8 and 9 and OpenSearch 2."""

from __future__ import annotations

import json
import os
import signal
import time

import sqlalchemy as sa

from annota.search import maintenance
from annota.search import reindex as reindexing
from annota.search.mapping import MAPPING_VERSION
from annota.search.query import (
    MetadataFilter,
    ResponseStatusFilter,
    ResponseValueFilter,
    SearchQuery,
    SuggestionFilter,
    TextQuery,
)
from annota.search.searching import search
from annota.server.db import open_database
from annota.server.domain import models as m
from tests.conftest import Annota, make_env
from tests.search_tools import (
    Started,
    add_records,
    alias_of,
    create_dataset,
    engine_of,
    migrated,
    run_in_thread,
)

TYPES = {"source": "terms", "length": "integer"}


def test_reindex_builds_a_searchable_index_behind_an_alias(search_env_any_db):
    settings = migrated(search_env_any_db)
    dataset = create_dataset(settings, 120)
    summary = reindexing.reindex(settings, batch_size=50)
    assert not summary.failed and summary.report is None
    (result,) = summary.results
    assert (result.indexed, result.rejected, result.swapped) == (120, 0, True)

    engine, alias = engine_of(settings), alias_of(settings, dataset)
    assert engine.alias_indices(alias) == [result.index]
    assert result.index.startswith(alias + ".")
    assert engine.count(alias) == 120
    meta = engine.mapping_meta(alias)[result.index]["annota"]
    assert meta["mapping_version"] == MAPPING_VERSION and meta["dataset_id"] == str(dataset)

    def found(**query) -> list[dict]:  # noqa: ANN003
        return [h.source for h in search(engine, dataset, SearchQuery(**query), TYPES).hits]

    (hit,) = found(text=TextQuery(q="number 7"), limit=1)
    assert hit["external_id"] == "ext-7" and hit["metadata"]["undeclared"] == "kept"
    by_metadata = found(filters=(MetadataFilter(property="source", values=("web",)),
                                 MetadataFilter(property="length", lt=10)), limit=100)
    assert sorted(h["external_id"] for h in by_metadata) == [
        f"ext-{i}" for i in (0, 2, 4, 6, 8)]
    answered = found(filters=(ResponseValueFilter(question="sentiment", values=("positive",)),
                              ResponseStatusFilter(statuses=("submitted",))), limit=200)
    assert len(answered) == 80  # each record has two answers, one of them is positive for 2/3
    assert found(filters=(SuggestionFilter(question="sentiment", agents=("model-b",)),)) == []
    assert len(found(filters=(SuggestionFilter(question="sentiment", agents=("model-a",)),),
                     limit=200)) == 120
    assert len(engine.knn_search(alias, "embedding", [0.5, 0.5, 0.5, 0.5], 5)) == 5

    state = maintenance.status(settings)
    assert not state.drift and state.datasets[0].documents == 120


def test_search_keeps_answering_and_writes_are_not_lost_during_a_reindex(search_env):
    settings = migrated(search_env)
    dataset = create_dataset(settings, 1500)
    reindexing.reindex(settings)
    engine, alias = engine_of(settings), alias_of(settings, dataset)
    (old,) = engine.alias_indices(alias)

    started = Started()
    thread, box = run_in_thread(reindexing.reindex, settings, batch_size=25, reporter=started)
    assert started.event.wait(60)
    late = add_records(settings, dataset, range(5000, 5010), word="latecomer")
    answers, saw_new_index = [], False
    while thread.is_alive():
        answers.append(engine.count(alias))
        saw_new_index |= len(engine.indices(f"{alias}*")) > 1
        time.sleep(0.02)
    thread.join()
    assert "error" not in box, box.get("error")
    assert saw_new_index and len(answers) > 3
    # until the swap the alias answered from the old index, always with all its records
    assert set(answers) <= {1500, 1510}

    (new,) = engine.alias_indices(alias)
    assert new != old and old not in engine.indices(f"{alias}*")
    assert engine.count(alias) == 1510
    found = search(engine, dataset, SearchQuery(text=TextQuery(q="latecomer")), TYPES)
    assert {h.id for h in found.hits} == {str(i) for i in late}


def corrupt_vectors(settings, record_ids, *, dims: int) -> None:  # noqa: ANN001
    """Vectors the import would refuse, written behind its back (old releases did not
    check), so the engine is the one to reject them."""
    db = open_database(settings.database_url)
    try:
        with db.begin() as connection:
            connection.execute(sa.update(m.Vector.__table__)
                               .where(m.Vector.record_id.in_(record_ids))
                               .values(value=[0.5] * dims))
    finally:
        db.dispose()


def test_rejected_documents_are_reported_and_fail_the_run(search_env, tmp_path):
    settings = migrated(search_env)
    dataset = create_dataset(settings, 40)
    annota = Annota(search_env)
    assert annota.run("server", "search-engine", "reindex").returncode == 0
    engine, alias = engine_of(settings), alias_of(settings, dataset)
    (old,) = engine.alias_indices(alias)
    bad = add_records(settings, dataset, range(100, 103))
    corrupt_vectors(settings, bad, dims=7)  # as a legacy writer left them: the wrong size
    report = tmp_path / "rejected.jsonl"
    result = annota.run("server", "search-engine", "reindex", "--report", str(report))
    assert result.returncode == 10, result.stderr
    assert "3 documents rejected" in result.stderr and str(report) in result.stderr
    lines = [json.loads(line) for line in report.read_text().splitlines()]
    assert sorted(line["record_id"] for line in lines) == sorted(str(i) for i in bad)
    assert all(line["status"] == 400 and line["dataset_id"] == str(dataset) for line in lines)
    assert engine.alias_indices(alias) == [old]  # not switched
    assert engine.count(alias) == 40
    assert len(maintenance.status(settings).orphans) == 1  # the refused index, for inspection
    assert annota.run("server", "search-engine", "cleanup").returncode == 0
    assert list(engine.indices(f"{alias}*")) == [old]


def test_dry_run_changes_nothing(search_env):
    settings = migrated(search_env)
    dataset = create_dataset(settings, 10)
    annota = Annota(search_env)
    result = annota.run("server", "search-engine", "reindex", "--dry-run", "--json")
    assert result.returncode == 0, result.stderr
    (planned,) = json.loads(result.stdout)["datasets"]
    assert planned == {"dataset_id": str(dataset), "name": "reviews", "records": 10,
                       "alias": alias_of(settings, dataset), "current_indices": []}
    assert engine_of(settings).indices(f"{alias_of(settings, dataset)}*") == {}


def test_in_place_rebuilds_under_the_alias(search_env):
    settings = migrated(search_env)
    dataset = create_dataset(settings, 30)
    reindexing.reindex(settings)
    engine, alias = engine_of(settings), alias_of(settings, dataset)
    (old,) = engine.alias_indices(alias)
    summary = reindexing.reindex(settings, in_place=True)
    (new,) = engine.alias_indices(alias)
    assert new != old and list(engine.indices(f"{alias}*")) == [new]
    assert summary.results[0].swapped and engine.count(alias) == 30


def test_status_reports_drift_and_orphans(search_env):
    settings = migrated(search_env)
    dataset = create_dataset(settings, 12)
    annota = Annota(search_env)
    missing = annota.run("server", "search-engine", "status", "--json")
    assert missing.returncode == 12
    assert json.loads(missing.stdout)["datasets"][0]["reasons"] == ["no index"]
    reindexing.reindex(settings)
    assert annota.run("server", "search-engine", "status").returncode == 0
    add_records(settings, dataset, range(50, 53))
    drift = annota.run("server", "search-engine", "status", "--json")
    assert drift.returncode == 12
    (row,) = json.loads(drift.stdout)["datasets"]
    assert (row["records"], row["documents"], row["needs_reindex"]) == (15, 12, True)


def test_unknown_dataset_is_a_clear_error(search_env):
    migrated(search_env)
    annota = Annota(search_env)
    for args in (["--dataset-id", "6c1b2d9e-0000-4000-8000-000000000000"],
                 ["--feedback-dataset-id", "not-a-uuid"]):
        result = annota.run("server", "search-engine", "reindex", *args)
        assert result.returncode == 11
        assert "no dataset with id" in result.stderr
        assert len(result.stderr.strip().splitlines()) == 1


def test_a_killed_reindex_leaves_the_old_index_live_and_a_rerun_finishes(search_env):
    settings = migrated(search_env)
    dataset = create_dataset(settings, 3000)
    annota = Annota(search_env)
    assert annota.run("server", "search-engine", "reindex").returncode == 0
    engine, alias = engine_of(settings), alias_of(settings, dataset)
    (old,) = engine.alias_indices(alias)

    process = annota.popen("server", "search-engine", "reindex", "--batch-size", "20")
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:  # kill -9 once the new index is partly built
        building = [i for i in engine.indices(f"{alias}*") if i != old]
        if building:
            engine.refresh(building[0])
            if engine.count(building[0]) >= 200:
                break
        time.sleep(0.05)
    os.kill(process.pid, signal.SIGKILL)
    process.wait(timeout=30)
    assert engine.alias_indices(alias) == [old] and engine.count(alias) == 3000
    (orphan,) = [i for i in engine.indices(f"{alias}*") if i != old]
    assert engine.count(orphan) < 3000

    rerun = annota.run("server", "search-engine", "reindex")
    assert rerun.returncode == 0, rerun.stderr
    (new,) = engine.alias_indices(alias)
    assert new not in (old, orphan) and engine.count(alias) == 3000
    assert maintenance.status(settings).orphans == [orphan]
    cleaned = annota.run("server", "search-engine", "cleanup")
    assert cleaned.returncode == 0 and f"Deleted {orphan}" in cleaned.stdout
    assert list(engine.indices(f"{alias}*")) == [new]


def test_cleanup_keeps_an_index_a_live_reindex_is_building(search_env):
    settings = migrated(search_env)
    dataset = create_dataset(settings, 1500)
    started = Started()
    thread, box = run_in_thread(reindexing.reindex, settings, batch_size=20, reporter=started)
    assert started.event.wait(60)
    result = maintenance.cleanup(settings, dry_run=False)
    thread.join()
    assert "error" not in box, box.get("error")
    assert result.deleted == [] and len(result.kept_building) == 1
    assert engine_of(settings).count(alias_of(settings, dataset)) == 1500


def test_unreachable_and_wrong_engines_are_one_line_and_an_exit_code(tmp_path, search_server):
    kind, url = search_server
    other = "opensearch" if kind == "elasticsearch" else "elasticsearch"
    unreachable = "http://user:Sup3r-s3cret@127.0.0.1:1"
    cases = [
        ({"ANNOTA_SEARCH_ENGINE": kind, "ANNOTA_ELASTICSEARCH": unreachable}, 8, "cannot reach"),
        ({"ANNOTA_SEARCH_ENGINE": other, "ANNOTA_ELASTICSEARCH": url}, 9, "is not "),
        ({"ANNOTA_SEARCH_ENGINE": "solr"}, 2, "ANNOTA_SEARCH_ENGINE must be one of"),
    ]
    if kind == "sqlite":  # its file cannot be made (under a file), or is not SQLite's
        (tmp_path / "a-file").write_text("not a directory")
        (tmp_path / "not-sqlite.db").write_bytes(b"Sup3r-s3cret " * 200)
        cases[:2] = [
            ({"ANNOTA_SEARCH_ENGINE": kind,
              "ANNOTA_SEARCH_PATH": str(tmp_path / "a-file" / "search.db")}, 8, "cannot reach"),
            ({"ANNOTA_SEARCH_ENGINE": kind,
              "ANNOTA_SEARCH_PATH": str(tmp_path / "not-sqlite.db")}, 9, "is not "),
        ]
    migrated = make_env(tmp_path, None)  # the engine's errors, on a database at head
    assert Annota(migrated).run("server", "database", "migrate").returncode == 0
    for extra, code, message in cases:
        annota = Annota({**migrated, **extra})
        for command in ("reindex", "status", "cleanup"):
            result = annota.run("server", "search-engine", command)
            assert result.returncode == code, (extra, command, result.stderr)
            assert message in result.stderr and "Traceback" not in result.stderr
            assert "Sup3r-s3cret" not in result.stderr
            assert len(result.stderr.strip().splitlines()) == 1


def test_zero_datasets_is_nothing_to_do_not_a_crash(search_env):
    migrated(search_env)
    annota = Annota(search_env)
    reindexed = annota.run("server", "search-engine", "reindex")
    assert reindexed.returncode == 0, reindexed.stderr
    assert "No datasets: nothing to reindex." in reindexed.stdout
    as_json = annota.run("server", "search-engine", "reindex", "--json")
    assert as_json.returncode == 0 and json.loads(as_json.stdout)["datasets"] == []
    status = annota.run("server", "search-engine", "status")
    assert status.returncode == 0 and "No datasets." in status.stdout


def test_the_search_command_answers_and_refuses_in_one_line(tmp_path):
    """`search-engine search` on the embedded default: the quickstart's archive found by
    name and text, a filter in --query, and every wrong input one line with its exit
    code, nothing shown as found."""
    from pathlib import Path

    annota = Annota(make_env(tmp_path, None))  # SQLite, no engine URL: the embedded one
    archive = Path(__file__).resolve().parent.parent / "examples" / "reviews.annota"
    assert annota.run("server", "database", "migrate").returncode == 0
    imported = annota.run("server", "database", "import", str(archive), "--yes")
    assert imported.returncode == 0, imported.stderr
    found = annota.run("server", "search-engine", "search", "reviews", "banana", "--json")
    assert found.returncode == 0, found.stderr
    assert sorted(i["fields"]["text"] for i in json.loads(found.stdout)["items"]) == [
        "Best banana smoothie in town.", "The banana bread was moist and sweet."]
    mail = annota.run("server", "search-engine", "search", "reviews", "banana", "--query",
                      json.dumps({"filters": [{"type": "metadata", "property": "source",
                                               "values": ["mail"]}]}), "--json")
    assert [i["fields"]["text"] for i in json.loads(mail.stdout)["items"]] == [
        "Best banana smoothie in town."]
    for args, code, message in [
        (["nope", "banana"], 11, "no dataset with id or name 'nope'"),
        (["reviews", "--query", "{"], 1, "--query is not JSON"),
        (["reviews", "--query", "[]"], 1, "--query is not a JSON object"),
        (["reviews", "--query", '{"limit": -1}'], 1, "limit"),
        (["reviews", "--query", '{"offset": NaN}'], 1, "offset"),
        (["reviews", "--query", json.dumps({"filters": [
            {"type": "metadata", "property": "nope", "values": ["x"]}]})], 1,
         "filters.0.property: the dataset has no such metadata property"),
    ]:
        result = annota.run("server", "search-engine", "search", *args)
        assert result.returncode == code, (args, result.stderr)
        assert result.stderr.count("\n") == 1 and message in result.stderr, result.stderr
        assert result.stdout == "" and "Traceback" not in result.stderr
