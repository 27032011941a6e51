"""PostgreSQL's fast path for an import: an archive member's lines go into the server with
``COPY`` as they are, and ``INSERT ... SELECT`` takes each row's values out of them in SQL.
No row is decoded in Python. Used for the tables that belong to datasets; users,
workspaces and memberships (a few rows, matched by name) take the general path."""

from __future__ import annotations

import sqlalchemy as sa

from annota.server.archive.tables import CSV_LINES, TableSpec

_COPY = f"COPY annota_import_lines (line) FROM STDIN {CSV_LINES}"
_CASTS = {"uuid": "uuid", "timestamp": "timestamp", "float": "float8", "int": "bigint",
          "bool": "boolean"}


def usable(connection: sa.Connection, spec: TableSpec) -> bool:
    return (connection.dialect.name == "postgresql" and bool(spec.dataset_path)
            and spec.name != "datasets")


def copy_member(connection: sa.Connection, chunks, spec: TableSpec, have: TableSpec,  # noqa: ANN001
                writing: set[str], users: dict[str, str]) -> int:
    """Insert the rows of ``chunks`` (a member's bytes) whose dataset is in ``writing``,
    ``user_id`` mapped by ``users``; the count inserted."""
    types = dict(connection.execute(sa.text(
        "SELECT column_name, udt_name FROM information_schema.columns "
        "WHERE table_schema = current_schema() AND table_name = :t"), {"t": spec.name}).all())
    raw = connection.connection.dbapi_connection
    with raw.cursor() as cursor:
        cursor.execute("CREATE TEMP TABLE IF NOT EXISTS annota_import_lines (line jsonb) "
                       "ON COMMIT DROP")
        cursor.execute("TRUNCATE annota_import_lines")
        with cursor.copy(_COPY) as copy:
            for chunk in chunks:
                copy.write(chunk)
        moved = {k: v for k, v in users.items() if k != v}
        values, params, joins = [], [], ""
        for column in have.columns:
            i = spec.index(column)
            kind = spec.kinds[i]
            value = f"(l.line->>{i})"
            if kind == "json":
                value = f"{value}::{types[column]}"
            elif kind in _CASTS:
                value = f"{value}::{_CASTS[kind]}"
            if column == "user_id" and moved:
                joins = (" LEFT JOIN (VALUES " + ", ".join(["(%s::uuid, %s::uuid)"] * len(moved))
                         + f") AS m(source, target) ON m.source = {value}")
                params += [p for pair in moved.items() for p in pair]
                value = f"COALESCE(m.target, {value})"
            values.append(value)
        names = ", ".join(f'"{c}"' for c in have.columns)
        cursor.execute(
            f'INSERT INTO "{spec.name}" ({names}) SELECT {", ".join(values)} '
            f"FROM annota_import_lines l{joins} "
            f"WHERE (l.line->>{len(spec.columns)}) = ANY(%s)", [*params, sorted(writing)])
        return cursor.rowcount
