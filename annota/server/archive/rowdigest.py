"""The digest ``copy`` checks its two sides by, computed by PostgreSQL itself where a side
is PostgreSQL, and in Python from SQLite's stored values where it is SQLite.

A row's text is the JSON array PostgreSQL's ``json_build_array`` prints for its columns in
name order: a UUID as its 32 hex digits, a timestamp as ``YYYY-MM-DDTHH:MM:SS[.f]``, a
double as the hex of its 8 bytes, a document as ``jsonb`` prints it (or, in a ``json``
column, as a string of its text), other values as themselves, NULL as ``null``. The row's
value is the first 16 bytes of the SHA-256 of that text, read as two signed 64-bit
integers; a table's (and a dataset's) digest is the count of its rows and the exact sums
of those integers. So a PostgreSQL side is summed by one query per table on the server,
and nothing is fetched but the sums.

The SQLite side reads each value as stored (no type conversion) and gives both its text
here and the text ``COPY`` writes it with, so the value written is the value hashed.
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Callable, Iterator
from datetime import datetime, timezone
from typing import Any

import numpy as np
import sqlalchemy as sa

from annota.server.archive.pgtext import jsonb_text, quote
from annota.server.archive.snapshot import Figures
from annota.server.archive.tables import TableSpec
from annota.server.archive.values import Digest, json_text, uuid_text

FETCH = 2000
_DOUBLE = struct.Struct(">d")
_COPY_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})
_NONFINITE = {"inf": "Infinity", "-inf": "-Infinity", "nan": "NaN"}


def copy_text(text: str) -> str:
    """A text field of ``COPY``'s text format."""
    if "\\" in text or "\t" in text or "\n" in text or "\r" in text:
        return text.translate(_COPY_ESCAPES)
    return text


def _normal_time(value: Any) -> str:
    if not isinstance(value, datetime):
        value = datetime.fromisoformat(str(value))
    if value.tzinfo is not None:
        value = value.astimezone(timezone.utc).replace(tzinfo=None)
    return value.isoformat(sep=" ", timespec="microseconds")


def _uuid(value: Any) -> tuple[str, str]:
    if type(value) is str and len(value) == 32:
        hexed = value.lower()
    else:
        hexed = uuid_text(value).replace("-", "")
    return hexed, f'"{hexed}"'


def _timestamp(value: Any) -> tuple[str, str]:
    if not (type(value) is str and len(value) == 26 and value[10] == " "):
        value = _normal_time(value)
    # as json_build_array prints a timestamp: a T, the fraction without trailing zeros
    seconds = value[11:19] if value.endswith("000000") else value[11:].rstrip("0")
    return value, f'"{value[:10]}T{seconds}"'

def _float(value: Any) -> tuple[str, str]:
    number = float(value)
    text = repr(number)
    return _NONFINITE.get(text, text), f'"{_DOUBLE.pack(number).hex()}"'


def _int(value: Any) -> tuple[str, str]:
    text = str(int(value))
    return text, text


def _bool(value: Any) -> tuple[str, str]:
    return ("t", "true") if value else ("f", "false")


def jsonb_columns(connection: sa.Connection) -> frozenset[tuple[str, str]]:
    """(table, column) of each ``jsonb`` column (none off PostgreSQL)."""
    if connection.dialect.name != "postgresql":
        return frozenset()
    return frozenset(connection.execute(sa.text(
        "SELECT table_name, column_name FROM information_schema.columns "
        "WHERE table_schema = current_schema() AND udt_name = 'jsonb'")).all())


def _in_name_order(spec: TableSpec) -> list[int]:
    return sorted(range(len(spec.columns)), key=lambda i: spec.columns[i])


# Each kind's value ``v`` to ``w`` (its COPY text) and ``h`` (its text in the row's digest):
# the common case inline, anything else through the kind's function above. The loop over
# a batch is generated per table (as ``dataclasses`` generates its methods), because a call
# per value is a third of the time it takes.
_INLINE = {
    "uuid": """
        elif type(v) is str and len(v) == 32:
            w{i} = v.lower()
            h{i} = f'"{{w{i}}}"'
        else:
            w{i}, h{i} = _uuid(v)""",
    "timestamp": """
        elif type(v) is str and len(v) == 26 and v[10] == " ":
            w{i} = v
            h{i} = (f'"{{v[:10]}}T{{v[11:19]}}"' if v[20:] == "000000"
                    else f'"{{v[:10]}}T{{v[11:].rstrip("0")}}"')
        else:
            w{i}, h{i} = _timestamp(v)""",
    "text": """
        else:
            if type(v) is not str:
                v = str(v)
            w{i} = copy_text(v) if ("\\\\" in v or "\\t" in v or "\\n" in v or "\\r" in v) else v
            h{i} = quote(v)""",
    "json": """
        else:
            if type(v) is not str:
                v = json_text(v)
            w{i} = copy_text(v) if ("\\\\" in v or "\\t" in v or "\\n" in v or "\\r" in v) else v
            h{i} = {render}(v)""",
}
_CALL = """
        else:
            w{i}, h{i} = {function}(v)"""


def _batch_source(spec: TableSpec, jsonb: frozenset[tuple[str, str]]) -> str:
    lines = ["def batch(rows):", "    lines = []", "    digests = []", "    for r in rows:"]
    for i, kind in enumerate(spec.kinds):
        render = "jsonb_text" if (spec.name, spec.columns[i]) in jsonb else "quote"
        lines += [f"        v = r[{i}]", "        if v is None:",
                  f'            w{i} = "\\\\N"', f'            h{i} = "null"']
        lines.append((_INLINE.get(kind) or _CALL).format(
            i=i, render=render, function=f"_{kind}")[1:])
    written = "\\t".join(f"{{w{i}}}" for i in range(len(spec.columns)))
    hashed = ", ".join(f"{{h{i}}}" for i in _in_name_order(spec))
    lines += [f'        lines.append(f"{written}\\n")',
              f'        digests.append(sha256(f"[{hashed}]".encode()).digest())',
              '    return "".join(lines), digests']
    return "\n".join(lines)


def row_batches(spec: TableSpec, jsonb: frozenset[tuple[str, str]]
                ) -> Callable[[list[tuple]], tuple[str, list[bytes]]]:
    """``batch(rows)``: SQLite rows to their ``COPY`` text and their SHA-256 digests."""
    namespace = {"_uuid": _uuid, "_timestamp": _timestamp, "_float": _float, "_int": _int,
                 "_bool": _bool, "copy_text": copy_text, "quote": quote,
                 "jsonb_text": jsonb_text, "json_text": json_text, "sha256": hashlib.sha256}
    exec(compile(_batch_source(spec, jsonb), f"<rows of {spec.name}>", "exec"), namespace)  # noqa: S102
    return namespace["batch"]


def count_batch(owners: dict[Any, list[int]], rows: list[tuple], digests: list[bytes]
                ) -> None:
    """Add the rows' values (the first 16 bytes of each digest, two signed 64-bit halves)
    to their datasets' sums (each dataset last in its row), summed exactly with numpy."""
    halves = np.frombuffer(b"".join(digests), dtype=">i8").reshape(-1, 4)[:, :2]
    high, low = halves >> 32, halves & 0xFFFFFFFF  # 32-bit parts: an int64 sum is exact
    column = len(rows[0]) - 1
    datasets = [r[column] for r in rows]
    if datasets.count(datasets[0]) == len(datasets):
        _add(owners, datasets[0], len(rows), high.sum(axis=0), low.sum(axis=0))
        return
    index: dict[Any, int] = {}
    groups = np.fromiter((index.setdefault(d, len(index)) for d in datasets), np.intp,
                         len(datasets))
    counts = np.bincount(groups, minlength=len(index))
    for dataset, n in index.items():
        mask = groups == n
        _add(owners, dataset, int(counts[n]), high[mask].sum(axis=0), low[mask].sum(axis=0))


def _add(owners: dict[Any, list[int]], dataset: Any, rows: int, high: Any, low: Any) -> None:
    sums = owners.setdefault(dataset, [0, 0, 0])
    sums[0] += rows
    sums[1] += (int(high[0]) << 32) + int(low[0])
    sums[2] += (int(high[1]) << 32) + int(low[1])


class Tally:
    """Counts and sums per table and per dataset (the raw owner as read)."""

    def __init__(self) -> None:
        self.tables: dict[str, dict[Any, list[int]]] = {}

    def table(self, name: str) -> dict[Any, list[int]]:
        return self.tables.setdefault(name, {})

    def figures(self) -> Figures:
        figures = Figures()
        for name, owners in self.tables.items():
            table = figures.tables[name] = Digest()
            for owner, (rows, high, low) in owners.items():
                total = (high << 64) + low
                table.add(total, rows)
                if owner is not None:
                    figures.datasets.setdefault(uuid_text(owner), Digest()).add(total, rows)
        return figures


def _owner_and_from(spec: TableSpec) -> tuple[str, str]:
    if not spec.dataset_path:
        return "NULL", f'"{spec.name}" t'
    if len(spec.dataset_path) == 1:
        return f't."{spec.dataset_path[0]}"', f'"{spec.name}" t'
    fk, parent = spec.dataset_path
    return "p.dataset_id", f'"{spec.name}" t LEFT JOIN "{parent}" p ON p.id = t."{fk}"'


def sqlite_rows(connection: sa.Connection, spec: TableSpec) -> Iterator[list[tuple]]:
    """A table's rows as SQLite stores them, its dataset last, in batches, in the order
    they are stored (a digest does not depend on it; a key's order costs a lookup a row)."""
    owner, from_ = _owner_and_from(spec)
    columns = ", ".join(f't."{c}"' for c in spec.columns)
    cursor = connection.connection.dbapi_connection.cursor()
    try:
        cursor.execute(f"SELECT {columns}, {owner} FROM {from_}")
        while batch := cursor.fetchmany(FETCH):
            yield batch
    finally:
        cursor.close()


def _sqlite_figures(connection: sa.Connection, specs: list[TableSpec],
                    jsonb: frozenset[tuple[str, str]]) -> Figures:
    tally = Tally()
    for spec in specs:
        batch, owners = row_batches(spec, jsonb), tally.table(spec.name)
        for rows in sqlite_rows(connection, spec):
            count_batch(owners, rows, batch(rows)[1])
    return tally.figures()


def _pg_value(spec: TableSpec, i: int, jsonb: frozenset[tuple[str, str]]) -> str:
    column, kind = f't."{spec.columns[i]}"', spec.kinds[i]
    if kind == "uuid":
        return f"replace({column}::text, '-', '')"
    if kind == "float":
        return f"encode(float8send({column}::float8), 'hex')"
    if kind == "json":
        return f"{column}::jsonb" if (spec.name, spec.columns[i]) in jsonb else f"{column}::text"
    return column


def _postgres_figures(connection: sa.Connection, specs: list[TableSpec],
                      jsonb: frozenset[tuple[str, str]]) -> Figures:
    tally = Tally()
    half = "sum(('x' || encode(substring(h, {}, 8), 'hex'))::bit(64)::bigint)"
    for spec in specs:
        owner, from_ = _owner_and_from(spec)
        values = ", ".join(_pg_value(spec, i, jsonb) for i in _in_name_order(spec))
        rows = connection.exec_driver_sql(
            f"SELECT owner::text, count(*), {half.format(1)}, {half.format(9)} FROM ("
            f"SELECT {owner} AS owner, sha256(convert_to(json_build_array({values})::text, "
            f"'UTF8')) AS h FROM {from_}) r GROUP BY owner").all()
        owners = tally.table(spec.name)
        for owner_id, count, high, low in rows:
            owners[owner_id] = [count, int(high), int(low)]
    return tally.figures()


def figures(connection: sa.Connection, specs: list[TableSpec],
            jsonb: frozenset[tuple[str, str]]) -> Figures:
    """The digests of ``specs``' tables on this side (``jsonb``: the PostgreSQL side's
    ``jsonb`` columns, read the same way on both)."""
    if connection.dialect.name == "postgresql":
        return _postgres_figures(connection, specs, jsonb)
    return _sqlite_figures(connection, specs, jsonb)
