"""``annota server database export``: the database (or some datasets) to one archive."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Protocol

from annota import __version__
from annota.config import Settings
from annota.errors import ConfigurationError
from annota.server import db
from annota.server.archive.fileformat import ArchiveWriter
from annota.server.archive.snapshot import (
    dataset_names,
    reflect,
    resolve_scope,
    revision_of,
    snapshot,
)
from annota.server.archive.tables import count_rows, read_lines, read_rows
from annota.server.jobs.backfill_jobs import completed_everywhere
from annota.server.schema.history import history


class Progress(Protocol):
    def started(self, what: str, total: int) -> None: ...
    def advanced(self, rows: int) -> None: ...
    def finished(self) -> None: ...
    def note(self, message: str) -> None: ...


class NoProgress:
    def started(self, what: str, total: int) -> None: ...
    def advanced(self, rows: int) -> None: ...
    def finished(self) -> None: ...
    def note(self, message: str) -> None: ...


@dataclass
class ExportResult:
    path: Path
    revision: str
    release: str | None
    tables: dict[str, int] = field(default_factory=dict)
    datasets: int = 0
    bytes: int = 0
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {"path": str(self.path), "revision": self.revision, "release": self.release,
                "tables": self.tables, "rows": sum(self.tables.values()),
                "datasets": self.datasets, "bytes": self.bytes,
                "seconds": round(self.seconds, 3)}


def default_name(release: str | None, when: datetime | None = None) -> str:
    when = when or datetime.now(timezone.utc)
    return f"annota-{release or 'base'}-{when.strftime('%Y%m%dT%H%M%S%fZ')}.annota"


def export(settings: Settings, output: Path | None = None, *,
           workspaces: tuple[str, ...] = (), dataset_ids: tuple[str, ...] = (),
           credentials: bool = True, progress: Progress | None = None) -> ExportResult:
    """Write the database (the whole instance, or the named workspaces and datasets) to one
    archive, read in one snapshot. ``output`` may be a directory (a name is chosen)."""
    progress = progress or NoProgress()
    started = time.perf_counter()
    url = settings.database_url
    database = db.open_database(url)
    try:
        with snapshot(database, url) as connection:
            revision = revision_of(connection, url)
            release = history().get(revision).release
            path = _output(output, release)
            scope = resolve_scope(connection, workspaces, dataset_ids, credentials)
            specs = reflect(connection)
            progress.started("export", sum(count_rows(connection, [s.name for s in specs])
                                           .values()))
            writer = ArchiveWriter(path)
            result = ExportResult(path, revision, release)
            try:
                for spec in specs:
                    with writer.member(spec) as member:
                        for line in _lines(connection, spec, scope):
                            member.write(line)
                            if member.rows % 1000 == 0:
                                progress.advanced(1000)
                        progress.advanced(member.rows % 1000)
                    result.tables[spec.name] = member.rows
                datasets = dataset_names(connection, scope)
                writer.finish({
                    "annota_version": __version__, "release": release,
                    "revision": revision, "dialect": connection.dialect.name,
                    "created_at": datetime.now(timezone.utc).isoformat(),
                    "scope": {"whole": scope.whole, "credentials": scope.credentials,
                              "dataset_ids": None if scope.whole
                              else [str(i) for i in scope.dataset_ids or []]},
                    "datasets": datasets,
                    # derived data (status, agreement, counts) known current: import
                    # need not recompute it for these
                    "derived_current": sorted(completed_everywhere(connection)
                                              & set(datasets)),
                })
            except BaseException:
                writer.abort()
                raise
            finally:
                progress.finished()
    finally:
        database.dispose()
    result.datasets = len(datasets)
    result.bytes = path.stat().st_size
    result.seconds = time.perf_counter() - started
    return result


def _lines(connection: Any, spec: Any, scope: Any) -> Iterator[bytes]:
    """A table's archive lines: built by PostgreSQL itself, or value by value."""
    if connection.dialect.name == "postgresql":
        yield from read_lines(connection, spec, scope)
        return
    codec = spec.codec
    for dataset, row in read_rows(connection, spec, scope):
        yield codec.line(codec.encode(row), dataset)


def _output(output: Path | None, release: str) -> Path:
    if output is None:
        return Path.cwd() / default_name(release)
    if output.is_dir():
        return output / default_name(release)
    if not output.parent.is_dir():
        raise ConfigurationError(f"cannot write {output}: {output.parent} is not a directory")
    return output
