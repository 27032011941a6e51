"""``annota server database verify``: an archive against the database, by counts and
digests per table and per dataset. An archive from an older release is first brought to
head (as ``import`` does), so a database restored from it compares equal."""

from __future__ import annotations

from contextlib import ExitStack
from pathlib import Path

from annota.config import Settings
from annota.errors import ArchiveMismatchError
from annota.server import db
from annota.server.archive.compare import Comparison, compare
from annota.server.archive.export import NoProgress
from annota.server.archive.load import _load_fresh, open_archive
from annota.server.archive.snapshot import Figures, figures_of, reflect, revision_of, snapshot
from annota.server.archive.sources import staged
from annota.server.archive.tables import Scope
from annota.server.archive.values import uuid_text
from annota.server.schema.history import history


def verify(settings: Settings, path: Path, progress=None) -> Comparison:  # noqa: ANN001
    """Equal, or ArchiveMismatchError naming the tables and datasets that differ."""
    progress = progress or NoProgress()
    url = settings.database_url
    with open_archive(path) as archive, ExitStack() as stack:
        manifest = archive.manifest
        archive.check()
        scope_info = manifest["scope"]
        scope = Scope(None if scope_info["whole"] else
                      [uuid_text(i) for i in scope_info["dataset_ids"]], scope_info["credentials"])
        if manifest["revision"] == history().head.revision:
            theirs = archive_figures(archive)
        else:
            source = stack.enter_context(staged(settings, archive, _load_fresh, progress))
            theirs = figures_of(source.connection, source.specs, scope)
        database = db.open_database(url)
        stack.callback(database.dispose)
        with snapshot(database, url) as connection:
            revision_of(connection, url)
            ours = figures_of(connection, reflect(connection), scope)
    result = compare(theirs, ours, "archive", "database")
    if not result.equal:
        raise mismatch(
            f"{path} and the database at {url.masked} differ: "
            + ", ".join(result.differences[:8])
            + (f" and {len(result.differences) - 8} more" if len(result.differences) > 8
               else ""), result)
    return result


def archive_figures(archive) -> Figures:  # noqa: ANN001 - an open fileformat.Archive
    """The counts and digests of an archive's rows, as ``figures_of`` a database's."""
    figures = Figures()
    for spec in archive.specs:
        figures.start(spec)
        for dataset, encoded, _values in archive.rows(spec.name):
            figures.add(spec, dataset, encoded)
    return figures


def mismatch(message: str, comparison: Comparison) -> ArchiveMismatchError:
    error = ArchiveMismatchError(message, comparison.differences)
    error.comparison = comparison  # type: ignore[attr-defined]
    return error


