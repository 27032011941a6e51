"""The archive file: a zip of one JSON-lines member per table, then ``manifest.json``.

- ``tables/NNNN-<table>.jsonl``: one row per line, in key order: a JSON array of the row's
  values in the manifest's column order (``values.py`` says how each kind is encoded), then
  the id of the dataset the row belongs to (``null`` for users, workspaces, members);
- ``manifest.json``, last: the format and its version, the annota version, release,
  revision and dialect of the source, the time, the scope, per table its columns, kinds,
  key, row count and the member's SHA-256, and the datasets' names;
- the zip comment: the manifest's SHA-256.

An archive is written to ``FILE.partial`` and renamed when complete, so a file under the
archive's name is always whole. Reading checks, before anything uses a row: a zip annota
wrote, members in their order, the manifest's checksum, a known format and revision, and
(``check``) every member's SHA-256 and row count.
"""

from __future__ import annotations

import hashlib
import json
import os
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

import orjson

from annota.errors import ArchiveTooNewError, InvalidArchiveError
from annota.server.archive.tables import TableSpec
from annota.server.archive.values import decode

FORMAT = "annota-archive"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
_COMMENT = "annota-archive manifest-sha256="


def member_name(position: int, table: str) -> str:
    return f"tables/{position:04d}-{table}.jsonl"


class ArchiveWriter:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.partial = path.with_name(path.name + ".partial")
        self.zip = zipfile.ZipFile(self.partial, "w", zipfile.ZIP_DEFLATED, compresslevel=1)
        self.tables: list[dict[str, Any]] = []

    @contextmanager
    def member(self, spec: TableSpec) -> Iterator[_Member]:
        name = member_name(len(self.tables) + 1, spec.name)
        with self.zip.open(name, "w", force_zip64=True) as stream:
            member = _Member(stream)
            yield member
            member.flush()
        self.tables.append({**spec.to_dict(), "member": name, "rows": member.rows,
                            "sha256": member.sha256.hexdigest()})

    def finish(self, manifest: dict[str, Any]) -> None:
        manifest = {"format": FORMAT, "format_version": FORMAT_VERSION, **manifest,
                    "tables": self.tables}
        text = json.dumps(manifest, indent=1, sort_keys=True).encode()
        self.zip.writestr(MANIFEST, text)
        self.zip.comment = (_COMMENT + hashlib.sha256(text).hexdigest()).encode()
        self.zip.close()
        with open(self.partial, "rb") as f:
            os.fsync(f.fileno())
        os.replace(self.partial, self.path)

    def abort(self) -> None:
        try:
            self.zip.close()
        finally:
            self.partial.unlink(missing_ok=True)


class _Member:
    """A member being written: lines buffered, then written and hashed in chunks."""

    def __init__(self, stream: IO[bytes]) -> None:
        self.stream, self.rows, self.sha256 = stream, 0, hashlib.sha256()
        self.buffer: list[bytes] = []

    def write(self, line: bytes) -> None:
        self.buffer.append(line)
        self.rows += 1
        if len(self.buffer) >= 1000:
            self.flush()

    def flush(self) -> None:
        chunk = b"".join(self.buffer)
        self.buffer.clear()
        self.stream.write(chunk)
        self.sha256.update(chunk)


class Archive:
    """An archive opened for reading; ``manifest`` is checked, members are not (``check``)."""

    def __init__(self, path: Path, known_revision) -> None:  # noqa: ANN001 - Callable[[str], bool]
        self.path = path
        try:
            with open(path, "rb") as f:
                if f.read(4) != b"PK\x03\x04":  # a zip that starts here, not one inside
                    raise self.invalid("not an annota archive (not a zip file it wrote)")
            self.zip = zipfile.ZipFile(path)
        except FileNotFoundError:
            raise InvalidArchiveError(f"{path}: no such file") from None
        except IsADirectoryError:
            raise InvalidArchiveError(f"{path}: a directory, not an archive") from None
        except (zipfile.BadZipFile, OSError, ValueError) as exc:
            raise self.invalid(f"not an annota archive, or truncated ({exc})") from None
        try:
            self.manifest = self._manifest()
        except BaseException:
            self.zip.close()
            raise
        if not known_revision(self.manifest["revision"]):
            self.zip.close()
            raise ArchiveTooNewError(
                f"{path} was written by annota {self.manifest.get('annota_version')} at "
                f"revision {self.manifest['revision']} (release "
                f"{self.manifest.get('release')}), which this annota does not know; "
                "import it with that annota or a newer one")

    def invalid(self, why: str) -> InvalidArchiveError:
        return InvalidArchiveError(f"{self.path}: {why}; nothing was written")

    def _manifest(self) -> dict[str, Any]:
        comment = self.zip.comment.decode(errors="replace")
        names = [i.filename for i in self.zip.infolist()]
        if MANIFEST not in names or not comment.startswith(_COMMENT):
            raise self.invalid("not an annota archive (no manifest)")
        try:
            text = self.zip.read(MANIFEST)
        except (zipfile.BadZipFile, OSError, ValueError) as exc:
            raise self.invalid(f"the manifest cannot be read ({exc})") from None
        if hashlib.sha256(text).hexdigest() != comment[len(_COMMENT):]:
            raise self.invalid("the manifest was changed after the archive was written "
                               "(its SHA-256 differs)")
        try:
            manifest = json.loads(text)
            if manifest.get("format") != FORMAT:
                raise ValueError("format")
            version = int(manifest["format_version"])
            tables = manifest["tables"]
            expected = [t["member"] for t in tables] + [MANIFEST]
            for t in tables:
                (t["name"], t["columns"], t["kinds"], t["key"], t["rows"], t["sha256"])
            manifest["revision"], manifest["datasets"]
        except (ValueError, KeyError, TypeError):
            raise self.invalid("not an annota archive (its manifest is not one)") from None
        if version > FORMAT_VERSION:
            raise ArchiveTooNewError(
                f"{self.path} is in archive format {version}; this annota reads up to "
                f"{FORMAT_VERSION}: import it with a newer annota")
        if names != expected:
            raise self.invalid("its members are not the manifest's, in the manifest's order")
        return manifest

    @property
    def specs(self) -> list[TableSpec]:
        return [TableSpec(t["name"], tuple(t["columns"]), tuple(t["kinds"]),
                          tuple(t["key"])) for t in self.manifest["tables"]]

    def table(self, name: str) -> dict[str, Any] | None:
        return next((t for t in self.manifest["tables"] if t["name"] == name), None)

    def check(self, progress=None) -> None:  # noqa: ANN001 - Callable[[int], None]
        """Every member's SHA-256 and row count equal the manifest's, or InvalidArchiveError."""
        for table in self.manifest["tables"]:
            sha, rows, last = hashlib.sha256(), 0, b"\n"
            try:  # in big chunks (a line at a time costs four times as much)
                with self.zip.open(table["member"]) as stream:
                    while chunk := stream.read(1 << 20):
                        sha.update(chunk)
                        lines = chunk.count(b"\n")
                        rows, last = rows + lines, chunk[-1:]
                        if progress:
                            progress(lines)
            except (zipfile.BadZipFile, OSError, EOFError, ValueError) as exc:
                raise self.invalid(f"{table['member']} cannot be read ({exc})") from None
            rows += last != b"\n"  # a last line without its newline is a row too
            if sha.hexdigest() != table["sha256"] or rows != table["rows"]:
                raise self.invalid(f"{table['member']} differs from its manifest "
                                   f"(SHA-256 or row count): corrupted or edited")

    def rows(self, name: str) -> Iterator[tuple[str | None, list[Any], list[Any]]]:
        """(dataset id, encoded, decoded) rows of a table, in the archive's order."""
        table = self.table(name)
        if table is None:
            return
        kinds = tuple(table["kinds"])
        number = 0
        try:
            with self.zip.open(table["member"]) as stream:
                for line in stream:
                    number += 1
                    encoded = orjson.loads(line)
                    if not isinstance(encoded, list) or len(encoded) != len(kinds) + 1:
                        raise ValueError("not a row of the table")
                    dataset = encoded.pop()
                    yield (None if dataset is None else decode("uuid", dataset), encoded,
                           [decode(k, v) for k, v in zip(kinds, encoded, strict=True)])
        except (ValueError, zipfile.BadZipFile, OSError, EOFError) as exc:  # orjson's too
            raise self.invalid(f"{table['member']} line {number}: "
                               f"{exc}") from None

    def chunks(self, name: str, size: int = 1 << 20) -> Iterator[bytes]:
        table = self.table(name)
        if table is None:
            return
        try:
            with self.zip.open(table["member"]) as stream:
                while chunk := stream.read(size):
                    yield chunk
        except (zipfile.BadZipFile, OSError, EOFError) as exc:
            raise self.invalid(f"{table['member']} cannot be read ({exc})") from None

    def close(self) -> None:
        self.zip.close()

    def __enter__(self) -> Archive:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()
