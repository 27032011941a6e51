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

import decimal
import hashlib
import json
import math
import re
import uuid
from datetime import datetime, timezone
from decimal import Decimal
from typing import Any

import orjson
import sqlalchemy as sa

KINDS = ("uuid", "timestamp", "json", "float", "int", "bool", "text")
_MOD = 1 << 256


def kind_of(column_type: Any) -> str:
    """The logical kind of a reflected column type (SQLite's or PostgreSQL's)."""
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
    return {"uuid": AnyUuid(), "timestamp": sa.DateTime(), "json": sa.Text(),
            "float": sa.Float(), "int": sa.BigInteger(), "bool": sa.Boolean(),
            "text": sa.Text()}[kind]


class AnyUuid(sa.types.TypeDecorator):
    """A UUID column bound from a UUID or its text (on SQLite, stored as 32 hex digits);
    read as text ``8-4-4-4-12``."""

    impl = sa.Uuid(as_uuid=False)
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: Any) -> Any:
        return None if value is None else uuid_text(value)


def json_text(value: Any) -> str | None:
    """A JSON column's value, as read, to its text: SQLite hands a bare number back as a
    number (the column has numeric affinity), PostgreSQL's ``::text`` a string."""
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return repr(value) if math.isfinite(value) else str(_float_token(value))
    return str(value)


def _float_token(value: float) -> Any:
    """A float as archived: itself, or (not being JSON) ``"NaN"``/``"Infinity"``."""
    if math.isfinite(value):
        return value
    return {"inf": "Infinity", "-inf": "-Infinity", "nan": "NaN"}[repr(value)]


def _timestamp(value: datetime) -> str:
    if value.tzinfo is not None:
        value = value.astimezone(timezone.utc).replace(tzinfo=None)
    return value.isoformat(timespec="microseconds") + "Z"


_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


_HEX32 = re.compile(r"[0-9a-fA-F]{32}")


def uuid_text(value: Any) -> str:
    """A UUID as ``8-4-4-4-12`` lower-case hex, from a UUID, that text, or 32 hex digits
    (SQLite's storage)."""
    if type(value) is str:  # a database's text: PostgreSQL's, or SQLite's 32 hex digits
        if len(value) == 36 and value[8] == "-":
            return value.lower()
        if len(value) == 32 and _HEX32.fullmatch(value):
            h = value.lower()
            return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"
    if isinstance(value, uuid.UUID):
        return str(value)
    text = str(value).lower()
    if len(text) == 32 and "-" not in text:
        text = f"{text[:8]}-{text[8:12]}-{text[12:16]}-{text[16:20]}-{text[20:]}"
    if not _UUID.fullmatch(text):
        return str(uuid.UUID(text))  # raises ValueError for what is not a UUID
    return text


_ENCODERS: dict[str, Any] = {
    "uuid": uuid_text,
    "timestamp": _timestamp,
    "json": json_text,
    "float": lambda v: _float_token(float(v)),
    "int": int,
    "bool": bool,
}
_NONFINITE = {"Infinity": math.inf, "-Infinity": -math.inf, "NaN": math.nan}


def encode(kind: str, value: Any) -> Any:
    """A Python value read from the database to its archive (JSON) value."""
    if value is None or kind == "text":
        return value
    return _ENCODERS[kind](value)


def decode(kind: str, value: Any) -> Any:
    """An archive value to the Python value written to the database."""
    if value is None:
        return None
    if kind == "uuid":
        if not isinstance(value, str) or not _UUID.fullmatch(value):
            raise ValueError(f"not a UUID: {value!r}")
        return value
    if kind == "timestamp":
        if not isinstance(value, str) or not value.endswith("Z"):
            raise ValueError(f"not a UTC timestamp: {value!r}")
        return datetime.fromisoformat(value[:-1])
    if kind == "json":
        if not isinstance(value, str):
            raise ValueError("a JSON document must be archived as its text")
        orjson.loads(value)  # valid JSON, or the member is not one annota wrote
        return value
    if kind == "float":
        if isinstance(value, str) and value in _NONFINITE:
            return _NONFINITE[value]
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


class Codec:
    """A table's encoders, compiled once: archive values, lines, and row hashes."""

    def __init__(self, table: str, columns: tuple[str, ...], kinds: tuple[str, ...]) -> None:
        self.table = table
        self.converters = [(i, _ENCODERS[k]) for i, k in enumerate(kinds) if k != "text"]
        self.json = [i for i, k in enumerate(kinds) if k == "json"]
        self.floats = [i for i, k in enumerate(kinds) if k == "float"]
        self.covered = [i for i, c in enumerate(hashed_columns(table, columns)) if c]
        self.all_covered = len(self.covered) == len(columns)
        derived = DERIVED_COLUMNS.get(table, set())
        self.primary = None if table in DERIVED else [
            i for i in self.covered if columns[i] not in derived]

    def encode(self, row: Any) -> list[Any]:
        out = list(row)
        for i, convert in self.converters:
            if out[i] is not None:
                out[i] = convert(out[i])
        return out

    def line(self, encoded: list[Any], dataset: Any) -> bytes:
        return orjson.dumps([*encoded, None if dataset is None else str(dataset)]) + b"\n"

    def hash(self, encoded: list[Any], primary: bool = False) -> int:
        """The row's SHA-256 over its table's name and its canonical values (``primary``:
        derived values left out; 0 for a row of a derived table)."""
        if primary and self.primary is None:
            return 0
        values = list(encoded)
        for i in self.json:
            if values[i] is not None:
                values[i] = canonical_json(values[i])
        for i in self.floats:  # PostgreSQL writes the double 100.0 as 100
            if isinstance(values[i], int):
                values[i] = float(values[i])
        if primary:
            values = [values[i] for i in self.primary]
        elif not self.all_covered:
            values = [values[i] for i in self.covered]
        digest = hashlib.sha256(orjson.dumps([self.table, *values])).digest()
        return int.from_bytes(digest, "big")


def canonical_json(text: str) -> str:
    """A JSON document in one form whatever wrote it: keys sorted, each number as its
    decimal value. A float is taken at its shortest decimal (what annota and PostgreSQL
    write), so ``1e+16`` and PostgreSQL's ``10000000000000000`` are one number; integers
    with 16 digits or more (orjson reads those as floats) and NaN are exact decimals."""
    try:
        if _LONG_NUMBER.search(text):
            raise orjson.JSONDecodeError("", "", 0)
        value = orjson.loads(text)
    except orjson.JSONDecodeError:
        return _dump(json.loads(text, parse_float=Decimal, parse_int=Decimal,
                                parse_constant=Decimal))
    dumped = orjson.dumps(value, option=orjson.OPT_SORT_KEYS)
    # orjson writes a float at its shortest digits, already its decimal value unless it is
    # integral (``100.0``) or has an exponent: only then (or when a string merely looks
    # like one) is the document walked
    if _NOT_DECIMAL.search(dumped):
        dumped = orjson.dumps(_numbers(value), option=orjson.OPT_SORT_KEYS)
    return dumped.decode()


_LONG_NUMBER = re.compile(r"\d{16}")
_NOT_DECIMAL = re.compile(rb"\d\.0(?:[,\]}]|$)|\d[eE]")


def _numbers(value: Any) -> Any:
    if isinstance(value, float):
        return orjson.Fragment(_float_decimal(value))
    if isinstance(value, dict):
        return {k: _numbers(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_numbers(v) for v in value]
    return value


def _float_decimal(value: float) -> str:
    """``_decimal(Decimal(repr(value)))``, without Decimal when repr has no exponent."""
    text = repr(value)
    if "e" in text or "n" in text:  # an exponent, inf, nan
        return _decimal(Decimal(text))
    text = text.rstrip("0").rstrip(".")
    return "0" if text in ("", "-", "-0") else text


def _decimal(value: Decimal) -> str:
    if not value.is_finite():
        return str(value)
    if value == 0:
        return "0"
    exact = decimal.Context(prec=max(28, len(value.as_tuple().digits)))
    return format(value.normalize(exact), "f")


def _dump(value: Any) -> str:
    if isinstance(value, dict):
        return "{" + ",".join(orjson.dumps(k).decode() + ":" + _dump(value[k])
                              for k in sorted(value)) + "}"
    if isinstance(value, list):
        return "[" + ",".join(_dump(v) for v in value) + "]"
    if isinstance(value, Decimal):
        return _decimal(value)
    return orjson.dumps(value).decode()


# derived rows (agreement) are recomputed with new ids and clocks whenever a backfill runs:
# they are compared by what they say, not by those
DERIVED = {"record_agreements", "question_agreements"}
# derived columns of primary tables: what a backfill may change in them
DERIVED_COLUMNS = {"records": {"status"}, "datasets": {"completed_records"}}
_CLOCKS = {"id", "inserted_at", "updated_at"}


def hashed_columns(table: str, columns: tuple[str, ...]) -> tuple[bool, ...]:
    """Which columns a row's digest covers: all, but a derived row's id and clocks."""
    return tuple(not (table in DERIVED and c in _CLOCKS) for c in columns)


class Digest:
    """A multiset digest: the sum of the rows' hashes modulo 2**256, so it does not depend on
    the order rows are read in, and the digests of parts add up to the whole's."""

    __slots__ = ("rows", "total")

    def __init__(self, rows: int = 0, total: int = 0) -> None:
        self.rows, self.total = rows, total

    def add(self, value: int, rows: int = 1) -> None:
        """One row's value (or the sum of ``rows`` rows' values)."""
        self.rows += rows
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
