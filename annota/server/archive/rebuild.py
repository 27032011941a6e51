"""PostgreSQL's bulk-load order, as ``pg_restore`` and ``pgloader`` keep it: a big table's
indexes and constraints are dropped before its rows go in and built again after them, so
each index is built by one sort instead of a tree insertion per row, and each foreign key
is checked by one join instead of a lookup per row.

Only for tables that are empty when the load starts and that will receive many rows, and
only inside the caller's transaction: PostgreSQL's DDL is transactional, so a failure, a
rollback or a ``kill -9`` takes the drops back with the rows, and a constraint the rows
break fails the rebuild (and so the load) exactly as it would have failed the insert.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager

import sqlalchemy as sa

BULK_ROWS = 5000  # below this, a table keeps its indexes (rebuilding costs more)

_CONSTRAINTS = """
SELECT format('%I', t.relname), format('%I', c.conname), pg_get_constraintdef(c.oid),
       c.contype
FROM pg_constraint c JOIN pg_class t ON t.oid = c.conrelid
WHERE t.relnamespace = current_schema()::regnamespace AND c.contype IN ('p', 'u', 'f')
  AND (t.relname = ANY(:names) OR (c.contype = 'f' AND c.confrelid IN (
       SELECT oid FROM pg_class WHERE relnamespace = current_schema()::regnamespace
       AND relname = ANY(:names))))
ORDER BY c.contype, t.relname, c.conname
"""
_INDEXES = """
SELECT format('%I', i.relname), pg_get_indexdef(i.oid)
FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid JOIN pg_class t ON t.oid = x.indrelid
WHERE t.relnamespace = current_schema()::regnamespace AND t.relname = ANY(:names)
  AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = x.indexrelid
                  AND c.conrelid = x.indrelid)
ORDER BY t.relname, i.relname
"""


def bulk_tables(connection: sa.Connection, expected: Mapping[str, int],
                min_rows: int = BULK_ROWS) -> list[str]:
    """The tables worth loading without indexes: empty now, ``min_rows`` or more coming."""
    present = set(sa.inspect(connection).get_table_names())
    quote = connection.dialect.identifier_preparer.quote
    return [name for name, rows in expected.items()
            if rows >= min_rows and name in present and not connection.exec_driver_sql(
                f"SELECT EXISTS (SELECT 1 FROM {quote(name)})").scalar()]


@contextmanager
def indexes_built_after(connection: sa.Connection, expected: Mapping[str, int],
                        min_rows: int = BULK_ROWS) -> Iterator[list[str]]:
    """Within the caller's transaction: drop the indexes and constraints of the tables of
    ``expected`` (rows to come, per table) that are worth it, run the body, build them
    again. Yields the tables it dropped them on (none off PostgreSQL)."""
    if connection.dialect.name != "postgresql":
        yield []
        return
    names = bulk_tables(connection, expected, min_rows)
    if not names:
        yield []
        return
    constraints = connection.execute(sa.text(_CONSTRAINTS), {"names": names}).all()
    indexes = connection.execute(sa.text(_INDEXES), {"names": names}).all()
    for table, name, _definition, _kind in constraints:  # foreign keys first
        connection.exec_driver_sql(f"ALTER TABLE {table} DROP CONSTRAINT {name}")
    for name, _definition in indexes:
        connection.exec_driver_sql(f"DROP INDEX {name}")
    yield names
    connection.exec_driver_sql("SET LOCAL maintenance_work_mem = '256MB'")
    for table, name, definition, _kind in reversed(constraints):  # keys before references
        connection.exec_driver_sql(f"ALTER TABLE {table} ADD CONSTRAINT {name} {definition}")
    for _name, definition in indexes:
        connection.exec_driver_sql(definition)
