"""The embedded engine's text postings (``postings.py``) against FTS5 itself: for generated
documents, rewrites, deletions and queries, a text query answered from the postings is
FTS5's answer (``bm25()`` and SQL), the same ids in the same order, the same total and the
same scores to the last bit."""

from __future__ import annotations

import itertools
import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from annota.config import Settings
from annota.search import connect
from annota.search.bulk import remove, send
from annota.search.documents import Document
from annota.search.query import MetadataFilter, SearchQuery, Sort, TextQuery
from annota.search.sqlite import postings
from annota.search.sqlite.engine import SqliteEngine
from tests.conftest import engine_env

MAPPING = {"_meta": {}, "properties": {
    "fields": {"properties": {"title": {"type": "text"}, "body": {"type": "text"}}},
    "metadata": {"properties": {"group": {"type": "keyword"}, "n": {"type": "long"}}}}}
# words FTS5 folds (case), keeps apart (diacritics kept), splits (hyphen, apostrophe) or
# drops (punctuation alone); some rare, some in most documents
WORDS = ["apple", "Apple", "APPLE", "banana", "cherry", "café", "cafe", "naïve", "über",
         "x", "42", "4-2", "it's", "日本", "Ωmega", "ωmega", "straße", "the", "a", "of"]
COUNTER = itertools.count()
IN_SQL = SqliteEngine._find_in_sql

texts = st.lists(st.sampled_from(WORDS), max_size=12).map(" ".join)
docs = st.fixed_dictionaries({"title": texts, "body": texts,
                              "group": st.sampled_from(["g1", "g2", "g3"]),
                              "n": st.integers(0, 5)})
queries = st.builds(
    lambda words, fields, group, sort, offset, limit: (words, fields, group, sort, offset,
                                                       limit),
    st.lists(st.sampled_from([*WORDS, "missing", '"apple banana"', "-", "CAFÉ"]),
             min_size=1, max_size=3),
    st.sampled_from([None, ("title",), ("body",), ("body", "title")]),
    st.sampled_from([None, "g1", "g2"]),
    st.sampled_from(["relevance-desc", "relevance-asc", "n-asc", "n-desc", "updated"]),
    st.integers(0, 6), st.integers(0, 8))


def _document(i: int, doc: dict) -> Document:
    source = {"id": f"d{i:03d}", "updated_at": f"2026-01-01T00:00:{i % 60:02d}",
              "fields": {"title": doc["title"], "body": doc["body"]},
              "metadata": {"group": doc["group"], "n": doc["n"]}}
    return Document(f"d{i:03d}", "v", json.dumps(source))


def _query(words: list[str], fields, group, sort: str, offset: int, limit: int
           ) -> SearchQuery:
    by, _, order = sort.rpartition("-")
    sorts = (Sort(by="updated_at", order="asc"),) if sort == "updated" else (
        Sort(by="relevance" if by == "relevance" else "metadata.n", order=order),)
    return SearchQuery(
        text=TextQuery(q=" ".join(words), fields=fields), sort=sorts, offset=offset,
        limit=limit, filters=(MetadataFilter(property="group", values=(group,)),)
        if group else ())


@pytest.fixture(scope="module")
def engine(tmp_path_factory) -> SqliteEngine:
    where = tmp_path_factory.mktemp("postings")
    env = engine_env(where, f"sqlite:///{where / 'annota.db'}", "", "sqlite")
    engine = connect(Settings.from_env(env).search)
    assert isinstance(engine, SqliteEngine)
    return engine


def _both(engine: SqliteEngine, alias: str, query: SearchQuery) -> tuple:
    """(the engine's answer, FTS5's answer in SQL) to ``query``."""
    answer = engine.find(alias, query, {"group": "keyword", "n": "integer"})
    with engine._reading(alias) as (cursor, index):
        expected = SqliteEngine._find_in_sql(engine, cursor, index, query)  # spied, or not
    return answer, expected


@settings(max_examples=150, deadline=None, suppress_health_check=[
    HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.function_scoped_fixture])
@given(first=st.lists(docs, min_size=0, max_size=25),
       rounds=st.lists(st.tuples(st.lists(st.tuples(st.integers(0, 40), docs), max_size=8),
                                 st.lists(st.integers(0, 40), max_size=5),
                                 st.lists(queries, min_size=1, max_size=4)),
                       min_size=1, max_size=4),
       prune=st.booleans())
def test_the_postings_answer_as_fts5_does(engine, monkeypatch, first, rounds, prune):
    monkeypatch.setattr("annota.search.sqlite.engine.PRUNE_EVERY", 1 if prune else 1000)
    alias = f"p{next(COUNTER)}"
    engine.create_index(f"{alias}-index", {}, MAPPING, [alias])
    held = dict(enumerate(first))
    assert not send(engine, alias, [_document(i, d) for i, d in held.items()]).rejected
    in_sql = []

    def spy(self, cursor, index, query):  # noqa: ANN001, ANN202
        in_sql.append(query)
        return IN_SQL(self, cursor, index, query)

    monkeypatch.setattr(SqliteEngine, "_find_in_sql", spy)
    for written, deleted, asked in rounds:
        for i, doc in written:
            held[i] = doc
        assert not send(engine, alias, [_document(i, d) for i, d in written]).rejected
        assert not remove(engine, alias, [f"d{i:03d}" for i in deleted]).rejected
        for i in deleted:
            held.pop(i, None)
        for spec in asked:
            query = _query(*spec)
            in_sql.clear()
            answer, expected = _both(engine, alias, query)
            assert answer.total == expected.total, query
            assert [(h.id, h.score) for h in answer.hits] == [
                (h.id, h.score) for h in expected.hits], query
            assert [h.source for h in answer.hits] == [h.source for h in expected.hits]
            phrase = any(w in ('"apple banana"', "4-2", "it's") for w in spec[0])
            # the postings answered it unless it holds a phrase of several tokens
            assert (len(in_sql) == 2) is phrase, query
    engine.delete_index(f"{alias}-index")


def test_tokens_are_fts5s(engine):
    with engine.store.read() as cursor:
        split = postings.tokens(cursor, ["Apple", "4-2", "-", "ÜBER", "日本", "it's"])
    assert split == [["apple"], ["4", "2"], [], ["über"], ["日本"], ["it", "s"]]


def test_a_large_catch_up_reads_the_index_whole_and_agrees(engine, monkeypatch):
    """Cold (read whole from FTS5), then caught up by a few writes (the mirror), then by
    more than a quarter of the index (read whole again): the same answers as FTS5."""
    alias = f"p{next(COUNTER)}"
    engine.create_index(f"{alias}-index", {}, MAPPING, [alias])
    words = WORDS * 3
    for step, count in enumerate((200, 10, 120)):
        batch = [_document(i, {"title": " ".join(words[i % 17:i % 17 + 5]),
                               "body": " ".join(words[(i * 7 + step) % 23:][:9]),
                               "group": "g1", "n": i % 4})
                 for i in range(step * 7, step * 7 + count)]
        assert not send(engine, alias, batch).rejected
        for word in ("apple", "the", "café", "banana cherry", "日本 a"):
            query = SearchQuery(text=TextQuery(q=word), limit=15)
            answer, expected = _both(engine, alias, query)
            assert (answer.total, [(h.id, h.score) for h in answer.hits]) == (
                expected.total, [(h.id, h.score) for h in expected.hits]), (step, word)
            assert answer.total > 0, word
