"""Exact cosine similarity over an index's vectors: every candidate scored, the top k kept.

Two ways, with the same answers. Where this Python's ``sqlite3`` can load extensions and
``sqlite-vec`` is installed, SQLite scores the rows itself (``vec_distance_cosine``).
Otherwise numpy does: each vector field's float32 matrix, normalized, is kept in memory
and caught up with the index's writes by their sequence number (rows written and
documents deleted since), so a query reads only what changed since the last one.
"""

from __future__ import annotations

import sqlite3
from typing import Any

from annota.search.sqlite.kept import Kept, rid_map, rows_of


def extension_loaded(connection: sqlite3.Connection) -> bool:
    """Load sqlite-vec into ``connection`` if this Python can; whether it is there."""
    if not hasattr(connection, "enable_load_extension"):
        return False
    try:
        import sqlite_vec
    except ImportError:
        return False
    try:
        connection.enable_load_extension(True)
        sqlite_vec.load(connection)
        connection.enable_load_extension(False)
    except sqlite3.Error:
        return False
    return True


def by_extension(cursor: sqlite3.Cursor, t: str, field: str, vector: list[float], k: int,
                 candidates: str | None, params: list[Any]) -> list[tuple[int, float]]:
    from array import array

    where = f" AND rid IN ({candidates})" if candidates else ""
    rows = cursor.execute(
        f"SELECT rid, 1.0 - vec_distance_cosine(vector, ?) AS cosine FROM {t}_vec "
        f"WHERE name = ?{where} ORDER BY cosine DESC, rid LIMIT ?",
        [array("f", vector).tobytes(), field, *params, k]).fetchall()
    return [(rid, float(cosine)) for rid, cosine in rows]


class _Matrix:
    def __init__(self) -> None:
        import numpy as np

        self.seq = -1
        self.rids = np.zeros(0, dtype=np.int64)
        self.rows = np.zeros((0, 0), dtype=np.float32)
        self.valid = np.zeros(0, dtype=bool)
        self.position: dict[int, int] = {}
        self.at = np.zeros(0, dtype=np.int64)  # rid -> its row (-1: none), for filters


class Matrices:
    """The numpy way: per (file, index, field) a normalized matrix, caught up on use."""

    def __init__(self) -> None:
        self._kept: Kept[_Matrix] = Kept()

    def nearest(self, cursor: sqlite3.Cursor, key: tuple, t: str, field: str,
                seqs: tuple[int, int], vector: list[float], k: int,
                candidates: Any) -> list[tuple[int, float]]:
        """``seqs``: as ``Kept.get`` takes them."""
        import numpy as np

        with self._kept.lock:
            matrix = self._kept.get(key, seqs, _Matrix,
                                    lambda m: _catch_up(cursor, m, t, field))
            rows, rids, valid, at = matrix.rows, matrix.rids, matrix.valid, matrix.at
        if candidates is None:
            chosen = np.flatnonzero(valid)
        else:  # the candidates' rows, by the rid -> row map
            chosen = rows_of(at, candidates)
            chosen = chosen[valid[chosen]]
        if not len(chosen):
            return []
        query = np.asarray(vector, dtype=np.float64)
        query = (query / np.linalg.norm(query)).astype(np.float32)
        # a few rows: copy them out; many: score every row, then pick (no 2-D copy)
        scores = rows[chosen] @ query if len(chosen) * 4 < len(rids) else (rows @ query)[chosen]
        top = min(k, len(chosen))
        best = np.argpartition(-scores, top - 1)[:top]
        picked = sorted(((float(scores[i]), int(rids[chosen[i]])) for i in best),
                        key=lambda pair: (-pair[0], pair[1]))
        return [(rid, score) for score, rid in picked]


def _catch_up(cursor: sqlite3.Cursor, matrix: _Matrix, t: str, field: str) -> None:
    """Apply the deletions, then the rows written, since the matrix's sequence."""
    import numpy as np

    for (rid,) in cursor.execute(f"SELECT rid FROM {t}_gone WHERE seq > ?", [matrix.seq]):
        where = matrix.position.get(rid)
        if where is not None:
            matrix.valid[where] = False
    changed = cursor.execute(f"SELECT rid, vector FROM {t}_vec WHERE name = ? AND seq > ?",
                             [field, matrix.seq]).fetchall()
    if not changed:
        return
    values = np.frombuffer(b"".join(v for _, v in changed), dtype=np.float32)
    values = values.reshape(len(changed), -1)
    norms = np.linalg.norm(values, axis=1, keepdims=True)
    values = values / np.where(norms == 0, 1, norms)
    fresh_rids, fresh_rows = [], []
    for i, (rid, _) in enumerate(changed):
        where = matrix.position.get(rid)
        if where is None:
            fresh_rids.append(rid)
            fresh_rows.append(i)
        else:
            matrix.rows[where] = values[i]
            matrix.valid[where] = True
    if fresh_rids:
        start = len(matrix.rids)
        rows = values[fresh_rows]
        matrix.rows = rows if not start else np.concatenate([matrix.rows, rows])
        matrix.rids = np.concatenate([matrix.rids, np.asarray(fresh_rids, dtype=np.int64)])
        matrix.valid = np.concatenate([matrix.valid, np.ones(len(fresh_rids), dtype=bool)])
        matrix.position.update((rid, start + i) for i, rid in enumerate(fresh_rids))
        matrix.at = rid_map(matrix.rids)


MATRICES = Matrices()
