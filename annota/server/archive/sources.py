"""Where an import's rows come from: the archive itself (written at this annota's head), or
a staging SQLite database the archive was loaded into at its own revision and then brought
to head by the same revisions, async migrations and backfills ``upgrade`` runs."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any, Protocol

import sqlalchemy as sa

from annota.config import Settings
from annota.server import db
from annota.server.archive.fileformat import Archive
from annota.server.archive.snapshot import snapshot
from annota.server.archive.tables import Scope, TableSpec, read_rows, reflect
from annota.urls import DatabaseURL


class Source(Protocol):
    specs: list[TableSpec]

    def rows(self, spec: TableSpec) -> Iterator[tuple[str | None, list[Any]]]: ...


class ArchiveSource:
    def __init__(self, archive: Archive) -> None:
        self.archive, self.specs = archive, archive.specs

    def rows(self, spec: TableSpec) -> Iterator[tuple[str | None, list[Any]]]:
        for dataset, _encoded, values in self.archive.rows(spec.name):
            yield dataset, values

    def chunks(self, name: str) -> Iterator[bytes]:
        """A member's bytes as they are (checked already: ``Archive.check``)."""
        return self.archive.chunks(name)


class DatabaseSource:
    def __init__(self, connection: sa.Connection) -> None:
        self.connection, self.specs = connection, reflect(connection)

    def rows(self, spec: TableSpec) -> Iterator[tuple[str | None, list[Any]]]:
        yield from read_rows(self.connection, spec, Scope(None, True))


@contextmanager
def staged(settings: Settings, archive: Archive, load, progress) -> Iterator[DatabaseSource]:  # noqa: ANN001
    """The archive loaded into a new SQLite file at its revision, upgraded to head.
    ``load(settings, source, connection)`` writes a source into an empty database."""
    from annota.server.schema.migrate import migrate
    from annota.server.upgrade.run import upgrade

    with tempfile.TemporaryDirectory(prefix="annota-import-") as directory:
        staging = replace(settings, redis_url=None, database_url=DatabaseURL.for_sqlite_file(
            Path(directory) / "staging.db"))
        migrate(staging, archive.manifest["revision"])
        database = db.open_database(staging.database_url)
        try:
            with db.connect(db.writable(database), staging.database_url) as connection:
                load(staging, ArchiveSource(archive), connection)
                connection.commit()
            progress.note(f"staged at revision {archive.manifest['revision']} "
                          f"(release {archive.manifest.get('release')}); upgrading it to head")
            upgrade(staging, parts=("schema", "async", "backfills"))
            with snapshot(database, staging.database_url) as connection:
                yield DatabaseSource(connection)
        finally:
            database.dispose()
