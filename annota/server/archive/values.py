"""Column values: their logical kind, their archive encoding, and a canonical form.

A table's columns are reflected from the database it is read from, whatever its release,
and each is given one of a few logical kinds. A value is written to the archive in its
kind's encoding (a JSON value) and read back to the same Python value on any dialect:

- ``uuid``: ``"8-4-4-4-12"`` lower-case hex; ``timestamp``: ISO 8601 with microseconds and
  ``Z`` (annota stores UTC, without a zone); ``float``: the shortest repr that reads back
  to the same double (``NaN``/``Infinity`` as JSON's extension tokens); ``int``, ``bool``,
  ``text`` as themselves; NULL as ``null``;
- ``json``: the document's text as the database holds it, in a JSON string, so numbers keep
  every digit and a JSON ``null`` (``"null"``) stays apart from SQL NULL (``null``).

The canonical form is what digests are computed over, so that the same rows give the same
digest on SQLite and PostgreSQL: JSON documents parsed and written again with sorted keys
and each number as its exact decimal value (PostgreSQL's ``jsonb`` reorders keys and
rewrites ``1e-07`` as ``0.0000001``; both are the same value).
"""

from __future__ import annotations

import hashlib
import json
import math
import uuid
from datetime import datetime, timezone
from decimal import Decimal
from typing import Any

KINDS = ("uuid", "timestamp", "json", "float", "int", "bool", "text")
_MOD = 1 << 256


def kind_of(column_type: Any) -> str:
    """The logical kind of a reflected column type (SQLite's or PostgreSQL's)."""
    import sqlalchemy as sa

    name = type(column_type).__name__.upper()
    if isinstance(column_type, sa.Uuid) or name == "UUID":
        return "uuid"
    if isinstance(column_type, sa.CHAR) and column_type.length == 32:
        return "uuid"  # SQLAlchemy's Uuid on SQLite: CHAR(32) of hex digits
    if isinstance(column_type, sa.JSON) or name in ("JSON", "JSONB"):
        return "json"
    if isinstance(column_type, sa.DateTime):
        return "timestamp"
    if isinstance(column_type, sa.Boolean):
        return "bool"
    if isinstance(column_type, (sa.Float, sa.Double)) or name in ("REAL", "DOUBLE_PRECISION"):
        return "float"
    if isinstance(column_type, sa.Integer):
        return "int"
    if isinstance(column_type, sa.String):
        return "text"
    raise ValueError(f"no archive encoding for a column of type {column_type!r}")


def sql_type(kind: str) -> Any:
    """The SQLAlchemy type that reads and writes a kind's Python value on any dialect
    (JSON documents as their text)."""
    import sqlalchemy as sa

    return {"uuid": sa.Uuid(), "timestamp": sa.DateTime(), "json": sa.Text(),
            "float": sa.Float(), "int": sa.BigInteger(), "bool": sa.Boolean(),
            "text": sa.Text()}[kind]


def json_text(value: Any) -> str | None:
    """A JSON column's value, as read, to its text: SQLite hands a bare number back as a
    number (the column has numeric affinity), PostgreSQL's ``::text`` a string."""
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return _float_token(value)
    return str(value)


def _float_token(value: float) -> str:
    return repr(value) if math.isfinite(value) else {"inf": "Infinity", "-inf": "-Infinity",
                                                     "nan": "NaN"}[repr(value)]


def encode(kind: str, value: Any) -> Any:
    """A Python value read from the database to its archive (JSON) value."""
    if value is None:
        return None
    if kind == "uuid":
        return str(value if isinstance(value, uuid.UUID) else uuid.UUID(str(value)))
    if kind == "timestamp":
        if value.tzinfo is not None:
            value = value.astimezone(timezone.utc).replace(tzinfo=None)
        return value.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    if kind == "json":
        return json_text(value)
    if kind == "float":
        return float(value)
    if kind == "int":
        return int(value)
    if kind == "bool":
        return bool(value)
    return value


def decode(kind: str, value: Any) -> Any:
    """An archive value to the Python value written to the database."""
    if value is None:
        return None
    if kind == "uuid":
        return uuid.UUID(value)
    if kind == "timestamp":
        if not isinstance(value, str) or not value.endswith("Z"):
            raise ValueError(f"not a UTC timestamp: {value!r}")
        return datetime.fromisoformat(value[:-1])
    if kind == "json":
        if not isinstance(value, str):
            raise ValueError("a JSON document must be archived as its text")
        json.loads(value)  # valid JSON, or the member is not one annota wrote
        return value
    if kind == "float":
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ValueError(f"not a number: {value!r}")
        return float(value)
    if kind == "int":
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(f"not an integer: {value!r}")
        return value
    if kind == "bool":
        if not isinstance(value, bool):
            raise ValueError(f"not a boolean: {value!r}")
        return value
    if not isinstance(value, str):
        raise ValueError(f"not a string: {value!r}")
    return value


def canonical_json(text: str) -> str:
    """A JSON document in one form whatever wrote it: keys sorted, numbers exact."""
    return _dump(json.loads(text, parse_float=Decimal, parse_int=Decimal,
                            parse_constant=Decimal))


def _dump(value: Any) -> str:
    if isinstance(value, dict):
        return "{" + ",".join(json.dumps(k, ensure_ascii=False) + ":" + _dump(value[k])
                              for k in sorted(value)) + "}"
    if isinstance(value, list):
        return "[" + ",".join(_dump(v) for v in value) + "]"
    if isinstance(value, Decimal):
        if not value.is_finite():
            return str(value)
        return "0" if value == 0 else format(value.normalize(), "f")
    return json.dumps(value, ensure_ascii=False)


def canonical(kind: str, encoded: Any) -> Any:
    """An archive value in the form digests are computed over."""
    if kind == "json" and encoded is not None:
        return canonical_json(encoded)
    if kind == "float" and encoded is not None:
        return _float_token(encoded)
    return encoded


# derived rows (agreement) are recomputed with new ids and clocks whenever a backfill runs:
# they are compared by what they say, not by those
DERIVED = {"record_agreements", "question_agreements"}
_CLOCKS = {"id", "inserted_at", "updated_at"}


def hashed_columns(table: str, columns: tuple[str, ...]) -> tuple[bool, ...]:
    """Which columns a row's digest covers: all, but a derived row's id and clocks."""
    return tuple(not (table in DERIVED and c in _CLOCKS) for c in columns)


def row_hash(table: str, kinds: tuple[str, ...], encoded: list[Any],
             covered: tuple[bool, ...] | None = None) -> int:
    """A row's SHA-256 (over its table's name and its canonical values), as an integer."""
    covered = covered or (True,) * len(kinds)
    line = json.dumps([table, *(canonical(k, v) for k, v, c in zip(kinds, encoded, covered,
                                                                    strict=True) if c)],
                      ensure_ascii=False, separators=(",", ":"))
    return int.from_bytes(hashlib.sha256(line.encode()).digest(), "big")


class Digest:
    """A multiset digest: the sum of the rows' hashes modulo 2**256, so it does not depend on
    the order rows are read in, and the digests of parts add up to the whole's."""

    __slots__ = ("rows", "total")

    def __init__(self, rows: int = 0, total: int = 0) -> None:
        self.rows, self.total = rows, total

    def add(self, value: int) -> None:
        self.rows += 1
        self.total = (self.total + value) % _MOD

    @property
    def hex(self) -> str:
        return f"{self.total:064x}"

    def to_dict(self) -> dict[str, Any]:
        return {"rows": self.rows, "digest": self.hex}

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Digest) and (self.rows, self.total) == (other.rows,
                                                                          other.total)

    def __hash__(self) -> int:
        return hash((self.rows, self.total))
