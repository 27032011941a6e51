"""The archive: round trips between SQLite and PostgreSQL, every release's archive, and
what is refused (and leaves the target as it was)."""

from __future__ import annotations

import io
import json
import tarfile
import zipfile
from decimal import Decimal
from pathlib import Path

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from annota.server.archive.copy import copy
from annota.server.archive.export import export
from annota.server.archive.load import import_archive
from annota.server.archive.tables import Scope, read_rows, reflect
from annota.server.archive.verify import verify
from annota.server.schema.history import history
from annota.server.schema.migrate import migrate
from annota.server.upgrade.run import upgrade
from annota.urls import DatabaseURL
from tests.api_tools import pg_database
from tests.archive_tools import figures, insert_instance, instances, settings_for
from tests.conftest import Annota, make_env, sqlalchemy_url
from tests.schema_tools import snapshot
from tests.upgrade_tools import seed_release

HEAD = history().head.revision


def _manifest(path: Path) -> dict:
    with zipfile.ZipFile(path) as z:
        return json.loads(z.read("manifest.json"))


def _digests(path: Path):  # noqa: ANN202
    """The archive's figures, computed from its rows (as verify does)."""
    from annota.server.archive.load import open_archive
    from annota.server.archive.verify import archive_figures

    with open_archive(path) as archive:
        return archive_figures(archive)


def _sqlite(directory: Path, name: str) -> str:
    directory.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{directory / name}"


def _derive(url: str, home: Path) -> None:
    """Make the generated derived data (statuses, agreement, counts) what a live server
    keeps: the backfills, as import runs them."""
    from annota.server.jobs import runner
    from annota.server.jobs.backfills import BACKFILLS

    for name in BACKFILLS:
        assert runner.run(settings_for(home, url), name, force=True, inline=True).ok


@settings(max_examples=4, deadline=None, suppress_health_check=list(HealthCheck))
@given(rows=instances())
def test_round_trip_sqlite_postgresql_sqlite(tmp_path_factory, postgres_server_url, rows):
    """SQLite -> archive -> PostgreSQL -> archive -> SQLite: the same rows (figures
    computed from each database) and the same digests; copy SQLite -> PostgreSQL ->
    SQLite the same."""
    tmp = tmp_path_factory.mktemp("round")
    first = _sqlite(tmp, "first.db")
    migrate(settings_for(tmp, first), "head")
    with sa.create_engine(sqlalchemy_url(first)).begin() as connection:
        insert_instance(connection, rows)
    _derive(first, tmp)
    before = figures(first)
    one = export(settings_for(tmp, first), tmp / "one.annota").path
    pg_url, drop = pg_database(postgres_server_url)
    pg_copy, drop_copy = pg_database(postgres_server_url)
    try:
        imported = import_archive(settings_for(tmp, pg_url), one, reindex=False)
        assert figures(pg_url) == before
        # the archive vouched for its derived data: the backfills find nothing to change
        assert sorted(imported.derived_current) == sorted(before.datasets)
        _derive(pg_url, tmp)
        assert figures(pg_url) == before
        two = export(settings_for(tmp, pg_url), tmp / "two.annota").path
        assert _digests(two) == _digests(one) == before
        last = _sqlite(tmp, "last.db")
        import_archive(settings_for(tmp, last), two, reindex=False)
        assert figures(last) == before
        assert _digests(export(settings_for(tmp, last), tmp / "three.annota").path
                        ) == _digests(one)
        # copy: SQLite -> PostgreSQL -> SQLite
        result = copy(settings_for(tmp, first), DatabaseURL.parse(pg_copy),
                      confirm=lambda *_: True)
        assert result.comparison.equal and not result.already
        # the copy's derived data is vouched for, as the source's was
        assert _manifest(export(settings_for(tmp, pg_copy), tmp / "four.annota").path
                         )["derived_current"] == sorted(before.datasets)
        back = _sqlite(tmp, "back.db")
        copy(settings_for(tmp, pg_copy), DatabaseURL.parse(back), confirm=lambda *_: True)
        assert figures(pg_copy) == before and figures(back) == before
        # the rows themselves, not only their digests
        original = _rows(first)
        for other in (_rows(last), _rows(back)):
            for table, found in original.items():
                assert other[table] == found, table
    finally:
        drop()
        drop_copy()


def _rows(url: str) -> dict:
    """Every data row, JSON documents parsed with exact decimals (so ``1e-07`` equals
    PostgreSQL's ``0.0000001``, and a key order is no difference)."""
    engine = sa.create_engine(sqlalchemy_url(url))
    found: dict = {}
    with engine.connect() as connection:
        for spec in reflect(connection):
            found[spec.name] = {}
            for _dataset, row in read_rows(connection, spec, Scope()):
                values = [_exact(v) if k == "json" else v
                          for k, v in zip(spec.kinds, row, strict=True)]
                found[spec.name][str(row[spec.index("id")])] = values
    engine.dispose()
    return found


def _exact(value):  # noqa: ANN001, ANN202
    if value is None:
        return None
    if not isinstance(value, str):  # SQLite hands a bare number back as one
        value = repr(value)
    return json.loads(value, parse_float=Decimal, parse_int=Decimal)


RELEASES = [tag.release for tag in history().tags]


@pytest.mark.parametrize("release", RELEASES)
def test_every_release_archive_imports_as_the_source_upgrades(
        tmp_path, postgres_url, release):
    """Data seeded at a release, exported, imported into a fresh SQLite and a fresh
    PostgreSQL database, equals the source database upgraded to head."""
    source = _sqlite(tmp_path, "source.db")
    migrate(settings_for(tmp_path, source), release)
    with sa.create_engine(sqlalchemy_url(source)).begin() as connection:
        seed_release(connection, release, records=6)
    archive = export(settings_for(tmp_path, source), tmp_path / "old.annota").path
    assert _manifest(archive)["release"] == release
    upgrade(settings_for(tmp_path, source), parts=("schema", "async", "backfills"))
    expected = figures(source)
    assert expected.tables["records"].rows == 6
    upgraded = export(settings_for(tmp_path, source), tmp_path / "upgraded.annota").path
    for target in (_sqlite(tmp_path, "fresh.db"), postgres_url):
        result = import_archive(settings_for(tmp_path, target), archive, reindex=False)
        assert result.staged == (release != history().tags[-1].release)
        assert figures(target) == expected, target
        verify(settings_for(tmp_path, target), upgraded)  # equal: no error
        if result.staged:  # staged to head the same way, so the old archive verifies too
            verify(settings_for(tmp_path, target), archive)


# --- bad archives -----------------------------------------------------------------------

def _good_archive(tmp_path: Path) -> Path:
    url = _sqlite(tmp_path / "src", "annota.db")
    migrate(settings_for(tmp_path, url), "head")
    with sa.create_engine(sqlalchemy_url(url)).begin() as connection:
        seed_release(connection, "9.9", records=5)
    return export(settings_for(tmp_path, url), tmp_path / "good.annota").path


def _rewrite(path: Path, out: Path, change) -> Path:  # noqa: ANN001
    with zipfile.ZipFile(path) as z:
        members = [(i.filename, z.read(i.filename)) for i in z.infolist()]
        comment = z.comment
    members, comment = change(members, comment)
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as z:
        for name, data in members:
            z.writestr(name, data)
        z.comment = comment
    return out


def _resealed(members, manifest: dict):  # noqa: ANN001, ANN202
    import hashlib

    text = json.dumps(manifest).encode()
    return ([(n, text if n == "manifest.json" else d) for n, d in members],
            b"annota-archive manifest-sha256=" + hashlib.sha256(text).hexdigest().encode())


def _bad_archives(tmp_path: Path, good: Path) -> dict[str, tuple[Path, int]]:
    data = good.read_bytes()
    bad: dict[str, tuple[Path, int]] = {}

    def put(name: str, content: bytes, code: int) -> None:
        path = tmp_path / f"{name}.annota"
        path.write_bytes(content)
        bad[name] = (path, code)

    put("empty", b"", 17)
    put("truncated", data[: len(data) // 2], 17)
    put("text", b"users,workspaces\n1,2\n", 17)
    foreign = io.BytesIO()
    with zipfile.ZipFile(foreign, "w") as z:
        z.writestr("manifest.json", json.dumps({"format": "something-else"}))
    put("foreign-zip", foreign.getvalue(), 17)
    tar = io.BytesIO()
    with tarfile.open(fileobj=tar, mode="w") as t:
        t.add(good, arcname="good.annota")
    put("tar", tar.getvalue(), 17)

    def flip_member(members, comment):  # noqa: ANN001, ANN202
        out = []
        for name, content in members:
            if name.endswith("-records.jsonl"):
                content = content.replace(b"#1", b"#7", 1)
            out.append((name, content))
        return out, comment
    bad["flipped-byte"] = (_rewrite(good, tmp_path / "flipped.annota", flip_member), 17)

    def edit_manifest(members, comment):  # noqa: ANN001, ANN202
        return [(n, d.replace(b'"rows": 5', b'"rows": 4') if n == "manifest.json" else d)
                for n, d in members], comment
    bad["edited-manifest"] = (_rewrite(good, tmp_path / "edited.annota", edit_manifest), 17)

    def reorder(members, comment):  # noqa: ANN001, ANN202
        return [members[1], members[0], *members[2:]], comment
    bad["out-of-order"] = (_rewrite(good, tmp_path / "order.annota", reorder), 17)

    def newer_revision(members, comment):  # noqa: ANN001, ANN202
        manifest = json.loads(dict(members)["manifest.json"])
        manifest.update(revision="ffffffffffff", release="99.0", annota_version="99.0.0")
        return _resealed(members, manifest)
    bad["newer-release"] = (_rewrite(good, tmp_path / "newer.annota", newer_revision), 18)

    def newer_format(members, comment):  # noqa: ANN001, ANN202
        manifest = json.loads(dict(members)["manifest.json"])
        manifest["format_version"] = 2
        return _resealed(members, manifest)
    bad["newer-format"] = (_rewrite(good, tmp_path / "format.annota", newer_format), 18)

    def resealed_count(members, comment):  # noqa: ANN001, ANN202
        manifest = json.loads(dict(members)["manifest.json"])
        for table in manifest["tables"]:
            if table["name"] == "records":
                table["rows"] -= 1
        return _resealed(members, manifest)
    bad["resealed-count"] = (_rewrite(good, tmp_path / "count.annota", resealed_count), 17)
    return bad


@pytest.mark.parametrize("target", ["empty", "with-data"])
def test_bad_archives_are_refused_and_change_nothing(tmp_path, database_url, target):
    good = _good_archive(tmp_path)
    annota = Annota(make_env(tmp_path, database_url))
    if target == "with-data":
        assert annota.run("server", "database", "migrate").returncode == 0
        with sa.create_engine(sqlalchemy_url(database_url)).begin() as connection:
            seed_release(connection, "7.7", records=3)
    engine = sa.create_engine(sqlalchemy_url(database_url))

    def state() -> dict:
        with engine.connect() as connection:
            return snapshot(connection)

    before = state()
    for name, (path, code) in _bad_archives(tmp_path, good).items():
        for command in (("import", str(path)), ("verify", str(path))):
            done = annota.run("server", "database", *command)
            assert done.returncode == code, (name, command, done.stderr)
            lines = done.stderr.strip().splitlines()
            assert len(lines) == 1 and lines[0].startswith("Error: "), (name, done.stderr)
            assert "Traceback" not in done.stderr
            assert state() == before, name
    engine.dispose()
    # and the good one still imports
    done = annota.run("server", "database", "import", str(good), "--no-reindex")
    assert done.returncode == 0, done.stderr


@settings(max_examples=300, deadline=None)
@given(value=st.recursive(
    st.none() | st.booleans() | st.floats(allow_nan=False, allow_infinity=False)
    | st.integers(-(10 ** 30), 10 ** 30) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=4), inner,
                                                                  max_size=4),
    max_leaves=10))
def test_canonical_json_is_one_form_of_a_value(value):
    """What Python writes and what PostgreSQL's jsonb gives back (keys reordered, floats
    as plain decimals) are one canonical form; a changed number is another."""
    from annota.server.archive.values import canonical_json

    def pg(v):  # noqa: ANN001, ANN202 - jsonb's rewrite, done by hand
        if isinstance(v, float):
            return Decimal(repr(v))
        if isinstance(v, dict):
            return {k: pg(v[k]) for k in sorted(v, key=lambda k: (len(k), k), reverse=True)}
        if isinstance(v, list):
            return [pg(x) for x in v]
        return v

    class _Encoder(json.JSONEncoder):
        def iterencode(self, o, _one_shot=False):  # noqa: ANN001, ANN202
            if isinstance(o, Decimal):
                yield format(o, "f")
                return
            if isinstance(o, dict):
                yield "{" + ", ".join(json.dumps(k) + ": " + "".join(self.iterencode(x))
                                      for k, x in o.items()) + "}"
                return
            if isinstance(o, list):
                yield "[" + ", ".join("".join(self.iterencode(x)) for x in o) + "]"
                return
            yield json.dumps(o)

    python_text = json.dumps(value)
    pg_text = "".join(_Encoder().iterencode(pg(value)))
    assert canonical_json(python_text) == canonical_json(pg_text), (python_text, pg_text)
    if isinstance(value, int) and not isinstance(value, bool):
        assert canonical_json(json.dumps(value + 1)) != canonical_json(python_text)
