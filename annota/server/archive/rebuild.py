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
       c.contype, t.relname, r.relname
FROM pg_constraint c JOIN pg_class t ON t.oid = c.conrelid
LEFT JOIN pg_class r ON r.oid = c.confrelid
WHERE t.relnamespace = current_schema()::regnamespace AND c.contype IN ('p', 'u', 'f')
  AND (t.relname = ANY(:names) OR (c.contype = 'f' AND c.confrelid IN (
       SELECT oid FROM pg_class WHERE relnamespace = current_schema()::regnamespace
       AND relname = ANY(:names))))
ORDER BY c.contype, t.relname, c.conname
"""
_INDEXES = """
SELECT format('%I', i.relname), pg_get_indexdef(i.oid), t.relname
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


class Rebuild:
    """What a bulk load dropped, to build again: table by table as each is loaded (so the
    server builds one table's indexes while the next one's rows are made), or all at the
    end. A table's keys come back before its references, and a reference only once the
    table it points at has its key."""

    def __init__(self, connection: sa.Connection, names: list[str]) -> None:
        self.connection, self.names = connection, names
        self.constraints = connection.execute(sa.text(_CONSTRAINTS), {"names": names}).all()
        self.indexes = connection.execute(sa.text(_INDEXES), {"names": names}).all()
        self.loading = set(names)  # dropped and not yet built again
        self.built: set[str] = set()  # statements run again

    def drop(self) -> None:
        for table, name, *_ in self.constraints:  # foreign keys first
            self.connection.exec_driver_sql(f"ALTER TABLE {table} DROP CONSTRAINT {name}")
        for name, _definition, _table in self.indexes:
            self.connection.exec_driver_sql(f"DROP INDEX {name}")
        self.connection.exec_driver_sql("SET LOCAL maintenance_work_mem = '256MB'")

    def loaded(self, table: str) -> None:
        """``table`` holds all its rows: build what can be built now."""
        self.loading.discard(table)
        self._build()

    def finish(self) -> None:
        self.loading.clear()
        self._build()

    def _build(self) -> None:
        for table, name, definition, kind, owner, target in reversed(self.constraints):
            ready = owner not in self.loading and (kind != "f" or target not in self.loading)
            if ready and name not in self.built:  # reversed: keys before references
                self.built.add(name)
                self.connection.exec_driver_sql(
                    f"ALTER TABLE {table} ADD CONSTRAINT {name} {definition}")
        for name, definition, owner in self.indexes:
            if owner not in self.loading and name not in self.built:
                self.built.add(name)
                self.connection.exec_driver_sql(definition)


@contextmanager
def bulk_load(connection: sa.Connection, expected: Mapping[str, int],
              min_rows: int = BULK_ROWS) -> Iterator[Rebuild | None]:
    """Within the caller's transaction: drop the indexes and constraints of the tables of
    ``expected`` (rows to come, per table) that are worth it, run the body (which may
    build them again table by table with ``Rebuild.loaded``), build what is left. Yields
    None when nothing was dropped (always, off PostgreSQL)."""
    names = (bulk_tables(connection, expected, min_rows)
             if connection.dialect.name == "postgresql" else [])
    if not names:
        yield None
        return
    rebuild = Rebuild(connection, names)
    rebuild.drop()
    yield rebuild
    rebuild.finish()


@contextmanager
def indexes_built_after(connection: sa.Connection, expected: Mapping[str, int],
                        min_rows: int = BULK_ROWS) -> Iterator[list[str]]:
    """``bulk_load``, everything built again at the end; yields the tables it dropped
    indexes and constraints on."""
    with bulk_load(connection, expected, min_rows) as rebuild:
        yield rebuild.names if rebuild else []
