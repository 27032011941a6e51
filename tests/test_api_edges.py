"""The HTTP API at its edges, on a real server process (SQLite and PostgreSQL): invalid input
is 422 with each problem's location and stores nothing; what exists is 409; an import is
all or nothing with the index, and sending it again never duplicates."""

from __future__ import annotations

import uuid

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from annota.config import Settings
from annota.search import connect
from annota.search.engine import alias_name
from tests.api_tools import LiveAPI, writes_refused


# one thing wrong with an otherwise valid record: (the change, where the problem is)
def _mistakes(api: LiveAPI) -> st.SearchStrategy:
    junk = st.one_of(st.none(), st.booleans(), st.integers(), st.text(max_size=5),
                     st.lists(st.integers(), max_size=2))
    name = st.from_regex(r"\A[a-z]{1,8}\Z").filter(
        lambda n: n not in ("text", "note", "source", "length", "score", "embedding"))
    return st.one_of(
        name.map(lambda n: ({"fields": {"text": "t", n: "x"}}, ["fields", n])),
        st.just(({"fields": {"note": "no text"}}, ["fields", "text"])),
        junk.filter(lambda v: not isinstance(v, str) and v is not None).map(
            lambda v: ({"fields": {"text": v}}, ["fields", "text"])),
        st.one_of(st.text(max_size=5), st.floats(allow_nan=False, allow_infinity=False)
                  .filter(lambda f: not f.is_integer())).map(
            lambda v: ({"metadata": {"length": v}}, ["metadata", "length"])),
        st.one_of(st.text(max_size=5), st.booleans()).map(
            lambda v: ({"metadata": {"score": v}}, ["metadata", "score"])),
        st.one_of(st.integers(), st.booleans()).map(
            lambda v: ({"metadata": {"source": v}}, ["metadata", "source"])),
        st.text(max_size=10).filter(lambda v: v not in ("positive", "negative")).map(
            lambda v: ({"responses": [{"user_id": api.owner_id,
                                       "values": {"sentiment": {"value": v}}}]},
                       ["responses", 0, "values", "sentiment", "value"])),
        st.integers().filter(lambda v: v not in range(1, 6)).map(
            lambda v: ({"responses": [{"user_id": api.owner_id,
                                       "values": {"stars": {"value": v}}}]},
                       ["responses", 0, "values", "stars", "value"])),
        st.uuids().map(lambda u: ({"responses": [{"user_id": str(u), "values": {}}]},
                                  ["responses", 0, "user_id"])),
        st.floats(allow_nan=False, allow_infinity=False).filter(lambda f: not 0 <= f <= 1).map(
            lambda v: ({"suggestions": [{"question": "sentiment", "value": "positive",
                                         "score": v}]}, ["suggestions", 0, "score"])),
        name.map(lambda n: ({"suggestions": [{"question": n, "value": "x"}]},
                            ["suggestions", 0, "question"])),
        st.lists(st.floats(allow_nan=False, allow_infinity=False), max_size=6).filter(
            lambda v: len(v) != 3).map(
            lambda v: ({"vectors": {"embedding": v}}, ["vectors", "embedding"])),
        st.lists(st.one_of(st.text(max_size=3), st.booleans(), st.none()), min_size=3,
                 max_size=3).map(
            lambda v: ({"vectors": {"embedding": v}}, ["vectors", "embedding"])),
        name.map(lambda n: ({"vectors": {n: [0.0]}}, ["vectors", n])),
        name.map(lambda n: ({n: 1}, [n])),
    )


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(data=st.data())
def test_an_invalid_record_is_422_at_its_location_and_stores_nothing(api, data):
    change, where = data.draw(_mistakes(api))
    position = data.draw(st.integers(0, 2))
    records = [api.record(1000 + i) for i in range(3)]
    records[position] = {**records[position], **change}
    before = api.snapshot()
    answer = api.call("POST", f"/datasets/{api.dataset_id}/records", json={"records": records})
    assert answer.status_code == 422, answer.text
    locations = [p["loc"] for p in answer.json()["detail"]]
    assert ["body", "records", position, *where] in locations, locations
    assert api.snapshot() == before


def test_duplicates_are_409_and_bad_settings_422_with_nothing_stored(api):
    before = api.snapshot()
    again = api.call("POST", "/workspaces", json={"name": "team"})
    assert again.status_code == 409
    same = api.call("POST", "/datasets", json={"workspace_id": api.workspace_id,
                                               "name": "reviews",
                                               "fields": [{"name": "t", "type": "text"}]})
    assert same.status_code == 409 and "reviews" in same.text
    twice = api.call("POST", "/datasets", json={
        "workspace_id": api.workspace_id, "name": "other",
        "fields": [{"name": "t", "type": "text"}, {"name": "t", "type": "text"}],
        "questions": [{"name": "q", "type": "label_selection", "options": []}],
        "vector_settings": [{"name": "v", "dimensions": 0}]})
    assert twice.status_code == 422
    locations = [p["loc"] for p in twice.json()["detail"]]
    assert ["body", "fields", 1, "name"] in locations
    assert ["body", "questions", 0, "options"] in locations
    assert ["body", "vector_settings", 0, "dimensions"] in locations
    nowhere = api.call("POST", "/datasets", json={"workspace_id": str(uuid.uuid4()),
                                                  "name": "x", "fields": [{"name": "t",
                                                                           "type": "text"}]})
    assert nowhere.status_code == 422
    nul = api.call("POST", "/workspaces", json={"name": "bad\x00name"})
    assert nul.status_code == 422
    assert api.snapshot() == before


@pytest.mark.parametrize(("body", "where"), [
    ({"terms": {"source": [None]}}, ["body", "terms", "source", 0]),
    ({"terms": {"length": ["many"]}}, ["body", "terms", "length"]),
    ({"ranges": {"length": {"gte": "ten"}}}, ["body", "ranges", "length", "gte"]),
    ({"ranges": {"length": {"between": 1}}}, ["body", "ranges", "length", "between"]),
    ({"ranges": {"source": {"gte": 1}}}, ["body", "ranges", "source"]),
    ({"terms": {"nope": ["x"]}}, ["body", "terms", "nope"]),
    ({"filters": [{"type": "metadata", "property": "nope", "values": ["x"]}]},
     ["body", "filters", 0, "property"]),
    ({"filters": [{"type": "metadata", "property": "length", "values": ["x"]}]},
     ["body", "filters", 0, "values"]),
    ({"filters": [{"type": "metadata", "property": "source", "ge": 1}]},
     ["body", "filters", 0, "ge"]),
    ({"filters": [{"type": "response_value", "question": "comment", "values": ["x"]}]},
     ["body", "filters", 0, "values"]),
    ({"filters": [{"type": "suggestion", "question": "nope"}]},
     ["body", "filters", 0, "question"]),
    ({"filters": [{"type": "response_status", "statuses": ["maybe"]}]},
     ["body", "filters", 0, "response_status", "statuses", 0]),
    ({"filters": [{"type": "colour"}]}, ["body", "filters", 0]),
    ({"sort": [{"by": "metadata.nope"}]}, ["body", "sort", 0, "by"]),
    ({"sort": [{"by": "relevance"}]}, ["body", "sort", 0, "by"]),
    ({"text": {"q": "x", "fields": ["nope"]}}, ["body", "text", "fields", 0]),
    ({"offset": 9990, "limit": 20}, ["body"]),
    ({"similarity": {"vector": "nope", "value": [1, 0, 0]}}, ["body", "similarity", "vector"]),
    ({"similarity": {"vector": "embedding", "value": [1, 0]}},
     ["body", "similarity", "value"]),
    ({"similarity": {"vector": "embedding", "value": [0, 0, 0]}},
     ["body", "similarity", "value"]),
    ({"similarity": {"vector": "embedding", "record_id": str(uuid.uuid4())}},
     ["body", "similarity", "record_id"]),
])
def test_search_input_the_engine_would_refuse_is_422(api, body, where):
    answer = api.call("POST", f"/datasets/{api.dataset_id}/records/search", json=body)
    assert answer.status_code == 422, answer.text
    locations = [p["loc"][:len(where)] for p in answer.json()["detail"]]
    assert where in locations, locations


def test_an_import_the_index_refuses_stores_nothing_and_a_retry_does_not_duplicate(api):
    settings = Settings.from_env(api.env)
    engine = connect(settings.search)
    alias = alias_name(settings.search.index_prefix, api.dataset_id)
    (index,) = engine.alias_indices(alias)
    records = [api.record(2000 + i, external_id=None) for i in range(3)]
    before = api.snapshot()
    with writes_refused(engine, index):
        refused = api.call("POST", f"/datasets/{api.dataset_id}/records",
                           json={"records": records})
    assert refused.status_code == 503 and "nothing was stored" in refused.text
    assert api.snapshot() == before
    stored = api.call("POST", f"/datasets/{api.dataset_id}/records", json={"records": records})
    assert stored.status_code == 201 and stored.json()["indexed"] == 3
    after = api.snapshot()
    assert after["rows"]["records"][0] == before["rows"]["records"][0] + 3
    assert sum(after["documents"].values()) == sum(before["documents"].values()) + 3


def test_sending_an_import_again_updates_by_external_id(api):
    records = [api.record(3000 + i) for i in range(4)]
    first = api.call("POST", f"/datasets/{api.dataset_id}/records", json={"records": records})
    assert first.status_code == 201
    counted = api.snapshot()
    records[0]["fields"]["text"] = "a changed text about kiwis"
    again = api.call("POST", f"/datasets/{api.dataset_id}/records", json={"records": records})
    assert again.status_code == 201 and again.json()["ids"] == first.json()["ids"]
    after = api.snapshot()
    for table in ("records", "responses", "suggestions", "vectors"):
        assert after["rows"][table][0] == counted["rows"][table][0], table
    assert after["documents"] == counted["documents"]
    found = api.call("POST", f"/datasets/{api.dataset_id}/records/search",
                     json={"text": "kiwis"}).json()
    assert [h["id"] for h in found["items"]] == [first.json()["ids"][0]]


def test_a_search_pages_sorts_and_counts_and_finds_similar_records(api):
    records = [api.record(4000 + i, external_id=f"p-{i}",
                          metadata={"source": "page", "length": i, "score": 0.5},
                          vectors={"embedding": [1.0, i / 10, 0.0]}) for i in range(7)]
    made = api.call("POST", f"/datasets/{api.dataset_id}/records", json={"records": records})
    assert made.status_code == 201, made.text
    ids = made.json()["ids"]
    page = api.call("POST", f"/datasets/{api.dataset_id}/records/search", json={
        "filters": [{"type": "metadata", "property": "source", "values": ["page"]}],
        "sort": [{"by": "metadata.length", "order": "desc"}], "offset": 2, "limit": 3})
    assert page.status_code == 200, page.text
    assert page.json()["total"] == 7
    assert [h["id"] for h in page.json()["items"]] == [ids[4], ids[3], ids[2]]
    like = api.call("POST", f"/datasets/{api.dataset_id}/records/search", json={
        "filters": [{"type": "metadata", "property": "source", "values": ["page"]}],
        "similarity": {"vector": "embedding", "record_id": ids[0], "k": 2}})
    assert like.status_code == 200, like.text
    assert [h["id"] for h in like.json()["items"]] == [ids[0], ids[1]]
    counts = api.call("POST", f"/datasets/{api.dataset_id}/metadata/length/metrics",
                      json={"filters": [{"type": "metadata", "property": "source",
                                         "values": ["page"]}]})
    assert counts.status_code == 200, counts.text
    assert (counts.json()["min"], counts.json()["max"]) == (0, 6)
    missing = api.call("POST", f"/datasets/{api.dataset_id}/metadata/nope/metrics", json={})
    assert missing.status_code == 404
    done = api.call("POST", f"/datasets/{api.dataset_id}/progress", json={"filters": [
        {"type": "metadata", "property": "source", "values": ["page"]}]})
    assert done.status_code == 200, done.text
    assert (done.json()["total"], done.json()["completed"]) == (7, 7)  # each submitted
    assert done.json()["users"] == {api.owner_id: {"submitted": 7, "draft": 0,
                                                   "discarded": 0, "pending": 0}}


def test_a_reindex_request_returns_a_task_that_ends_with_the_index_equal(api):
    """``POST /datasets/{id}/reindex``: 202 and a task to poll; while it runs, asking again
    gives the same task; it ends finished, the alias on a new index with every record."""
    import time

    from annota.search import maintenance

    settings_ = Settings.from_env(api.env)
    engine = connect(settings_.search)
    alias = alias_name(settings_.search.index_prefix, api.dataset_id)
    before = engine.alias_indices(alias)
    first = api.call("POST", f"/datasets/{api.dataset_id}/reindex")
    again = api.call("POST", f"/datasets/{api.dataset_id}/reindex")
    assert first.status_code == again.status_code == 202, first.text
    task = first.json()
    assert task["kind"] == "reindex" and task["dataset_id"] == api.dataset_id
    if again.json()["status"] in ("queued", "running"):
        assert again.json()["id"] == task["id"]  # not a second build beside the first
    deadline = time.monotonic() + 120
    while task["status"] in ("queued", "running"):
        assert time.monotonic() < deadline, task
        time.sleep(0.1)
        task = api.call("GET", f"/tasks/{task['id']}").json()
    assert task["status"] == "finished", task
    assert task["result"]["swapped"] is True
    assert engine.alias_indices(alias) != before
    (state,) = [d for d in maintenance.status(settings_, engine, verify=True).datasets
                if d.dataset_id == api.dataset_id]
    assert not state.needs_reindex, state.reasons
    assert api.call("GET", f"/tasks/{uuid.uuid4().hex}").status_code == 404
    assert api.call("POST", f"/datasets/{uuid.uuid4()}/reindex").status_code == 404
