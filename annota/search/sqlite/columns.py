"""An index's filterable values in memory, as numpy arrays: what makes a filter, a total,
a sort, metrics and progress take a millisecond or two over 100k documents, where a scan
of the rows takes tens.

Per index: one array per value a filter or sort reads (times, ``submitted``, each
metadata property held as one value, each user's response status), aligned by row, and
the id as two unsigned 64-bit halves (a UUID's order is its hex string's order). The
arrays are caught up with the index's writes by their sequence number, as the vector
matrices are (``vectors.py``): documents written since, and documents deleted since.
What they do not hold (answers, suggestions, a property some document holds a list of) is
asked of SQL and joined in by row. A text query's matches and scores come from the
postings (``postings.py``), its filters and sorts from here.
"""

from __future__ import annotations

import sqlite3
import uuid
from typing import Any

import numpy as np

from annota.search.query import (
    MetadataFilter,
    ResponseStatusFilter,
    Sort,
    TimeFilter,
    utc_text,
)
from annota.search.sqlite.compile import converted
from annota.search.sqlite.ingest import millis
from annota.search.sqlite.kept import Kept, rid_map, rows_of

STATUS = {"draft": 1, "submitted": 2, "discarded": 3}
NAMES = {code: name for name, code in STATUS.items()}
_OPS = {"ge": np.greater_equal, "gt": np.greater, "le": np.less_equal, "lt": np.less}


class Table:
    """The arrays of one index, as of sequence ``seq``."""

    def __init__(self, layout: dict[str, Any]) -> None:
        self.seq = -1
        self.names = list(layout["metadata"])
        self.kinds = [layout["metadata"][n] for n in self.names]
        self.rids = np.zeros(0, dtype=np.int64)
        self.valid = np.zeros(0, dtype=bool)
        self.at = np.zeros(0, dtype=np.int64)
        self.hi = np.zeros(0, dtype=np.uint64)
        self.lo = np.zeros(0, dtype=np.uint64)
        self.inserted = np.zeros(0, dtype=np.int64)
        self.updated = np.zeros(0, dtype=np.int64)
        self.submitted = np.zeros(0, dtype=np.int64)
        self.meta = [np.zeros(0, dtype=self._dtype(k)) for k in self.kinds]
        self.vocab: list[dict[Any, int]] = [{} for _ in self.kinds]
        self.values: list[list[Any]] = [[] for _ in self.kinds]
        self.users: dict[str, np.ndarray] = {}
        self.position: dict[int, int] = {}

    @staticmethod
    def _dtype(kind: str) -> Any:
        return np.int32 if kind in ("keyword", "text") else np.float64

    def _missing(self, i: int) -> Any:
        return -1 if self._dtype(self.kinds[i]) is np.int32 else np.nan

    # -- catching up -------------------------------------------------------------------
    def catch_up(self, cursor: sqlite3.Cursor, t: str) -> None:
        for (rid,) in cursor.execute(f"SELECT rid FROM {t}_gone WHERE seq > ?", [self.seq]):
            where = self.position.get(rid)
            if where is not None:
                self.valid[where] = False
        metadata = "".join(f", m{i}" for i in range(len(self.names)))
        rows = cursor.execute(
            f"SELECT rid, id, inserted_ms, updated_ms, submitted, resp{metadata} FROM "
            f"{t}_docs WHERE seq > ?", [self.seq]).fetchall()
        if rows:
            self._apply(rows)

    def _apply(self, rows: list[tuple]) -> None:
        fresh = [row[0] for row in rows if row[0] not in self.position]
        if fresh:
            self._grow(fresh)
        where = np.fromiter((self.position[row[0]] for row in rows), dtype=np.int64,
                            count=len(rows))
        self.valid[where] = True
        halves = [_halves(row[1]) for row in rows]
        self.hi[where] = np.array([h for h, _ in halves], dtype=np.uint64)
        self.lo[where] = np.array([low for _, low in halves], dtype=np.uint64)
        self.inserted[where] = [row[2] if row[2] is not None else -1 for row in rows]
        self.updated[where] = [row[3] if row[3] is not None else -1 for row in rows]
        self.submitted[where] = [row[4] or 0 for row in rows]
        for i in range(len(self.names)):
            self.meta[i][where] = [self._code(i, row[6 + i]) for row in rows]
        for statuses in self.users.values():
            statuses[where] = 0
        for position, row in zip(where, rows, strict=True):
            for token in row[5].split():
                user, _, status = token.rpartition(":")
                column = self.users.get(user)
                if column is None:
                    column = self.users[user] = np.zeros(len(self.rids), dtype=np.int8)
                column[position] = STATUS.get(status, 0)

    def _code(self, i: int, value: Any) -> Any:
        if value is None:
            return self._missing(i)
        if self._dtype(self.kinds[i]) is not np.int32:
            return value
        code = self.vocab[i].get(value)
        if code is None:
            code = self.vocab[i][value] = len(self.values[i])
            self.values[i].append(value)
        return code

    def _grow(self, fresh: list[int]) -> None:
        start, extra = len(self.rids), len(fresh)

        def grown(array: np.ndarray, fill: Any) -> np.ndarray:
            return np.concatenate([array, np.full(extra, fill, dtype=array.dtype)])

        self.rids = np.concatenate([self.rids, np.asarray(fresh, dtype=np.int64)])
        self.valid = grown(self.valid, False)
        self.hi, self.lo = grown(self.hi, 0), grown(self.lo, 0)
        self.inserted, self.updated = grown(self.inserted, -1), grown(self.updated, -1)
        self.submitted = grown(self.submitted, 0)
        self.meta = [grown(a, self._missing(i)) for i, a in enumerate(self.meta)]
        self.users = {u: grown(a, 0) for u, a in self.users.items()}
        self.position.update((rid, start + k) for k, rid in enumerate(fresh))
        self.at = rid_map(self.rids)

    # -- answering ---------------------------------------------------------------------
    def rows_of(self, rids: list[int] | np.ndarray) -> np.ndarray:
        return rows_of(self.at, rids)

    def mask(self, filters: tuple[Any, ...]) -> np.ndarray:
        """The rows matching ``filters`` (each one these arrays answer)."""
        keep = self.valid.copy()
        for item in filters:
            keep &= self._filter(item)
        return keep

    def _filter(self, item: Any) -> np.ndarray:
        if isinstance(item, MetadataFilter):
            i = self.names.index(item.property)
            column = self.meta[i]
            if item.values is not None:
                wanted = converted(self.kinds[i], item.values)
                if column.dtype == np.int32:
                    codes = [self.vocab[i][v] for v in wanted if v in self.vocab[i]]
                    return np.isin(column, np.asarray(codes, dtype=np.int32))
                return np.isin(column, np.asarray(wanted, dtype=np.float64))
            keep = np.ones(len(column), dtype=bool)
            with np.errstate(invalid="ignore"):
                for op, bound in item.bounds.items():
                    keep &= _OPS[op](column, bound)
            return keep
        if isinstance(item, ResponseStatusFilter):
            columns = ([self.users.get(str(item.user_id))] if item.user_id
                       else list(self.users.values()))
            columns = [c for c in columns if c is not None]
            keep = np.zeros(len(self.rids), dtype=bool)
            for status in item.statuses:
                if status == "pending":
                    none = np.ones(len(self.rids), dtype=bool)
                    for column in columns:
                        none &= column == 0
                    keep |= none
                else:
                    for column in columns:
                        keep |= column == STATUS[status]
            return keep
        if isinstance(item, TimeFilter):
            column = self.inserted if item.type == "inserted_at" else self.updated
            keep = column >= 0
            for op, bound in (("ge", item.ge), ("le", item.le)):
                if bound is not None:
                    keep &= _OPS[op](column, millis(utc_text(bound)))
            return keep
        raise TypeError(item)

    def order(self, rows: np.ndarray, sorts: tuple[Sort, ...], need: int) -> np.ndarray:
        """The first ``need`` of ``rows`` sorted: by each sort (missing last either way),
        then by id."""
        if not sorts and 0 < need < len(rows) // 4:
            # by id alone: the rows whose id's high half is among the ``need`` least
            # (and any tied with the last of them), then sorted exactly
            high = self.hi[rows]
            bound = np.partition(high, need - 1)[need - 1]
            rows = rows[high <= bound]
        keys: list[np.ndarray] = [self.lo[rows], self.hi[rows]]
        for sort in reversed(sorts):
            sign = 1 if sort.order == "asc" else -1
            if sort.by in ("inserted_at", "updated_at"):
                column = self.inserted if sort.by == "inserted_at" else self.updated
                keys += [sign * column[rows], column[rows] < 0]
                continue
            i = self.names.index(sort.by.split(".", 1)[1])
            values = self.meta[i][rows]
            if values.dtype == np.int32:
                ranks = np.zeros(len(self.values[i]) + 1, dtype=np.int64)
                ordered = sorted(range(len(self.values[i])), key=self.values[i].__getitem__)
                ranks[ordered] = np.arange(len(ordered))
                missing = values < 0
                keys += [sign * ranks[values], missing]
            else:
                missing = np.isnan(values)
                keys += [sign * np.where(missing, 0, values), missing]
        return rows[np.lexsort(keys)][:need]

    def supports(self, filters: tuple[Any, ...], multi: set[str]) -> tuple[list, list]:
        """(the filters these arrays answer, the rest for SQL)."""
        mine, rest = [], []
        for item in filters:
            ours = (isinstance(item, ResponseStatusFilter | TimeFilter)
                    or (isinstance(item, MetadataFilter) and item.property in self.names
                        and item.property not in multi))
            (mine if ours else rest).append(item)
        return mine, rest

    def sortable(self, sorts: tuple[Sort, ...], multi: set[str]) -> bool:
        for sort in sorts:
            if sort.by in ("inserted_at", "updated_at"):
                continue
            kind, _, name = sort.by.partition(".")
            if kind != "metadata" or name not in self.names or name in multi:
                return False
        return True

    def metrics(self, keep: np.ndarray, name: str) -> dict[str, Any]:
        i = self.names.index(name)
        values = self.meta[i][keep]
        if values.dtype == np.int32:
            present = values[values >= 0]
            counts = np.bincount(present, minlength=len(self.values[i]))
            return {"values": {str(self.values[i][c]): int(n)
                               for c, n in enumerate(counts) if n}}
        present = values[~np.isnan(values)]
        if not len(present):
            return {"min": None, "max": None}
        return {"min": float(present.min()), "max": float(present.max())}

    def progress(self, keep: np.ndarray, min_submitted: int
                 ) -> tuple[int, int, dict[str, dict[str, int]]]:
        users = {}
        for user, column in self.users.items():
            counts = np.bincount(column[keep], minlength=4)
            if counts[1:].any():
                users[user] = {NAMES[c]: int(counts[c]) for c in (1, 2, 3) if counts[c]}
        return (int(keep.sum()), int((self.submitted[keep] >= min_submitted).sum()), users)


def _halves(doc_id: str) -> tuple[int, int]:
    """An id as two 64-bit keys in its order: a record's UUID as its 128 bits (a UUID's
    order is its lowercase hex's), any other id by its first 16 bytes."""
    try:
        number = uuid.UUID(doc_id).int if len(doc_id) == 36 else None
    except ValueError:
        number = None
    if number is None:
        number = int.from_bytes(doc_id.encode()[:16].ljust(16, b"\0"), "big")
    return divmod(number, 1 << 64)


TABLES: Kept[Table] = Kept()  # per (file, index)
