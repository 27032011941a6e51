"""One consistent point in time to read a whole database in, and what is in it."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import orjson
import sqlalchemy as sa

from annota.errors import NotFoundError, SchemaAheadError, SchemaNotReadyError
from annota.server import db
from annota.server.archive.tables import Scope, TableSpec, read_lines, read_rows, reflect
from annota.server.archive.values import AnyUuid, Digest, uuid_text
from annota.server.schema.history import history
from annota.urls import DatabaseURL


@contextmanager
def snapshot(database: sa.Engine, url: DatabaseURL) -> Iterator[sa.Connection]:
    """A read-only transaction that sees one instant: REPEATABLE READ on PostgreSQL, a
    deferred transaction in WAL mode on SQLite (writers go on meanwhile)."""
    with db.connect(db.read_only(database), url) as connection:
        if connection.dialect.name == "postgresql":
            connection = connection.execution_options(isolation_level="REPEATABLE READ")
            connection.exec_driver_sql("SET TRANSACTION READ ONLY")
        try:
            yield connection
        finally:
            connection.rollback()


def revision_of(connection: sa.Connection, url: DatabaseURL, *, empty_ok: bool = False
                ) -> str | None:
    """The database's revision, known to this code (or an error saying why not)."""
    current = db.state_on(connection, with_pending=False).revision
    if current is None:
        if empty_ok:
            return None
        raise SchemaNotReadyError(f"the database at {url.masked} is empty: nothing to export")
    if current not in history():
        raise SchemaAheadError(f"the database at {url.masked} is at revision {current}, "
                               "which this annota does not know; use a newer annota")
    return current


def resolve_scope(connection: sa.Connection, workspaces: tuple[str, ...],
                  dataset_ids: tuple[str, ...], credentials: bool) -> Scope:
    if not workspaces and not dataset_ids:
        return Scope(None, credentials)
    ids: list[str] = []
    for name in workspaces:
        found = connection.execute(sa.text(
            "SELECT d.id FROM datasets d JOIN workspaces w ON w.id = d.workspace_id "
            "WHERE w.name = :name"), {"name": name}).scalars().all()
        exists = connection.execute(sa.text("SELECT 1 FROM workspaces WHERE name = :n"),
                                    {"n": name}).first()
        if exists is None:
            raise NotFoundError(f"no workspace named {name!r}")
        ids += [uuid_text(i) for i in found]
    datasets = sa.table("datasets", sa.column("id", AnyUuid()))
    for text in dataset_ids:
        try:
            wanted = uuid_text(text)
        except ValueError:
            raise NotFoundError(f"no dataset with id {text!r} (not a UUID)") from None
        if connection.execute(sa.select(datasets.c.id).where(datasets.c.id == wanted)
                              ).first() is None:
            raise NotFoundError(f"no dataset with id {text}")
        ids.append(wanted)
    return Scope(sorted(set(ids)), False)


@dataclass
class Figures:
    """Row counts and digests per table and per dataset."""

    tables: dict[str, Digest] = field(default_factory=dict)
    datasets: dict[str, Digest] = field(default_factory=dict)
    primary: bool = False  # derived values left out (is this the same data, imported?)

    def add(self, spec: TableSpec, dataset: str | None, encoded: list[Any]) -> None:
        value = spec.codec.hash(encoded, self.primary)
        if self.primary and value == 0:
            return
        self.tables[spec.name].add(value)
        if dataset is not None:
            self.datasets.setdefault(str(dataset), Digest()).add(value)

    def start(self, spec: TableSpec) -> None:
        self.tables[spec.name] = Digest()


def dataset_names(connection: sa.Connection, scope: Scope) -> dict[str, dict[str, str]]:
    rows = connection.execute(sa.text(
        "SELECT d.id, d.name, w.name FROM datasets d JOIN workspaces w "
        "ON w.id = d.workspace_id")).all()
    wanted = None if scope.whole else {str(i) for i in scope.dataset_ids or []}
    out = {}
    for id_, name, workspace in rows:
        key = uuid_text(id_)
        if wanted is None or key in wanted:
            out[key] = {"name": name, "workspace": workspace}
    return out


def figures_of(connection: sa.Connection, specs: list[TableSpec], scope: Scope,
               primary: bool = False) -> Figures:
    """The counts and digests of the database's rows in ``scope``, as an export computes
    them (the other side of ``verify`` and ``copy``)."""
    figures = Figures(primary=primary)
    for spec in specs:
        figures.start(spec)
        if connection.dialect.name == "postgresql":  # lines built by the server
            for line in read_lines(connection, spec, scope):
                encoded = orjson.loads(line)  # orjson reads past the newline
                figures.add(spec, encoded.pop(), encoded)
            continue
        codec = spec.codec
        for dataset, row in read_rows(connection, spec, scope):
            figures.add(spec, dataset, codec.encode(row))
    return figures


__all__ = ["Figures", "dataset_names", "figures_of", "reflect", "resolve_scope",
           "revision_of", "snapshot"]
