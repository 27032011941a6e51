"""Importing into a database with data: conflicts decided before anything is written,
skip, replace, another workspace, no duplicates; and the backup an upgrade writes."""

from __future__ import annotations

import json
import os
import time

import sqlalchemy as sa

from tests.archive_tools import figures
from tests.conftest import Annota, make_env, sqlalchemy_url
from tests.schema_tools import snapshot
from tests.upgrade_tools import seed_release


def _seeded(tmp_path, name: str, url: str, *releases: str) -> Annota:  # noqa: ANN001
    annota = Annota(make_env(tmp_path / name, url))
    assert annota.run("server", "database", "migrate").returncode == 0
    with sa.create_engine(sqlalchemy_url(url)).begin() as connection:
        for release in releases:
            seed_release(connection, release, records=5)
    return annota


def _state(url: str) -> dict:
    engine = sa.create_engine(sqlalchemy_url(url))
    with engine.connect() as connection:
        found = snapshot(connection)
    engine.dispose()
    return found


def _count(url: str, table: str) -> int:
    engine = sa.create_engine(sqlalchemy_url(url))
    with engine.connect() as connection:
        n = connection.execute(sa.text(f"SELECT count(*) FROM {table}")).scalar_one()
    engine.dispose()
    return n


def test_merge_conflicts_skip_replace_and_no_duplicates(tmp_path, database_url):
    source_url = f"sqlite:///{tmp_path / 'source.db'}"
    source = _seeded(tmp_path, "source", source_url, "x", "y")
    archive = tmp_path / "two.annota"
    assert source.run("server", "database", "export", "-o", str(archive)).returncode == 0
    target = _seeded(tmp_path, "target", database_url, "x", "z")  # "x" exists on both,
    with sa.create_engine(sqlalchemy_url(database_url)).begin() as connection:
        connection.execute(sa.text(  # and differs
            "UPDATE records SET external_id = 'changed' WHERE external_id = 'x-0'"))

    before = _state(database_url)
    failed = target.run("server", "database", "import", str(archive), "--no-reindex")
    assert failed.returncode == 19, failed.stderr
    assert "ds-x" in failed.stderr and "Nothing was written" in failed.stderr
    assert _state(database_url) == before

    dry = target.run("server", "database", "import", str(archive), "--on-conflict", "skip",
                     "--dry-run", "--json")
    assert dry.returncode == 0, dry.stderr
    actions = {d["name"]: d["action"] for d in json.loads(dry.stdout)["datasets"]}
    assert actions == {"ds-x": "skip", "ds-y": "import"}
    assert _state(database_url) == before

    skipped = target.run("server", "database", "import", str(archive), "--on-conflict",
                         "skip", "--no-reindex")
    assert skipped.returncode == 0, skipped.stderr
    assert _count(database_url, "datasets") == 3 and _count(database_url, "records") == 15
    again = target.run("server", "database", "import", str(archive), "--on-conflict",
                       "skip", "--no-reindex", "--json")
    assert again.returncode == 0, again.stderr
    actions = {d["name"]: d["action"] for d in json.loads(again.stdout)["datasets"]}
    assert actions == {"ds-x": "skip", "ds-y": "unchanged"}
    assert _count(database_url, "records") == 15  # never a duplicate

    refused = target.run("server", "database", "import", str(archive), "--on-conflict",
                         "replace", "--no-reindex")
    assert refused.returncode == 7, refused.stderr
    assert _count(database_url, "records") == 15
    replaced = target.run("server", "database", "import", str(archive), "--on-conflict",
                          "replace", "--yes", "--no-reindex")
    assert replaced.returncode == 0, replaced.stderr
    # the target's ds-x is the source's now: the same data (its derived values, stale in
    # the seeded source, were recomputed on import)
    ours, theirs = figures(database_url, primary=True), figures(source_url, primary=True)
    for dataset, digest in theirs.datasets.items():
        assert ours.datasets[dataset] == digest, dataset
    assert _count(database_url, "datasets") == 3


def test_import_into_another_workspace(tmp_path, database_url):
    source_url = f"sqlite:///{tmp_path / 'source.db'}"
    source = _seeded(tmp_path, "source", source_url, "w")
    archive = tmp_path / "one.annota"
    assert source.run("server", "database", "export", "--workspace", "ws-w",
                      "-o", str(archive)).returncode == 0
    target = _seeded(tmp_path, "target", database_url)
    done = target.run("server", "database", "import", str(archive), "--workspace", "team b",
                      "--no-reindex", "--json")
    assert done.returncode == 0, done.stderr
    engine = sa.create_engine(sqlalchemy_url(database_url))
    with engine.connect() as connection:
        rows = connection.execute(sa.text(
            "SELECT w.name, count(r.id) FROM workspaces w JOIN datasets d "
            "ON d.workspace_id = w.id JOIN records r ON r.dataset_id = d.id "
            "GROUP BY w.name")).all()
        users = connection.execute(sa.text("SELECT username, api_key FROM users")).all()
    engine.dispose()
    assert rows == [("team b", 5)]
    # users named by responses came without credentials: new random ones, not the source's
    assert {u for u, _ in users} == {"a0-w", "a1-w"}
    assert all(key.startswith("sha256:") and "key-w" not in key for _, key in users)


def test_upgrade_writes_a_backup_keeps_the_newest_and_names_it_on_failure(tmp_path):
    url = f"sqlite:///{tmp_path / 'old.db'}"
    env = make_env(tmp_path, url)
    annota = Annota({**env, "ANNOTA_BACKUP_KEEP": "2"})
    backups = tmp_path / "home" / "backups"
    for n, release in enumerate(["1.0", "1.2", "1.4"]):
        assert annota.run("server", "database", "migrate", "--revision", release,
                          "--yes").returncode == 0
        if n == 0:
            with sa.create_engine(sqlalchemy_url(url)).begin() as connection:
                seed_release(connection, "1.0", records=5)
        time.sleep(0.01)
        up = annota.run("server", "upgrade", "--to", ["1.1", "1.3", "1.5"][n], "--yes")
        assert up.returncode == 0, up.stderr
        assert "Backup before the schema step" in up.stdout
        assert "annota server database import" in up.stdout
    kept = sorted(backups.glob("*.annota"), key=os.path.getmtime)
    assert len(kept) == 2 and "annota-1.4-" in kept[-1].name

    skipped = annota.run("server", "upgrade", "--to", "1.6", "--no-backup")
    assert skipped.returncode == 0 and "Backup" not in skipped.stdout
    assert len(list(backups.glob("*.annota"))) == 2

    # a failing revision: a table of another application where 1.7 creates nothing of its
    # own... so make the next revision's work collide instead
    with sa.create_engine(sqlalchemy_url(url)).begin() as connection:
        connection.exec_driver_sql("CREATE TABLE index_changes (x INTEGER)")
    failed = annota.run("server", "upgrade", "--exclude", "search")
    assert failed.returncode != 0
    line = failed.stderr.strip().splitlines()[-1]
    assert "backup taken before this upgrade is" in line and str(backups) in line
    newest = max(backups.glob("*.annota"), key=os.path.getmtime)
    assert newest.name in line
    # and it restores into an empty database
    fresh = Annota(make_env(tmp_path / "fresh", f"sqlite:///{tmp_path / 'fresh.db'}"))
    restored = fresh.run("server", "database", "import", str(newest), "--no-reindex")
    assert restored.returncode == 0, restored.stderr
    assert _count(f"sqlite:///{tmp_path / 'fresh.db'}", "records") == 5


def test_edges_are_one_line_with_their_codes_and_secrets_masked(tmp_path, postgres_url):
    url = f"sqlite:///{tmp_path / 'empty.db'}"
    annota = Annota(make_env(tmp_path, url))
    empty = annota.run("server", "database", "export", "-o", str(tmp_path / "x.annota"))
    assert empty.returncode == 3 and empty.stderr.count("\n") == 1, empty.stderr
    assert not (tmp_path / "x.annota").exists()
    missing = annota.run("server", "database", "import", str(tmp_path / "nope.annota"))
    assert missing.returncode == 17 and missing.stderr.count("\n") == 1, missing.stderr
    _seeded(tmp_path, "seeded", url, "q")
    secret = "s3cret-Pass-word"
    wrong = postgres_url.replace("annota-test-secret", secret)
    refused = annota.run("server", "database", "copy", "--to", wrong, "--yes")
    assert refused.returncode == 5, refused.stderr
    assert secret not in refused.stderr + refused.stdout and "***" in refused.stderr
    same = annota.run("server", "database", "copy", "--to", url, "--yes")
    assert same.returncode == 2 and same.stderr.count("\n") == 1, same.stderr
    # a target with other data is refused, and left as it was
    other = _seeded(tmp_path, "other", postgres_url, "r")
    assert other is not None
    before = _state(postgres_url)
    busy = annota.run("server", "database", "copy", "--to", postgres_url, "--yes")
    assert busy.returncode == 20, busy.stderr
    assert _state(postgres_url) == before
