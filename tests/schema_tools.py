"""Seed and snapshot a database at whatever revision it is, by reflection.

Used by the migration tests: rows of the shape each release had are inserted as the
history is walked, and snapshots before and after every step show what survived.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa

from annota.server.db import VERSION_TABLE

ROWS_PER_TABLE = 2


def reflect(connection: sa.Connection) -> sa.MetaData:
    metadata = sa.MetaData()
    metadata.reflect(connection)
    metadata.remove(metadata.tables[VERSION_TABLE]) if VERSION_TABLE in metadata.tables else None
    return metadata


def db_uuid(connection: sa.Connection, value: uuid.UUID) -> Any:
    # sa.Uuid stores 32 hex characters on SQLite, a native uuid on PostgreSQL
    return value.hex if connection.dialect.name == "sqlite" else value


def insert(connection: sa.Connection, table: str, **values: Any) -> Any:
    """Insert one row into ``table`` as it is now; returns its id."""
    return insert_many(connection, table, [values])[0]


def insert_many(connection: sa.Connection, table: str, rows: list[dict[str, Any]]) -> list:
    """Insert rows into ``table`` as it is now (reflected once); returns their ids."""
    if not rows:
        return []
    reflected = sa.Table(table, sa.MetaData(), autoload_with=connection)
    rows = [{k: db_uuid(connection, v) if isinstance(v, uuid.UUID) else v
             for k, v in row.items()} for row in rows]
    for row in rows:
        row.setdefault("id", db_uuid(connection, uuid.uuid4()))
    connection.execute(reflected.insert(), rows)
    return [row["id"] for row in rows]


def _value(column: sa.Column, table: str, generation: int, i: int) -> Any:
    kind = column.type
    if isinstance(kind, sa.Boolean):
        return i % 2 == 0
    if isinstance(kind, sa.Integer):
        return 3 + i
    if isinstance(kind, sa.Float):
        return 0.25 * (i + 1)
    if isinstance(kind, sa.JSON):
        return {"generation": generation, "row": i, "table": table}
    if isinstance(kind, sa.DateTime):
        return datetime(2024, 1, 1) + timedelta(days=generation, minutes=i)
    if isinstance(kind, sa.Uuid):  # PostgreSQL's uuid (SQLite reflects text)
        return uuid.uuid5(uuid.NAMESPACE_URL, f"{table}.{column.name}-{generation}-{i}")
    return f"{table}.{column.name}-{generation}-{i}"


def seed_generation(connection: sa.Connection, generation: int) -> dict[str, list[Any]]:
    """Insert ROWS_PER_TABLE rows into every table, children pointing at this generation's
    parents (row i at parent i, which keeps composite unique keys unique)."""
    metadata = reflect(connection)
    ids: dict[str, list[Any]] = {}
    for table in metadata.sorted_tables:
        fks = {fk.parent.name: fk.column.table.name for fk in table.foreign_keys}
        rows = []
        for i in range(ROWS_PER_TABLE):
            row = {}
            for column in table.columns:
                if column.name == "id":
                    row["id"] = db_uuid(connection, uuid.uuid4())
                elif column.name in fks:
                    row[column.name] = ids[fks[column.name]][i]
                else:
                    row[column.name] = _value(column, table.name, generation, i)
            rows.append(row)
        connection.execute(table.insert(), rows)
        key = _key(table)
        ids[table.name] = [r[key] for r in rows]
    return ids


def _key(table: sa.Table) -> str:
    return next(iter(table.primary_key.columns)).name


def _plain(value: Any) -> Any:
    if isinstance(value, uuid.UUID):
        return value.hex
    return value


def snapshot(connection: sa.Connection) -> dict[str, dict[str, dict[str, Any]]]:
    """{table: {row id: {column: value}}} for every annota table."""
    metadata = reflect(connection)
    return {
        table.name: {
            _plain(row[_key(table)]): {k: _plain(v) for k, v in row.items()}
            for row in connection.execute(table.select()).mappings()
        }
        for table in metadata.sorted_tables
    }
