"""``annota server upgrade``'s preflight against real faults: a PostgreSQL lock held by
another session, SQLite's write lock held by another process, a full disk (a tmpfs),
a search engine of the wrong product, an index made read-only, a disk watermark crossed,
Redis down. Each stops the upgrade with its check named and its kind's exit code, and the
database is as it was; once the fault is gone (or the check skipped) the upgrade goes on."""

from __future__ import annotations

import json
import os
import shutil
import socket
import sqlite3
import subprocess
import time
from pathlib import Path

import pytest
import sqlalchemy as sa

from annota.config import Settings
from annota.search import connect
from annota.server.db.health import IDLE_SECONDS
from annota.server.schema import migrate as migrations
from tests.conftest import Annota, _drop_indices, engine_env, make_env, service_missing
from tests.search_tools import create_dataset
from tests.test_upgrade import NO_SEARCH, read, seed_at
from tests.upgrade_tools import end_state

DISK = "cluster.routing.allocation.disk."


def _failed(result: subprocess.CompletedProcess, code: int, check: str) -> str:
    """The run's one-line error, after checking its exit code and the check it names."""
    assert result.returncode == code, (result.stdout, result.stderr)
    errors = [line for line in result.stderr.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1 and check in errors[0], result.stderr
    assert "nothing was changed" in errors[0]
    assert "Traceback" not in result.stderr
    return errors[0]


def _at_1_0(env: dict[str, str]) -> tuple[Annota, Settings, dict]:
    settings = Settings.from_env(env)
    seed_at(settings, "1.0")
    return Annota(env), settings, read(settings, end_state)


def test_a_postgresql_lock_held_by_another_session_stops_the_upgrade(tmp_path, postgres_url):
    annota, settings, before = _at_1_0(make_env(tmp_path, postgres_url))
    holder = sa.create_engine(settings.database_url.sqlalchemy_url)
    with holder.connect() as other:
        other.execute(sa.text("LOCK TABLE records IN ACCESS SHARE MODE"))  # and stay idle
        pid = other.execute(sa.text("SELECT pg_backend_pid()")).scalar_one()
        time.sleep(IDLE_SECONDS + 0.5)
        error = _failed(annota.run("server", "upgrade", "--yes", *NO_SEARCH), 22,
                        "database-locks")
        assert f"pid {pid}" in error and "AccessShareLock on records" in error
        assert read(settings, end_state) == before
        # skipped, a dry run goes on (and still changes nothing)
        skipped = annota.run("server", "upgrade", "--dry-run", *NO_SEARCH,
                             "--skip-preflight", "database-locks")
        assert skipped.returncode == 0, skipped.stderr
        assert "skipped     database-locks" in skipped.stdout
        other.rollback()
    holder.dispose()
    done = annota.run("server", "upgrade", "--yes", *NO_SEARCH)
    assert done.returncode == 0, done.stderr
    assert "ok          database-locks" in done.stdout
    assert read(settings, end_state)["revision"] == migrations.status(settings).head


def test_sqlites_write_lock_held_by_another_process_stops_the_upgrade(tmp_path, sqlite_url):
    annota, settings, before = _at_1_0(make_env(tmp_path, sqlite_url))
    other = sqlite3.connect(settings.database_url.sqlite_path, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    try:
        _failed(annota.run("server", "upgrade", "--yes", *NO_SEARCH), 22, "database-locks")
    finally:
        other.execute("ROLLBACK")
        other.close()
    assert read(settings, end_state) == before


def test_a_full_disk_stops_the_upgrade_before_its_backup(tmp_path, sqlite_url):
    mount = tmp_path / "small disk"
    mount.mkdir()
    made = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(mount)],
                          capture_output=True, text=True)
    if made.returncode:
        service_missing(f"cannot mount a tmpfs here: {made.stderr.strip()}")
    try:
        env = make_env(tmp_path, f"sqlite:///{mount / 'annota.db'}")
        annota, settings, before = _at_1_0(env)
        ballast = mount / "ballast"
        free = shutil.disk_usage(mount).free
        ballast.write_bytes(b"\0" * (free - 64 * 1024))  # 64 KiB left
        error = _failed(annota.run("server", "upgrade", "--yes", *NO_SEARCH,
                                   "--backup-to", str(mount / "backups")), 22, "database-disk")
        assert "MiB free, needs" in error
        assert read(settings, end_state) == before
        assert not (mount / "backups").exists()  # the backup was not started either
        ballast.unlink()
        dry = annota.run("server", "upgrade", "--dry-run", *NO_SEARCH, "--no-backup")
        assert dry.returncode == 0 and "ok          database-disk" in dry.stdout, dry.stderr
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=True)


@pytest.mark.parametrize("configured,actual", [("opensearch", "ANNOTA_TEST_ELASTICSEARCH_URL"),
                                               ("elasticsearch", "ANNOTA_TEST_OPENSEARCH_URL")])
def test_an_engine_of_the_wrong_product_stops_the_upgrade(tmp_path, sqlite_url, configured,
                                                          actual):
    url = os.environ.get(actual) or service_missing(f"no engine: set {actual}")
    annota, settings, before = _at_1_0(engine_env(tmp_path, sqlite_url, url, configured))
    error = _failed(annota.run("server", "upgrade", "--yes"), 23, "search-engine")
    other = "OpenSearch" if configured == "opensearch" else "Elasticsearch"
    assert f"is not {other}" in error
    assert read(settings, end_state) == before


@pytest.fixture
def indexed(tmp_path, sqlite_url, elasticsearch_url):
    """A database at head with a dataset indexed on Elasticsearch 8."""
    env = engine_env(tmp_path, sqlite_url, elasticsearch_url)
    settings = Settings.from_env(env)
    migrations.migrate(settings, "head")
    create_dataset(settings, 30)
    annota = Annota(env)
    assert annota.run("server", "search-engine", "reindex").returncode == 0
    yield annota, settings
    _drop_indices(env)


def test_a_read_only_index_stops_the_upgrade(indexed):
    annota, settings = indexed
    engine = connect(settings.search)
    (index,) = engine.indices(f"{settings.search.index_prefix}.records.*")
    before = read(settings, end_state)
    engine.client.indices.put_settings(index=index, settings={
        "index.blocks.read_only_allow_delete": True})
    try:
        error = _failed(annota.run("server", "upgrade", "--yes"), 23, "search-read-only")
        assert index in error
        assert read(settings, end_state) == before
        dry = annota.run("server", "upgrade", "--dry-run", "--json",
                         "--skip-preflight", "search-read-only")
        assert dry.returncode == 0, dry.stderr
        checks = {c["name"]: c["status"] for c in json.loads(dry.stdout)["preflight"]}
        assert checks["search-read-only"] == "skipped" and checks["search-health"] == "ok"
    finally:
        engine.client.indices.put_settings(index=index, settings={
            "index.blocks.read_only_allow_delete": None})
    assert annota.run("server", "upgrade", "--dry-run").returncode == 0


def test_a_crossed_disk_watermark_stops_the_upgrade(tmp_path, sqlite_url, elasticsearch_url):
    annota, settings, before = _at_1_0(engine_env(tmp_path, sqlite_url, elasticsearch_url))
    engine = connect(settings.search)
    low = {DISK + "threshold_enabled": True, DISK + "watermark.low": "1%",
           DISK + "watermark.high": "1%"}
    engine.client.cluster.put_settings(persistent=low)
    try:
        error = _failed(annota.run("server", "upgrade", "--yes"), 23, "search-disk")
        assert "past the high watermark (1%)" in error
        assert read(settings, end_state) == before
    finally:
        engine.client.cluster.put_settings(persistent=dict.fromkeys(low))


def test_redis_down_stops_the_upgrade(tmp_path, sqlite_url):
    server = shutil.which("redis-server") or service_missing("no redis-server")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    redis = subprocess.Popen([server, "--port", str(port), "--save", "", "--appendonly",
                              "no", "--requirepass", "p@ss"], stdout=subprocess.DEVNULL)
    env = {**make_env(tmp_path, sqlite_url), "ANNOTA_REDIS_URL": f"redis://:p%40ss@127.0.0.1:"
           f"{port}/0"}
    annota, settings, before = _at_1_0(env)
    try:
        deadline = time.monotonic() + 10
        while "ok          redis" not in (up := annota.run(
                "server", "upgrade", "--dry-run", *NO_SEARCH)).stdout:
            assert time.monotonic() < deadline, up.stdout + up.stderr
            time.sleep(0.2)
        assert "warning     workers" in up.stdout  # no worker listens: said, not fatal
    finally:
        redis.kill()
        redis.wait()
    error = _failed(annota.run("server", "upgrade", "--yes", *NO_SEARCH), 24, "redis")
    assert "p@ss" not in error and "p%40ss" not in error
    assert read(settings, end_state) == before


def test_an_unknown_check_name_is_refused(tmp_path, sqlite_url):
    annota = Annota(make_env(tmp_path, sqlite_url))
    result = annota.run("server", "upgrade", "--dry-run", "--skip-preflight", "disk")
    assert result.returncode == 2 and "unknown preflight check disk" in result.stderr
    assert not Path(tmp_path / "annota.db").exists()


def test_every_check_is_reported_in_json_on_postgresql(tmp_path, postgres_url):
    annota, _, _ = _at_1_0(make_env(tmp_path, postgres_url))
    result = annota.run("server", "upgrade", "--dry-run", "--json", *NO_SEARCH)
    assert result.returncode == 0, result.stderr
    checks = json.loads(result.stdout)["preflight"]
    assert [c["name"] for c in checks] == ["database-version", "database-disk",
                                           "database-locks"]
    assert checks[0]["detail"].startswith("PostgreSQL ") and checks[0]["status"] == "ok"
    assert all(c["status"] == "ok" for c in checks), checks
