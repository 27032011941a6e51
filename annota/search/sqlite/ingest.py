"""Documents into an index's tables, as the cluster engines would index them: the same
typed values (floats as float32, dates to the millisecond, keywords as text), and the
same refusals (a vector of the wrong size or with no direction, a number that is not one).
"""

from __future__ import annotations

import sqlite3
import struct
from array import array
from datetime import datetime, timezone
from typing import Any

import orjson

_EPOCH = datetime(1970, 1, 1)


class Refused(ValueError):
    """A document the index's mapping does not accept (the clusters answer 400)."""


def keyword(value: Any) -> str:
    """A value as a keyword field keeps it: text as it is, anything else as JSON."""
    return value if isinstance(value, str) else orjson.dumps(value).decode()


def float32(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        value = float(value)  # a string of a number is a number, as the clusters coerce
    return struct.unpack("f", struct.pack("f", value))[0]


def whole(value: Any) -> int:
    if isinstance(value, bool):
        raise ValueError(value)
    number = float(value) if isinstance(value, str) else value
    if isinstance(number, float):
        if not number.is_integer():
            raise ValueError(value)
        number = int(number)
    return int(number)


CONVERT = {"keyword": keyword, "long": whole, "integer": whole, "float": float32,
           "text": keyword}


def millis(text: str | None) -> int | None:
    """A document time (ISO 8601, UTC when it names no zone) in whole milliseconds."""
    if not text:
        return None
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if moment.tzinfo is not None:
        moment = moment.astimezone(timezone.utc).replace(tzinfo=None)
    return (moment - _EPOCH) // _MS


_MS = datetime(1970, 1, 1, 0, 0, 0, 1000) - _EPOCH


def _values(value: Any) -> list[Any]:
    if value is None:
        return []
    return [v for v in value if v is not None] if isinstance(value, list) else [value]


def _typed(kind: str, value: Any, where: str) -> list[Any]:
    convert = CONVERT.get(kind)
    if convert is None:
        return []
    try:
        return [convert(v) for v in _values(value)]
    except (TypeError, ValueError, OverflowError):
        raise Refused(f"failed to parse field [{where}] of type [{kind}]") from None


def _text(value: Any) -> str:
    return " ".join(v if isinstance(v, str) else keyword(v) for v in _values(value))


class Rows:
    """The rows of one write, table by table, for ``executemany``."""

    def __init__(self, layout: dict[str, Any]) -> None:
        self.layout = layout
        self.docs: list[tuple] = []
        self.src: list[tuple] = []
        self.multi: set[str] = set()
        self.text: list[tuple] = []
        self.meta: list[tuple] = []
        self.resp: list[tuple] = []
        self.answer: list[tuple] = []
        self.sugg: list[tuple] = []
        self.vec: list[tuple] = []

    def add(self, rid: int, doc_id: str, doc: dict[str, Any]) -> None:
        """The rows of ``doc``; ``Refused`` (and nothing added) when it does not fit."""
        layout = self.layout
        vectors = doc.pop("vectors", None) or {}
        vec = [(rid, name, _vector(name, value, layout["vectors"].get(name)))
               for name, value in vectors.items() if value is not None]
        metadata = doc.get("metadata") or {}
        meta, columns, multi = [], [], []
        for name, kind in layout["metadata"].items():
            given = metadata.get(name)
            values = _typed(kind, given, f"metadata.{name}")
            if isinstance(given, list):  # kept as rows; the column stays empty
                meta += [(rid, name, v) for v in values]
                multi.append(name)
                columns.append(None)
            else:
                columns.append(values[0] if values else None)
        resp, answer = [], []
        for response in doc.get("responses") or []:
            user = response.get("user_id")
            resp.append((rid, user, response.get("status")))
            values = response.get("values") or {}
            for question, kind in layout["answers"].items():
                answer += [(rid, user, question, v) for v in _typed(
                    kind, values.get(question), f"responses.values.{question}")]
        sugg = []
        suggestions = doc.get("suggestions") or {}
        for question, kind in layout["suggestions"].items():
            given = suggestions.get(question)
            if not isinstance(given, dict):
                continue
            score = _typed("float", given.get("score"), f"suggestions.{question}.score")
            agent = given.get("agent")
            values = _typed(kind, given.get("value"), f"suggestions.{question}.value")
            for value in values or [None]:
                if value is None and not score and agent is None:
                    continue
                sugg.append((rid, question, value, score[0] if score else None,
                             None if agent is None else keyword(agent)))
        fields = doc.get("fields") or {}
        texts = [_text(fields.get(name)) for name in layout["text"]]
        tokens = "".join(f"{user}:{status} " for _, user, status in resp)
        self.docs.append((rid, doc_id, doc.get("updated_at"), millis(doc.get("inserted_at")),
                          millis(doc.get("updated_at")), doc.get("submitted") or 0,
                          " " + tokens, *columns))
        self.src.append((rid, orjson.dumps(doc)))
        self.multi.update(multi)
        if texts:
            self.text.append((rid, *texts))
        self.meta += meta
        self.resp += resp
        self.answer += answer
        self.sugg += sugg
        self.vec += vec

    def write(self, cursor: sqlite3.Cursor, t: str, seq: int) -> None:
        if self.docs:
            metadata = "".join(f", m{i}" for i in range(len(self.docs[0]) - 7))
            marks = ", ".join("?" * len(self.docs[0]))
            cursor.executemany(
                f"INSERT INTO {t}_docs (rid, id, version, inserted_ms, updated_ms, submitted, "
                f"resp{metadata}, seq) VALUES ({marks}, {int(seq)})", self.docs)
        cursor.executemany(f"INSERT INTO {t}_src VALUES (?, ?)", self.src)
        cursor.executemany(f"INSERT OR IGNORE INTO {t}_multi VALUES (?)",
                           [(name,) for name in sorted(self.multi)])
        if self.text:
            marks = ", ".join("?" * len(self.text[0]))
            cursor.executemany(f"INSERT INTO {t}_text (rowid, {_columns(self.layout)}) "
                               f"VALUES ({marks})", self.text)
        cursor.executemany(f"INSERT INTO {t}_meta VALUES (?, ?, ?)", self.meta)
        cursor.executemany(f"INSERT INTO {t}_resp VALUES (?, ?, ?)", self.resp)
        cursor.executemany(f"INSERT INTO {t}_answer VALUES (?, ?, ?, ?)", self.answer)
        cursor.executemany(f"INSERT INTO {t}_sugg VALUES (?, ?, ?, ?, ?)", self.sugg)
        cursor.executemany(f"INSERT INTO {t}_vec VALUES (?, ?, ?, {int(seq)})", self.vec)


def _columns(layout: dict[str, Any]) -> str:
    return ", ".join(f"c{i}" for i in range(len(layout["text"])))


def _vector(name: str, value: Any, dims: int | None) -> bytes:
    if dims is None:
        raise Refused(f"the mapping has no vector field [vectors.{name}]")
    if not isinstance(value, list) or len(value) != dims:
        size = len(value) if isinstance(value, list) else 0
        raise Refused(f"The [vectors.{name}] field has a different number of dimensions "
                      f"[{size}] than defined in the mapping [{dims}]")
    try:
        packed = array("f", value)
    except (TypeError, OverflowError):
        raise Refused(f"failed to parse field [vectors.{name}] of type [dense_vector]"
                      ) from None
    if not any(packed):
        raise Refused(f"The [cosine] similarity does not support vectors with zero "
                      f"magnitude. Preview of invalid vector: {value[:5]}")
    return packed.tobytes()


def remove(cursor: sqlite3.Cursor, t: str, layout: dict[str, Any], rids: list[int],
           seq: int) -> None:
    """Every row of these documents, their deletion noted for what is kept in memory (the
    vector matrices, the columns)."""
    if not rids:
        return
    keys = [(r,) for r in rids]
    for table in ("docs", "src", "meta", "resp", "answer", "sugg"):
        cursor.executemany(f"DELETE FROM {t}_{table} WHERE rid = ?", keys)
    if layout["text"]:
        cursor.executemany(f"DELETE FROM {t}_text WHERE rowid = ?", keys)
    if layout["vectors"]:
        cursor.executemany(f"DELETE FROM {t}_vec WHERE rid = ?", keys)
    cursor.executemany(f"INSERT INTO {t}_gone VALUES (?, {int(seq)})", keys)
