"""The digest ``copy`` checks its two sides by, computed by PostgreSQL itself where a side
is PostgreSQL, and in Python from SQLite's stored values where it is SQLite.

A row's text is its columns in name order, each as PostgreSQL prints it, joined by the
unit separator (``\\x1f``, which no printed value but text holds): a UUID as its 32 hex
digits, a timestamp as ``YYYY-MM-DD HH:MM:SS[.ffffff]`` (no trailing zeros), a double as
the hex of its 8 bytes, a document as ``jsonb`` prints it, text (and a ``json`` column's
text) after its length in bytes and a colon, other values as themselves, NULL as ``N``.
The row's value is the first 8 bytes of the SHA-256 of that text as a signed integer; a
table's digest is the count of its rows and the exact sum of their values (per table, not
per dataset: finding a child row's dataset costs a lookup in its parent a row). So a
PostgreSQL side is summed by one query per table on the server (in parallel workers), and
nothing is fetched but the sums.

The SQLite side reads each value as stored (no type conversion) and gives both its text
here and the text ``COPY`` writes it with, so the value written is the value hashed.
"""

from __future__ import annotations

import functools
import hashlib
import struct
from collections.abc import Callable, Iterator
from datetime import datetime, timezone
from typing import Any

import sqlalchemy as sa

from annota.server.archive.pgtext import jsonb_text
from annota.server.archive.snapshot import Figures
from annota.server.archive.tables import READ_BATCH, TableSpec
from annota.server.archive.values import Digest, json_text, uuid_text

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
    return hexed, hexed


def _timestamp(value: Any) -> tuple[str, str]:
    if not (type(value) is str and len(value) == 26 and value[10] == " "):
        value = _normal_time(value)
    # as PostgreSQL prints a timestamp: the fraction without its trailing zeros
    return value, value[:19] if value.endswith("000000") else value.rstrip("0")


def _text(value: Any) -> tuple[str, str]:
    """Text (or a ``json`` column's text), after its length in bytes: the value holds the
    separator only here, and a value of any length is read back from the row's text."""
    text = value if type(value) is str else str(value)
    size = len(text) if text.isascii() else len(text.encode())
    return copy_text(text), f"{size}:{text}"


def _json(value: Any) -> tuple[str, str]:
    return _text(json_text(value))


def _jsonb(value: Any) -> tuple[str, str]:
    text = json_text(value)
    return copy_text(text), jsonb_text(text)


def _float(value: Any) -> tuple[str, str]:
    number = float(value)
    text = repr(number)
    return _NONFINITE.get(text, text), _DOUBLE.pack(number).hex()


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
            w{i} = h{i} = v.lower()""",
    "timestamp": """
        elif type(v) is str and len(v) == 26 and v[10] == " ":
            w{i} = v
            h{i} = v[:19] if v[20:] == "000000" else v.rstrip("0")""",
    "jsonb": """
        elif type(v) is str:
            w{i} = copy_text(v) if ("\\\\" in v or "\\t" in v or "\\n" in v or "\\r" in v) else v
            h{i} = jsonb_text(v)""",
    "text": """
        elif type(v) is str:
            w{i} = copy_text(v) if ("\\\\" in v or "\\t" in v or "\\n" in v or "\\r" in v) else v
            h{i} = f"{{len(v) if v.isascii() else len(v.encode())}}:{{v}}\"""",
}
_FUNCTIONS = {"_uuid": _uuid, "_timestamp": _timestamp, "_float": _float, "_int": _int,
              "_bool": _bool, "_text": _text, "_json": _json, "_jsonb": _jsonb}


def _kind(spec: TableSpec, i: int, jsonb: frozenset[tuple[str, str]]) -> str:
    kind = spec.kinds[i]
    if kind == "json":
        return "jsonb" if (spec.name, spec.columns[i]) in jsonb else "json"
    return kind


def _batch_source(spec: TableSpec, jsonb: frozenset[tuple[str, str]]) -> str:
    lines = ["def batch(rows):", "    lines = []", "    digests = []", "    for r in rows:"]
    for i in range(len(spec.columns)):
        kind = _kind(spec, i, jsonb)
        lines += [f"        v = r[{i}]", "        if v is None:",
                  f'            w{i} = "\\\\N"', f'            h{i} = "N"']
        if kind in _INLINE:
            lines.append(_INLINE[kind].format(i=i)[1:])
        lines += ["        else:", f"            w{i}, h{i} = _{kind}(v)"]
    written = "\\t".join(f"{{w{i}}}" for i in range(len(spec.columns)))
    hashed = "\\x1f".join(f"{{h{i}}}" for i in _in_name_order(spec))
    lines += [f'        lines.append(f"{written}\\n")',
              f'        digests.append(sha256(f"{hashed}".encode()).digest())',
              '    return "".join(lines), digests']
    return "\n".join(lines)


def row_batches(spec: TableSpec, jsonb: frozenset[tuple[str, str]]
                ) -> Callable[[list[tuple]], tuple[str, list[bytes]]]:
    """``batch(rows)``: SQLite rows to their ``COPY`` text and their SHA-256 digests."""
    namespace = {**_FUNCTIONS, "copy_text": copy_text, "jsonb_text": jsonb_text,
                 "sha256": hashlib.sha256}
    exec(compile(_batch_source(spec, jsonb), f"<rows of {spec.name}>", "exec"), namespace)  # noqa: S102
    return namespace["batch"]


def count_batch(sums: list[int], digests: list[bytes]) -> None:
    """Add the rows' values (the first 8 bytes of each digest, signed) to ``sums`` (rows,
    total)."""
    sums[0] += len(digests)
    sums[1] += sum(_firsts(len(digests)).unpack(b"".join(digests)))


@functools.lru_cache(maxsize=8)
def _firsts(count: int) -> struct.Struct:
    """The first 8 bytes of each of ``count`` SHA-256 digests, as signed integers."""
    return struct.Struct(">" + "q24x" * count)


class Tally:
    """Rows and the sum of their values, per table."""

    def __init__(self) -> None:
        self.tables: dict[str, list[int]] = {}

    def table(self, name: str) -> list[int]:
        return self.tables.setdefault(name, [0, 0])

    def figures(self) -> Figures:
        figures = Figures()
        for name, (rows, total) in self.tables.items():
            figures.tables[name] = Digest()
            figures.tables[name].add(total, rows)
        return figures


def sqlite_rows(connection: sa.Connection, spec: TableSpec) -> Iterator[list[tuple]]:
    """A table's rows as SQLite stores them, in batches, in the order they are stored (a
    digest does not depend on it, and a key's order costs an index lookup a row)."""
    columns = ", ".join(f'"{c}"' for c in spec.columns)
    cursor = connection.connection.dbapi_connection.cursor()
    try:
        cursor.execute(f'SELECT {columns} FROM "{spec.name}"')
        while batch := cursor.fetchmany(READ_BATCH):
            yield batch
    finally:
        cursor.close()


def _sqlite_figures(connection: sa.Connection, specs: list[TableSpec],
                    jsonb: frozenset[tuple[str, str]]) -> Figures:
    tally = Tally()
    for spec in specs:
        batch, sums = row_batches(spec, jsonb), tally.table(spec.name)
        for rows in sqlite_rows(connection, spec):
            count_batch(sums, batch(rows)[1])
    return tally.figures()


def _pg_value(spec: TableSpec, i: int, jsonb: frozenset[tuple[str, str]]) -> str:
    column, kind = f't."{spec.columns[i]}"', _kind(spec, i, jsonb)
    value = {"uuid": f"encode(uuid_send({column}::uuid), 'hex')",
             "timestamp": f"{column}::timestamp::text",
             "float": f"encode(float8send({column}::float8), 'hex')",
             "jsonb": f"{column}::jsonb::text",
             "json": f"octet_length({column}::text) || ':' || {column}::text",
             "text": f"octet_length({column}) || ':' || {column}",
             }.get(kind, f"{column}::text")
    return f"coalesce({value}, 'N')"


def prepare_postgresql(connection: sa.Connection) -> None:
    """The printing of timestamps the row's text assumes (for this transaction only)."""
    connection.exec_driver_sql("SET LOCAL DateStyle = 'ISO, YMD'")
    connection.exec_driver_sql("SET LOCAL TimeZone = 'UTC'")


def postgresql_table(connection: sa.Connection, spec: TableSpec,
                     jsonb: frozenset[tuple[str, str]]) -> list[int]:
    """A table's rows and the sum of their values, on the server (after
    ``prepare_postgresql``)."""
    values = ", ".join(_pg_value(spec, i, jsonb) for i in _in_name_order(spec))
    value = (f"('x' || encode(substring(sha256(convert_to(concat_ws(E'\\x1f', {values}), "
             "'UTF8')), 1, 8), 'hex'))::bit(64)::bigint")
    rows, total = connection.exec_driver_sql(
        f'SELECT count(*), sum({value}) FROM "{spec.name}" t').one()
    return [rows, int(total or 0)]


def _postgres_figures(connection: sa.Connection, specs: list[TableSpec],
                      jsonb: frozenset[tuple[str, str]]) -> Figures:
    tally = Tally()
    prepare_postgresql(connection)
    for spec in specs:
        tally.tables[spec.name] = postgresql_table(connection, spec, jsonb)
    return tally.figures()


def figures(connection: sa.Connection, specs: list[TableSpec],
            jsonb: frozenset[tuple[str, str]]) -> Figures:
    """The digests of ``specs``' tables on this side (``jsonb``: the PostgreSQL side's
    ``jsonb`` columns, read the same way on both)."""
    if connection.dialect.name == "postgresql":
        return _postgres_figures(connection, specs, jsonb)
    return _sqlite_figures(connection, specs, jsonb)
