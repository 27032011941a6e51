"""PostgreSQL's fast path for an import: an archive member's lines made into ``COPY`` text
here and streamed into the table. Each value goes in as the archive spells it (a UUID's
text, a timestamp's ISO text, a document's text, a number's shortest digits), so the
server parses it as a typed value exactly once. Used for the tables that belong to
datasets; users, workspaces and memberships (a few rows, matched by name) take the
general path.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any

import orjson
import psycopg
import sqlalchemy as sa

from annota.errors import InvalidArchiveError
from annota.server.archive.rowdigest import copy_text
from annota.server.archive.tables import TableSpec

_BATCH = 2000


def usable(connection: sa.Connection, spec: TableSpec) -> bool:
    return (connection.dialect.name == "postgresql" and bool(spec.dataset_path)
            and spec.name != "datasets")


def _float(value: Any) -> str:
    if isinstance(value, str):  # NaN, Infinity, -Infinity: PostgreSQL's own spellings
        return value
    return repr(float(value))


def _text(value: Any) -> str:
    return copy_text(value if type(value) is str else str(value))


_FIELD: dict[str, Callable[[Any], str]] = {
    "uuid": str, "timestamp": str, "json": _text, "text": _text, "float": _float,
    "int": lambda v: str(int(v)), "bool": lambda v: "t" if v else "f"}


def _lines(lines: Iterable[bytes], spec: TableSpec, have: TableSpec, writing: set[str],
           users: dict[str, str]) -> Iterator[tuple[str, int]]:
    """(COPY text, rows) per batch of the archive's lines whose dataset is in ``writing``,
    columns in ``have``'s order, ``user_id`` mapped by ``users``."""
    fields = [(spec.index(c), _FIELD[spec.kinds[spec.index(c)]]) for c in have.columns]
    moved = {k: v for k, v in users.items() if k != v}
    user = spec.index("user_id") if moved and "user_id" in spec.columns else None
    out: list[str] = []
    for line in lines:
        row = orjson.loads(line)
        if row[-1] not in writing:
            continue
        if user is not None:
            row[user] = moved.get(row[user], row[user])
        out.append("\t".join(["\\N" if row[i] is None else field(row[i])
                              for i, field in fields]) + "\n")
        if len(out) >= _BATCH:
            yield "".join(out), len(out)
            out = []
    if out:
        yield "".join(out), len(out)


def _split(chunks: Iterable[bytes]) -> Iterator[bytes]:
    """A member's lines, from its chunks."""
    rest = b""
    for chunk in chunks:
        lines = (rest + chunk).split(b"\n")
        rest = lines.pop()
        yield from lines
    if rest:
        yield rest


def copy_member(connection: sa.Connection, chunks, spec: TableSpec, have: TableSpec,  # noqa: ANN001
                writing: set[str], users: dict[str, str], progress=None) -> int:  # noqa: ANN001
    """Insert the rows of ``chunks`` (a member's bytes) whose dataset is in ``writing``,
    ``user_id`` mapped by ``users``; the count inserted."""
    names = ", ".join(f'"{c}"' for c in have.columns)
    raw = connection.connection.dbapi_connection
    written = 0
    try:
        with raw.cursor() as cursor, cursor.copy(
                f'COPY "{spec.name}" ({names}) FROM STDIN') as copy:
            for text, rows in _lines(_split(chunks), spec, have, writing, users):
                copy.write(text)
                written += rows
                if progress:
                    progress.advanced(rows)
    except (psycopg.DataError, orjson.JSONDecodeError, IndexError, TypeError,
            ValueError) as exc:
        raise InvalidArchiveError(
            f"a row of {spec.name} is not one this database stores ("
            + " ".join(str(exc).split())[:300] + "); nothing was written") from None
    return written
