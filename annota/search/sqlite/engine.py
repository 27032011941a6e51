"""The embedded engine: annota's search in a SQLite file, with nothing else to run.

It implements the interface the cluster engines do (``engine.py``): indices behind
aliases switched in one transaction, bulk writes answering per document as the clients'
``streaming_bulk`` does, versioned documents for the leases, and annota's queries
answered by FTS5's bm25 over in-memory postings for text (``postings.py``; FTS5 in SQL,
``compile.py``, for a phrase), in-memory columns for filters, sorts, totals, metrics and
progress (``columns.py``, SQL for what they do not hold), and exact cosine for
similarity (``vectors.py``). So a reindex, its lease,
``status`` and ``cleanup`` run here by the same code as on a cluster.
"""

from __future__ import annotations

import fnmatch
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import orjson

from annota.errors import (
    SearchEngineError,
    SearchEngineOverloadedError,
    WrongSearchEngineError,
)
from annota.search.engine import EngineInfo, Finding, SearchEngine, Versioned
from annota.search.query import Hit, SearchQuery, SearchResult
from annota.search.sqlite import columns, ingest, postings, vectors
from annota.search.sqlite import compile as sql
from annota.search.sqlite.store import (
    Store,
    create_tables,
    drop_tables,
    dumps,
    layout_of,
    table_prefix,
)
from annota.server.db.health import free_bytes

PLAIN = {"kind": "plain"}
PRUNE_EVERY = 1000  # writes to an index between two prunes of its deletions' log


class _Index:
    __slots__ = ("id", "name", "layout", "t")

    def __init__(self, index_id: int, name: str, layout: str) -> None:
        self.id, self.name, self.layout = index_id, name, orjson.loads(layout)
        self.t = table_prefix(index_id)


class _Missing(Exception):
    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.name = name


class SqliteEngine(SearchEngine):
    kind, label = "sqlite", "the embedded search engine"

    def _client(self) -> Store:
        assert self.settings.path is not None
        return Store(self.settings.path)

    @property
    def store(self) -> Store:
        return self.client

    @contextmanager
    def _call(self, what: str) -> Iterator[None]:
        try:
            yield
        except _Missing as exc:
            raise self.refused(what, 404, {"error": {
                "type": "index_not_found_exception",
                "reason": f"no such index [{exc.name}]"}}) from None
        except sqlite3.OperationalError as exc:
            if "locked" in str(exc) or "busy" in str(exc):
                raise SearchEngineOverloadedError(
                    f"{self.label} ({self.settings.masked_url}) stayed locked by another "
                    "writer; try again shortly") from None
            if "unable to open" in str(exc) or "readonly" in str(exc):
                raise self.unreachable(exc) from None
            raise self.refused(what, 500, str(exc)) from None
        except sqlite3.DatabaseError as exc:
            if "not a database" in str(exc):
                raise WrongSearchEngineError(
                    f"{self.settings.masked_url} is not a SQLite database (the embedded "
                    "search engine's file); set ANNOTA_SEARCH_PATH to another file") from None
            raise self.refused(what, 500, str(exc)) from None
        except OSError as exc:  # its directory cannot be made
            raise self.unreachable(exc) from None

    def info(self) -> EngineInfo:
        with self._call("open its file"):
            connection = self.store.connection()
            if "ENABLE_FTS5" not in {r[0] for r in connection.execute(
                    "PRAGMA compile_options")}:
                raise SearchEngineError(
                    f"this Python's SQLite {sqlite3.sqlite_version} has no FTS5; use a "
                    "Python built with it, or a cluster engine (ANNOTA_SEARCH_ENGINE)")
        way = "sqlite-vec" if self._extension() else "numpy"
        return EngineInfo(self.kind, f"SQLite {sqlite3.sqlite_version}, FTS5, vectors: {way}")

    def findings(self) -> list[Finding]:
        """Its file's disk: a reindex builds the new generation beside the live one, so
        may need the file's size again."""
        path = self.store.path
        size = path.stat().st_size if path.exists() else 0
        free = free_bytes(path.parent)
        detail = f"{path}: {size >> 20} MiB, {free >> 20} MiB free"
        return [Finding("search-disk", detail, None if free >= size else
                        "free disk space: a reindex may need the file's size again")]

    def _extension(self) -> bool:
        """sqlite-vec loaded into this thread's connection (tried once per connection)."""
        return self.store.extension(vectors.extension_loaded)

    def vector_field(self, dimensions: int) -> dict[str, Any]:
        return {"type": "dense_vector", "dims": dimensions}

    def index_settings(self, *, vectors: bool) -> dict[str, Any]:
        return {}

    # -- indices and aliases ------------------------------------------------------------
    def _resolve(self, cursor: sqlite3.Cursor, name: str, *, write: bool = False
                 ) -> list[_Index]:
        """The indices ``name`` means (an index, or the indices of an alias; for a write,
        the alias's write index); ``_Missing`` when none."""
        found = cursor.execute("SELECT id, name, layout FROM indices WHERE name = ?",
                               [name]).fetchall()
        if not found:
            found = cursor.execute(
                "SELECT i.id, i.name, i.layout FROM aliases a JOIN indices i "
                "ON i.id = a.index_id WHERE a.alias = ? ORDER BY a.is_write DESC, i.name",
                [name]).fetchall()
            if write and len(found) > 1:
                found = found[:1]
        if not found:
            raise _Missing(name)
        return [_Index(*row) for row in found]

    def create_index(self, name: str, settings: dict, mappings: dict,
                     aliases: list[str] = ()) -> None:
        with self._call(f"create index {name}"), self.store.write() as cursor:
            self._create(cursor, name, layout_of(mappings), mappings.get("_meta", {}),
                         settings, aliases)

    def _create(self, cursor: sqlite3.Cursor, name: str, layout: dict, meta: dict,
                settings: dict, aliases: list[str] = ()) -> _Index:
        if cursor.execute("SELECT 1 FROM indices WHERE name = ?", [name]).fetchone():
            raise SearchEngineError(f"{self.label} could not create index {name}: "
                                    "it exists already")
        cursor.execute("INSERT INTO indices (name, layout, meta, settings) VALUES (?, ?, ?, ?)",
                       [name, dumps(layout), dumps(meta), dumps(settings)])
        index = _Index(cursor.lastrowid, name, dumps(layout))
        if layout["kind"] == "records":
            create_tables(cursor, index.t, layout)
        for alias in aliases:
            cursor.execute("INSERT INTO aliases VALUES (?, ?, 1)", [alias, index.id])
        return index

    def delete_index(self, name: str) -> None:
        with self._call(f"delete index {name}"), self.store.write() as cursor:
            row = cursor.execute("SELECT id, name, layout FROM indices WHERE name = ?",
                                 [name]).fetchone()
            if row:
                self._drop(cursor, _Index(*row))

    def _drop(self, cursor: sqlite3.Cursor, index: _Index) -> None:
        cursor.execute("DELETE FROM aliases WHERE index_id = ?", [index.id])
        cursor.execute("DELETE FROM kv WHERE index_id = ?", [index.id])
        cursor.execute("DELETE FROM indices WHERE id = ?", [index.id])
        drop_tables(cursor, index.t)

    def put_settings(self, name: str, settings: dict) -> None:
        with self._call(f"update the settings of {name}"), self.store.write() as cursor:
            for index in self._resolve(cursor, name):
                (current,) = cursor.execute("SELECT settings FROM indices WHERE id = ?",
                                            [index.id]).fetchone()
                merged = {**orjson.loads(current), **settings}
                cursor.execute("UPDATE indices SET settings = ? WHERE id = ?",
                               [dumps(merged), index.id])

    def put_meta(self, name: str, meta: dict) -> None:
        with self._call(f"update the mapping of {name}"), self.store.write() as cursor:
            for index in self._resolve(cursor, name):
                cursor.execute("UPDATE indices SET meta = ? WHERE id = ?",
                               [dumps(meta), index.id])

    def refresh(self, name: str) -> None:
        """Nothing to do: a write is visible once it commits."""

    def count(self, name: str) -> int:
        with self._call(f"count {name}"), self.store.read() as cursor:
            return sum(self._count(cursor, index) for index in self._resolve(cursor, name))

    @staticmethod
    def _count(cursor: sqlite3.Cursor, index: _Index) -> int:
        if index.layout["kind"] != "records":
            return cursor.execute("SELECT count(*) FROM kv WHERE index_id = ?",
                                  [index.id]).fetchone()[0]
        return cursor.execute(f"SELECT count(*) FROM {index.t}_docs").fetchone()[0]

    def indices(self, pattern: str) -> dict[str, list[str]]:
        with self._call(f"list indices {pattern}"), self.store.read() as cursor:
            rows = cursor.execute(
                "SELECT i.name, a.alias FROM indices i LEFT JOIN aliases a "
                "ON a.index_id = i.id ORDER BY i.name, a.alias").fetchall()
        found: dict[str, list[str]] = {}
        for name, alias in rows:
            if any(fnmatch.fnmatchcase(name, p) for p in pattern.split(",")):
                found.setdefault(name, [])
                if alias is not None:
                    found[name].append(alias)
        return found

    def update_aliases(self, actions: list[dict]) -> None:
        """All the actions in one transaction: all of them, or none (an action on an index
        or alias that is not there refuses the lot)."""
        with self._call("switch aliases"), self.store.write() as cursor:
            for action in actions:
                (verb, spec), = action.items()
                index = self._resolve(cursor, spec["index"])[0]
                if verb == "remove_index":
                    self._drop(cursor, index)
                elif verb == "remove":
                    gone = cursor.execute("DELETE FROM aliases WHERE alias = ? AND index_id = ?",
                                          [spec["alias"], index.id]).rowcount
                    if not gone:
                        raise _Missing(spec["alias"])
                elif verb == "add":
                    if spec.get("is_write_index"):
                        cursor.execute("UPDATE aliases SET is_write = 0 WHERE alias = ?",
                                       [spec["alias"]])
                    cursor.execute("INSERT OR REPLACE INTO aliases VALUES (?, ?, ?)",
                                   [spec["alias"], index.id, int(bool(
                                       spec.get("is_write_index")))])
                else:
                    raise SearchEngineError(f"{self.label}: no alias action {verb!r}")

    def mapping_meta(self, name: str) -> dict:
        with self._call(f"read the mapping of {name}"), self.store.read() as cursor:
            found = {}
            for index in self._resolve(cursor, name):
                (meta,) = cursor.execute("SELECT meta FROM indices WHERE id = ?",
                                         [index.id]).fetchone()
                found[index.name] = orjson.loads(meta)
            return found

    # -- writing documents --------------------------------------------------------------
    def stream_bulk(self, actions: Iterator[dict], *, chunk_docs: int,
                    chunk_bytes: int) -> Iterator[tuple[bool, dict]]:
        """``chunk_docs`` actions per transaction; each chunk's outcomes are given once it
        has committed."""
        chunk: list[dict] = []
        for action in actions:
            chunk.append(action)
            if len(chunk) >= chunk_docs:
                yield from self._bulk_chunk(chunk)
                chunk = []
        if chunk:
            yield from self._bulk_chunk(chunk)

    def _bulk_chunk(self, chunk: list[dict]) -> list[tuple[bool, dict]]:
        outcomes: list[tuple[bool, dict]] = []
        with self._call("index documents"), self.store.write() as cursor:
            by_target: dict[str, list[dict]] = {}
            for action in chunk:
                by_target.setdefault(action["_index"], []).append(action)
            for target, items in by_target.items():
                try:
                    (index,) = self._resolve(cursor, target, write=True)
                except _Missing:
                    outcomes += [_outcome(a, 404, {"type": "index_not_found_exception",
                                                   "reason": f"no such index [{target}]"})
                                 for a in items]
                    continue
                outcomes += self._write(cursor, index, items)
        return outcomes

    def _write(self, cursor: sqlite3.Cursor, index: _Index, items: list[dict]
               ) -> list[tuple[bool, dict]]:
        t, layout = index.t, index.layout
        seq = self._next(cursor, index)
        ids = list({a["_id"] for a in items})
        existing: dict[str, int] = {}
        for start in range(0, len(ids), 500):
            part = ids[start:start + 500]
            existing.update(cursor.execute(
                f"SELECT id, rid FROM {t}_docs WHERE id IN ({sql.marks(part)})",
                part).fetchall())
        (top,) = cursor.execute(f"SELECT coalesce(max(rid), 0) FROM {t}_docs").fetchone()
        outcomes, rows, gone = [], ingest.Rows(layout), []
        last = {action["_id"]: action for action in items}  # the last on each id wins
        for action in items:
            doc_id, op = action["_id"], action["_op_type"]
            rid = existing.get(doc_id)
            if last[doc_id] is not action:
                outcomes.append(_outcome(action, 200 if op == "index" else 404))
                continue
            if op == "delete":
                if rid is not None:
                    gone.append(rid)
                outcomes.append(_outcome(action, 200 if rid is not None else 404))
                continue
            if rid is None:
                top += 1
                rid = top
            try:
                source = action["_source"]
                rows.add(rid, doc_id, orjson.loads(source) if isinstance(source, str | bytes)
                         else dict(source))
            except ingest.Refused as exc:
                outcomes.append(_outcome(action, 400, {
                    "type": "document_parsing_exception", "reason": str(exc)}))
                continue
            if doc_id in existing:
                gone.append(rid)
            outcomes.append(_outcome(action, 200 if doc_id in existing else 201))
        ingest.remove(cursor, t, layout, gone, seq)
        rows.write(cursor, t, seq)
        if seq % PRUNE_EVERY == 0:
            cursor.execute(f"DELETE FROM {t}_gone WHERE seq < ?", [seq])
            cursor.execute("UPDATE indices SET gone_floor = ? WHERE id = ?", [seq, index.id])
        return outcomes

    # -- versioned documents (the leases) -----------------------------------------------
    def _plain(self, cursor: sqlite3.Cursor, name: str, *, create: bool) -> _Index | None:
        row = cursor.execute("SELECT id, name, layout FROM indices WHERE name = ?",
                             [name]).fetchone()
        if row:
            return _Index(*row)
        return self._create(cursor, name, PLAIN, {}, {}) if create else None

    @staticmethod
    def _next(cursor: sqlite3.Cursor, index: _Index) -> int:
        """The index's next write sequence (a lease document's version, a bulk write's
        sequence number)."""
        return cursor.execute("UPDATE indices SET seq = seq + 1 WHERE id = ? RETURNING seq",
                              [index.id]).fetchone()[0]

    def create_document(self, index: str, doc_id: str, body: dict) -> Versioned | None:
        with self._call(f"create document {doc_id} in {index}"), \
                self.store.write() as cursor:
            plain = self._plain(cursor, index, create=True)
            seq = self._next(cursor, plain)
            done = cursor.execute("INSERT OR IGNORE INTO kv VALUES (?, ?, ?, ?)",
                                  [plain.id, doc_id, dumps(body), seq]).rowcount
            return (seq, 1) if done else None

    def get_document(self, index: str, doc_id: str) -> tuple[dict, Versioned] | None:
        with self._call(f"read document {doc_id} of {index}"), self.store.read() as cursor:
            row = cursor.execute(
                "SELECT kv.body, kv.seq FROM kv JOIN indices i ON i.id = kv.index_id "
                "WHERE i.name = ? AND kv.doc_id = ?", [index, doc_id]).fetchone()
        return None if row is None else (orjson.loads(row[0]), (row[1], 1))

    def replace_document(self, index: str, doc_id: str, body: dict,
                         version: Versioned) -> Versioned | None:
        with self._call(f"update document {doc_id} of {index}"), \
                self.store.write() as cursor:
            plain = self._plain(cursor, index, create=False)
            if plain is None:
                return None
            seq = self._next(cursor, plain)
            done = cursor.execute(
                "UPDATE kv SET body = ?, seq = ? WHERE index_id = ? AND doc_id = ? AND seq = ?",
                [dumps(body), seq, plain.id, doc_id, version[0]]).rowcount
            return (seq, 1) if done else None

    def delete_document(self, index: str, doc_id: str, version: Versioned) -> None:
        with self._call(f"delete document {doc_id} of {index}"), \
                self.store.write() as cursor:
            cursor.execute("DELETE FROM kv WHERE index_id = (SELECT id FROM indices WHERE "
                           "name = ?) AND doc_id = ? AND seq = ?", [index, doc_id, version[0]])

    def sources(self, index: str, size: int = 1000) -> dict[str, dict]:
        with self._call(f"search {index}"), self.store.read() as cursor:
            found: dict[str, dict] = {}
            for target in self._resolve(cursor, index):
                if target.layout["kind"] == "records":
                    rows = cursor.execute(f"SELECT d.id, s.source FROM {target.t}_docs d JOIN "
                                          f"{target.t}_src s ON s.rid = d.rid LIMIT ?", [size])
                else:
                    rows = cursor.execute("SELECT doc_id, body FROM kv WHERE index_id = ? "
                                          "LIMIT ?", [target.id, size])
                found.update((i, orjson.loads(s)) for i, s in rows)
            return found

    # -- the reindex's reads ------------------------------------------------------------
    def versions_of(self, index: str, ids: list[str]) -> dict[str, str | None]:
        found: dict[str, str | None] = {}
        with self._call(f"search {index}"), self.store.read() as cursor:
            for target in self._resolve(cursor, index):
                for start in range(0, len(ids), 500):
                    part = ids[start:start + 500]
                    found.update(cursor.execute(
                        f"SELECT id, version FROM {target.t}_docs WHERE id IN "
                        f"({sql.marks(part)})", part).fetchall())
        return found

    def iter_versions(self, index: str, page: int = 10000
                      ) -> Iterator[tuple[str, str | None]]:
        after = ""
        while True:
            with self._call(f"search {index}"), self.store.read() as cursor:
                (target,) = self._resolve(cursor, index)[:1]
                rows = cursor.execute(f"SELECT id, version FROM {target.t}_docs WHERE id > ? "
                                      "ORDER BY id LIMIT ?", [after, page]).fetchall()
            yield from rows
            if len(rows) < page:
                return
            after = rows[-1][0]

    # -- annota's queries ---------------------------------------------------------------
    @contextmanager
    def _reading(self, alias: str) -> Iterator[tuple[sqlite3.Cursor, _Index]]:
        """The alias's index in one read transaction: a switch or a deletion meanwhile
        does not reach a query that started."""
        with self._call(f"search {alias}"), self.store.read() as cursor:
            (index,) = self._resolve(cursor, alias)[:1]
            if index.layout["kind"] == "records":
                index.layout["multi"] = {name for (name,) in cursor.execute(
                    f"SELECT name FROM {index.t}_multi")}
            yield cursor, index

    @staticmethod
    def _seqs(cursor: sqlite3.Cursor, index: _Index) -> tuple[int, int]:
        """(the index's write sequence, the one its log of deletions was pruned below)."""
        return cursor.execute("SELECT seq, gone_floor FROM indices WHERE id = ?",
                              [index.id]).fetchone()

    def _table(self, cursor: sqlite3.Cursor, index: _Index) -> columns.Table:
        """The index's columns, caught up (call with ``columns.TABLES.lock`` held)."""
        return columns.TABLES.get((str(self.store.path), index.id), self._seqs(cursor, index),
                                  lambda: columns.Table(index.layout),
                                  lambda table: table.catch_up(cursor, index.t))

    def _matching(self, cursor: sqlite3.Cursor, index: _Index, table: columns.Table,
                  filters: tuple[Any, ...]) -> Any:
        """The rows matching ``filters``: the columns answer what they hold, SQL the rest
        (answers, suggestions, list-valued metadata)."""
        import numpy as np

        mine, rest = table.supports(filters, index.layout["multi"])
        keep = table.mask(tuple(mine))
        if rest:
            where = sql.filters(index.t, index.layout, tuple(rest))
            rids = [r for (r,) in cursor.execute(
                f"SELECT d.rid FROM {index.t}_docs d WHERE {where.clause}", where.params)]
            chosen = np.zeros(len(keep), dtype=bool)
            chosen[table.rows_of(rids)] = True  # every rid SQL finds is a row held here
            keep &= chosen
        return keep

    def find(self, alias: str, query: SearchQuery, metadata_types: dict[str, str]
             ) -> SearchResult:
        import numpy as np

        with self._reading(alias) as (cursor, index):
            sorts = sql.sorts_of(query)
            with columns.TABLES.lock:
                table = self._table(cursor, index)
                hits = total = None
                if query.text is not None:  # the postings, or None: SQL's to answer
                    hits, total = self._text(cursor, index, table, query, sorts)
                elif table.sortable(sorts, index.layout["multi"]):
                    matched = np.flatnonzero(self._matching(cursor, index, table,
                                                            query.filters))
                    need = query.offset + query.limit
                    ordered = table.order(matched, sorts, need) if query.limit else matched
                    page = ordered[query.offset:need]
                    hits = [(int(rid), None) for rid in table.rids[page]]
                    total = len(matched)
            if hits is not None:
                return SearchResult(total=total, hits=tuple(self._hits(cursor, index.t, hits)))
            return self._find_in_sql(cursor, index, query)

    def _text(self, cursor: sqlite3.Cursor, index: _Index, table: columns.Table,
              query: SearchQuery, sorts: tuple[Any, ...]) -> tuple[Any, Any]:
        """A text query's (page, total) from the postings: every match scored at once by
        FTS5's bm25; (None, None) for what they do not answer (a phrase of several tokens,
        relevance with another sort, a sort the columns do not hold)."""
        import numpy as np

        relevance = [s for s in sorts if s.by == "relevance"]
        alone = len(sorts) == 1 and bool(relevance)
        if not alone and (relevance or not table.sortable(sorts, index.layout["multi"])):
            return None, None
        words = postings.tokens(cursor, sql.phrases(query.text))
        if any(len(w) != 1 for w in words):
            return None, None
        fields = sql.text_columns(index.layout, query.text)
        if not fields or not words:
            return [], 0
        with postings.TERMS.lock:
            held = postings.TERMS.get(
                (str(self.store.path), index.id), self._seqs(cursor, index),
                lambda: postings.Postings(len(index.layout["text"])),
                lambda p: p.catch_up(cursor, index.t))
            rids, score = held.scores([w[0] for w in words], fields)
        rows = table.at[rids]  # the columns are of the same snapshot: every rid is held
        keep = self._matching(cursor, index, table, query.filters)[rows]
        rows, score = rows[keep], score[keep]
        total, need = len(rows), query.offset + query.limit
        if not relevance:
            page = table.order(rows, sorts, need)[query.offset:need] if query.limit else []
            return [(int(table.rids[r]), None) for r in page], total
        key = -score if relevance[0].order == "desc" else score
        if 0 < need < len(rows):  # those that can make the page, ties with the last kept
            near = key <= np.partition(key, need - 1)[need - 1]
            rows, score, key = rows[near], score[near], key[near]
        order = np.lexsort((table.lo[rows], table.hi[rows], key))[query.offset:need]
        return ([(int(table.rids[rows[i]]), float(score[i])) for i in order]
                if query.limit else []), total

    def _find_in_sql(self, cursor: sqlite3.Cursor, index: _Index, query: SearchQuery
                     ) -> SearchResult:
        """Text, or a sort the columns do not hold (a suggestion's score, a property some
        document holds a list of): all of it in SQL."""
        t = index.t
        where = sql.filters(t, index.layout, query.filters)
        source, counted, params = f"FROM {t}_docs d", f"FROM {t}_docs d", []
        relevance = False
        if query.text is not None:
            expression = sql.match(index.layout, query.text)
            if expression is None:
                return SearchResult(total=0, hits=())
            relevance = any(s.by == "relevance" for s in sql.sorts_of(query))
            scored = f"-bm25({t}_text) AS score" if relevance else "NULL AS score"
            source += (f" JOIN (SELECT rowid AS rid, {scored} FROM {t}_text WHERE "
                       f"{t}_text MATCH ?) s ON s.rid = d.rid")
            counted += (f" JOIN (SELECT rowid AS rid FROM {t}_text WHERE {t}_text MATCH ?) "
                        "s ON s.rid = d.rid")
            params.append(expression)
        (total,) = cursor.execute(f"SELECT count(*) {counted} WHERE {where.clause}",
                                  [*params, *where.params]).fetchone()
        ordering, order_params = sql.order(t, index.layout, sql.sorts_of(query),
                                           relevance)
        score = "s.score" if relevance else "NULL"
        page = cursor.execute(
            f"SELECT d.rid, d.id, {score} {source} WHERE {where.clause} "
            f"ORDER BY {ordering} LIMIT ? OFFSET ?",
            [*params, *where.params, *order_params, query.limit, query.offset]
        ).fetchall() if query.limit else []
        sources = self._sources(cursor, t, [rid for rid, _, _ in page])
        return SearchResult(total=total, hits=tuple(
            Hit(id=i, score=s, source=sources[rid]) for rid, i, s in page))

    def _hits(self, cursor: sqlite3.Cursor, t: str, scored: list[tuple[int, float | None]]
              ) -> list[Hit]:
        """(rid, score) as hits, with their documents' ids and sources."""
        if not scored:
            return []
        rids = [rid for rid, _ in scored]
        ids = dict(cursor.execute(f"SELECT rid, id FROM {t}_docs WHERE rid IN "
                                  f"({sql.marks(rids)})", rids).fetchall())
        sources = self._sources(cursor, t, rids)
        return [Hit(id=ids[rid], score=score, source=sources[rid])
                for rid, score in scored if rid in ids]

    @staticmethod
    def _sources(cursor: sqlite3.Cursor, t: str, rids: list[int]) -> dict[int, dict]:
        """{rid: source} of a page's documents (read after the page is chosen)."""
        if not rids:
            return {}
        return {rid: orjson.loads(source) for rid, source in cursor.execute(
            f"SELECT rid, source FROM {t}_src WHERE rid IN ({sql.marks(rids)})",
            rids)}

    def nearest(self, alias: str, field: str, vector: list[float], k: int,
                filters: tuple[Any, ...]) -> list[Hit]:
        with self._reading(alias) as (cursor, index):
            t = index.t
            if field not in index.layout["vectors"]:
                return []
            if self._extension():
                candidates, params = None, []
                if filters:
                    where = sql.filters(t, index.layout, filters)
                    candidates = f"SELECT d.rid FROM {t}_docs d WHERE {where.clause}"
                    params = where.params
                best = vectors.by_extension(cursor, t, field, vector, k, candidates, params)
            else:
                allowed = None
                if filters:
                    with columns.TABLES.lock:
                        table = self._table(cursor, index)
                        allowed = table.rids[self._matching(cursor, index, table, filters)]
                best = vectors.MATRICES.nearest(cursor, (str(self.store.path), index.id, field),
                                                t, field, self._seqs(cursor, index), vector, k,
                                                allowed)
            return self._hits(cursor, t, best)

    def metrics(self, alias: str, filters: tuple[Any, ...], property_name: str,
                kind: str) -> tuple[int, dict[str, Any]]:
        """One scan of the matching documents' column (and, for a property some document
        holds a list of, its rows)."""
        with self._reading(alias) as (cursor, index):
            t, layout = index.t, index.layout
            if property_name in layout["metadata"] and property_name not in layout["multi"]:
                with columns.TABLES.lock:
                    table = self._table(cursor, index)
                    keep = self._matching(cursor, index, table, filters)
                    return int(keep.sum()), table.metrics(keep, property_name)
            where = sql.filters(t, layout, filters)
            key = sql.column(layout, property_name) or "NULL"
            matching = f"FROM {t}_docs d WHERE {where.clause}"
            lists = property_name in layout.get("multi", ())
            if kind == "terms":
                rows = cursor.execute(f"SELECT {key}, count(*) {matching} GROUP BY {key}",
                                      where.params).fetchall()
                total = sum(n for _, n in rows)
                counts = {str(v): n for v, n in rows if v is not None}
                if lists:
                    for value, n in cursor.execute(
                            f"SELECT value, count(DISTINCT rid) FROM {t}_meta WHERE name = ? "
                            f"AND rid IN (SELECT d.rid {matching}) GROUP BY value",
                            [property_name, *where.params]):
                        counts[str(value)] = counts.get(str(value), 0) + n
                return total, {"values": counts}
            total, low, high = cursor.execute(
                f"SELECT count(*), min({key}), max({key}) {matching}", where.params).fetchone()
            if lists:
                more = cursor.execute(
                    f"SELECT min(value), max(value) FROM {t}_meta WHERE name = ? AND rid IN "
                    f"(SELECT d.rid {matching})", [property_name, *where.params]).fetchone()
                low = min((v for v in (low, more[0]) if v is not None), default=None)
                high = max((v for v in (high, more[1]) if v is not None), default=None)
            return total, {"min": low, "max": high}

    def progress(self, alias: str, filters: tuple[Any, ...], min_submitted: int
                 ) -> tuple[int, int, dict[str, dict[str, int]]]:
        with self._reading(alias) as (cursor, index), columns.TABLES.lock:
            table = self._table(cursor, index)
            return table.progress(self._matching(cursor, index, table, filters), min_submitted)

    def close(self) -> None:
        self.store.close()


def _outcome(action: dict, status: int, error: Any = None) -> tuple[bool, dict]:
    op = action["_op_type"]
    item: dict[str, Any] = {"_index": action["_index"], "_id": action["_id"],
                            "status": status}
    if error is not None:
        item["error"] = error
    return 200 <= status < 300, {op: item}
