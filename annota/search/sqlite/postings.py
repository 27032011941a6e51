"""An index's text postings in memory, for the top k of a text query by relevance.

FTS5 must score every match with ``bm25()`` before it can take the first page: about
1 µs a match, 100 ms for a word found in most of 100k documents. Here the same postings
(term, column, document, frequency) are numpy arrays, read from FTS5 itself (its
``fts5vocab`` instance table, so a token is exactly what FTS5 made of the text), and
bm25 is computed as FTS5's ``fts5Bm25Function`` computes it, operation for operation
(k1 = 1.2, b = 0.75, an IDF of 1e-6 where it would be zero or less), over every match
at once. The scores are FTS5's to the last bit, so the page is too: same order, same
ties broken by id.

What this holds: terms (each a single token of a query's word; a phrase of several
tokens goes to SQL), the postings of a base sorted by (term, column, document) and a
tail of documents written since, each entry with the generation of its document (an
entry whose document was rewritten or deleted since is stale, and skipped), each
document's length in tokens, and which documents exist. It is caught up with the
index's writes by sequence number, as the columns are: the documents written since are
put into a temporary FTS5 table of the same tokenizer and read back by the same vocab.
"""

from __future__ import annotations

import math
import sqlite3

import numpy as np

from annota.search.sqlite.kept import Kept
from annota.search.sqlite.store import TOKENIZE

K1, B = 1.2, 0.75  # fts5_aux.c's
REBUILD = 0.25  # documents written since, as a share of those held: read whole again
MERGE = 0.25  # the tail, as a share of the base: merged into it


def _vocab(cursor: sqlite3.Cursor, schema: str, table: str) -> str:
    """A temporary instance vocab over ``schema.table`` (one per table, made once)."""
    name = f"annota_v_{schema}_{table}"
    cursor.execute(f"CREATE VIRTUAL TABLE IF NOT EXISTS temp.{name} USING "
                   f"fts5vocab({schema}, {table}, instance)")
    return f"temp.{name}"


def _mirror(cursor: sqlite3.Cursor, columns: int) -> str:
    """An empty temporary FTS5 table of ``columns`` columns and the index's tokenizer."""
    name = f"annota_mirror{columns}"
    spec = ", ".join(f"c{i}" for i in range(columns))
    cursor.execute(f"CREATE VIRTUAL TABLE IF NOT EXISTS temp.{name} USING fts5({spec}, "
                   f"tokenize = '{TOKENIZE}')")
    return name


def tokens(cursor: sqlite3.Cursor, texts: list[str]) -> list[list[str]]:
    """Each text's tokens, in order, as FTS5 makes them."""
    mirror = _mirror(cursor, 1)
    cursor.execute(f"DELETE FROM temp.{mirror}")
    cursor.executemany(f"INSERT INTO temp.{mirror} (rowid, c0) VALUES (?, ?)",
                       list(enumerate(texts)))
    out: list[list[str]] = [[] for _ in texts]
    try:
        for term, doc in cursor.execute(
                f"SELECT term, doc FROM {_vocab(cursor, 'temp', mirror)} ORDER BY doc, offset"):
            out[doc].append(term)
    finally:
        cursor.execute(f"DELETE FROM temp.{mirror}")
    return out


class Postings:
    """One index's postings, as of sequence ``seq``."""

    def __init__(self, columns: int) -> None:
        self.columns = columns
        self._reset()

    def _reset(self) -> None:
        """Nothing held: the next catch-up reads the index whole."""
        self.seq = -1
        self.ids: dict[str, int] = {}  # term -> its number
        self.current = np.zeros(0, dtype=np.int32)  # per rid: its generation
        self.alive = np.zeros(0, dtype=bool)  # per rid: the document exists
        self.length = np.zeros(0, dtype=np.int64)  # per rid: tokens in all its columns
        self.starts = np.zeros(1, dtype=np.int64)  # per term * columns + column: its slice
        self.base = self._entries(0)
        self.tail = self._entries(0)

    @staticmethod
    def _entries(n: int) -> dict[str, np.ndarray]:
        return {"key": np.zeros(n, dtype=np.int64), "rid": np.zeros(n, dtype=np.int64),
                "tf": np.zeros(n, dtype=np.int32), "gen": np.zeros(n, dtype=np.int32)}

    # -- catching up -------------------------------------------------------------------
    def catch_up(self, cursor: sqlite3.Cursor, t: str) -> None:
        gone = [r for (r,) in cursor.execute(f"SELECT rid FROM {t}_gone WHERE seq > ?",
                                             [self.seq])]
        written = [r for (r,) in cursor.execute(f"SELECT rid FROM {t}_docs WHERE seq > ?",
                                                [self.seq])]
        if self.seq < 0 or len(written) > REBUILD * max(int(self.alive.sum()), 1):
            held = written if self.seq < 0 else [  # cold, every document was "written"
                r for (r,) in cursor.execute(f"SELECT rid FROM {t}_docs")]
            self._reset()
            self._grow(max(held, default=-1))
            self.alive[held] = True
            self._add(self._read(cursor, _vocab(cursor, "main", f"{t}_text")))
            return
        self._grow(max([*gone, *written], default=-1))
        for rids in (gone, written):
            self.current[rids] += 1
            self.alive[rids] = False
            self.length[rids] = 0
        self.alive[written] = True
        if written:
            mirror = _mirror(cursor, self.columns)
            spec = ", ".join(f"c{i}" for i in range(self.columns))
            try:
                cursor.execute(f"INSERT INTO temp.{mirror} (rowid, {spec}) SELECT rowid, "
                               f"{spec} FROM main.{t}_text WHERE rowid IN (SELECT rid FROM "
                               f"main.{t}_docs WHERE seq > ?)", [self.seq])
                self._add(self._read(cursor, _vocab(cursor, "temp", mirror)))
            finally:
                cursor.execute(f"DELETE FROM temp.{mirror}")

    def _grow(self, rid: int) -> None:
        extra = rid + 1 - len(self.current)
        if extra > 0:
            self.current = np.concatenate([self.current, np.zeros(extra, dtype=np.int32)])
            self.alive = np.concatenate([self.alive, np.zeros(extra, dtype=bool)])
            self.length = np.concatenate([self.length, np.zeros(extra, dtype=np.int64)])

    def _read(self, cursor: sqlite3.Cursor, vocab: str) -> dict[str, np.ndarray]:
        """The postings in ``vocab``: one entry per (term, column, document), sorted."""
        keys, rids = [], []
        for term, column, docs in cursor.execute(
                f"SELECT term, col, group_concat(doc) FROM {vocab} GROUP BY term, col"):
            number = self.ids.setdefault(term, len(self.ids))
            found = np.fromstring(docs, dtype=np.int64, sep=",")  # one per instance
            rids.append(found)
            keys.append(np.full(len(found), number * self.columns + int(column[1:]),
                                dtype=np.int64))
        if not rids:
            return self._entries(0)
        key, rid = np.concatenate(keys), np.concatenate(rids)
        order = np.lexsort((rid, key))
        key, rid = key[order], rid[order]
        first = np.ones(len(key), dtype=bool)
        first[1:] = (key[1:] != key[:-1]) | (rid[1:] != rid[:-1])
        starts = np.flatnonzero(first)
        tf = np.diff(np.append(starts, len(key))).astype(np.int32)
        return {"key": key[starts], "rid": rid[starts], "tf": tf,
                "gen": self.current[rid[starts]]}

    def _add(self, entries: dict[str, np.ndarray]) -> None:
        np.add.at(self.length, entries["rid"], entries["tf"])
        if not len(self.base["key"]):
            self._rebase(entries)
            return
        self.tail = {k: np.concatenate([self.tail[k], entries[k]]) for k in entries}
        if len(self.tail["key"]) > MERGE * len(self.base["key"]):
            merged = {k: np.concatenate([self.base[k], self.tail[k]]) for k in entries}
            fresh = merged["gen"] == self.current[merged["rid"]]
            merged = {k: v[fresh] for k, v in merged.items()}
            order = np.lexsort((merged["rid"], merged["key"]))
            self._rebase({k: v[order] for k, v in merged.items()})

    def _rebase(self, entries: dict[str, np.ndarray]) -> None:
        self.base, self.tail = entries, self._entries(0)
        slots = len(self.ids) * self.columns
        self.starts = np.searchsorted(entries["key"], np.arange(slots + 1))

    # -- answering ---------------------------------------------------------------------
    def _term(self, term: str, columns: list[int]) -> tuple[np.ndarray, np.ndarray]:
        """(the documents holding ``term`` in one of ``columns``, its frequency there)."""
        number = self.ids.get(term)
        if number is None:
            return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float64)
        keys = [number * self.columns + c for c in columns]
        parts = [(self.base["rid"][self.starts[k]:self.starts[k + 1]],
                  self.base["tf"][self.starts[k]:self.starts[k + 1]],
                  self.base["gen"][self.starts[k]:self.starts[k + 1]])
                 for k in keys if k + 1 < len(self.starts)]
        mine = np.isin(self.tail["key"], keys)
        if mine.any():
            parts.append((self.tail["rid"][mine], self.tail["tf"][mine],
                          self.tail["gen"][mine]))
        if not parts:
            return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float64)
        rid, tf, gen = (np.concatenate([p[i] for p in parts]) for i in range(3))
        fresh = gen == self.current[rid]
        rid, tf = rid[fresh], tf[fresh]
        if len(parts) == 1 and not mine.any():  # one column of the base
            return rid, tf.astype(np.float64)  # sorted already, one per document
        rid, at = np.unique(rid, return_inverse=True)  # sorted, one per document
        return rid, np.bincount(at, weights=tf, minlength=len(rid)).astype(np.float64)

    def scores(self, terms: list[str], columns: list[int]) -> tuple[np.ndarray, np.ndarray]:
        """(the documents holding every term in one of ``columns``, their bm25 score, the
        negation of what FTS5's ``bm25()`` returns)."""
        found = [self._term(term, columns) for term in terms]
        rows = float(self.alive.sum())
        if not rows:
            return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float64)
        avgdl = float(self.length[self.alive].sum()) / rows
        idf = []
        for rid, _ in found:
            value = math.log((rows - len(rid) + 0.5) / (len(rid) + 0.5))
            idf.append(value if value > 0.0 else 1e-6)
        matched = found[0][0]
        for rid, _ in found[1:]:
            matched = np.intersect1d(matched, rid, assume_unique=True)
        size = self.length[matched].astype(np.float64)
        score = np.zeros(len(matched), dtype=np.float64)
        for (rid, freq), weight in zip(found, idf, strict=True):
            f = freq[np.searchsorted(rid, matched)]
            score += weight * ((f * (K1 + 1.0)) / (f + K1 * (1 - B + B * size / avgdl)))
        return matched, score


TERMS: Kept[Postings] = Kept()  # per (file, index)
