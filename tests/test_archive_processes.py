"""The archive commands as processes: killed at any moment, raced by writers, and a user
moved to PostgreSQL who logs in with the same API key."""

from __future__ import annotations

import json
import signal
import threading
import time
import zipfile
from collections import Counter
from pathlib import Path

import pytest
import sqlalchemy as sa

from annota.server.schema.migrate import migrate
from tests.api_tools import OWNER_KEY, live_api
from tests.archive_tools import figures, settings_for
from tests.conftest import Annota, make_env, sqlalchemy_url
from tests.server_tools import annota_server, free_port, stop, wait_until_answering
from tests.test_archive import _derive, _sqlite
from tests.upgrade_tools import seed_release

DELAYS = (0.5, 1.5, 3.0)


@pytest.fixture(scope="module")
def big_source(tmp_path_factory) -> tuple[str, Path]:
    """A SQLite database at head, consistent, with 2 datasets of 3,000 records."""
    tmp = tmp_path_factory.mktemp("big")
    url = _sqlite(tmp, "source.db")
    migrate(settings_for(tmp, url), "head")
    with sa.create_engine(sqlalchemy_url(url)).begin() as connection:
        for name in ("a", "b"):
            seed_release(connection, name, records=3000)
    _derive(url, tmp)
    return url, tmp


def _records(url: str) -> int:
    engine = sa.create_engine(sqlalchemy_url(url))
    try:
        with engine.connect() as connection:
            names = sa.inspect(connection).get_table_names()
            if "records" not in names:
                return 0
            return connection.execute(sa.text("SELECT count(*) FROM records")).scalar_one()
    finally:
        engine.dispose()


@pytest.mark.parametrize("command", ["import", "copy"])
def test_kill_9_then_rerun(tmp_path, big_source, postgres_server_url, command):
    """SIGKILL at several moments: the target holds nothing or everything, a run that
    said it was done holds everything, and a rerun ends at the same state as an unbroken run."""
    from tests.api_tools import pg_database

    source, home = big_source
    expected = figures(source)
    archive = tmp_path / "source.annota"
    exporting = Annota(make_env(tmp_path, source))
    assert exporting.run("server", "database", "export", "-o", str(archive)).returncode == 0
    outcomes = Counter()
    for delay in DELAYS:
        target, drop = pg_database(postgres_server_url)
        try:
            if command == "import":
                annota = Annota(make_env(tmp_path, target))
                args = ("server", "database", "import", str(archive), "--no-reindex")
            else:
                annota = exporting
                args = ("server", "database", "copy", "--to", target, "--yes")
            process = annota.popen(*args)
            time.sleep(delay)
            process.send_signal(signal.SIGKILL)
            output = process.communicate()[0]
            records = _records(target)
            if process.returncode == -signal.SIGKILL:
                whole = expected.tables["records"].rows
                if "Imported" in output or "verified" in output:
                    # killed while tidying up after its last line: it said so only
                    # once everything was committed
                    assert records == whole, (delay, records)
                else:
                    assert records in (0, whole), (delay, records)
                outcomes["empty" if records == 0 else "whole"] += 1
            else:
                outcomes["finished"] += 1
            rerun = annota.run(*args)
            assert rerun.returncode == 0, (delay, rerun.stderr)
            assert figures(target) == expected, delay
        finally:
            drop()
    assert outcomes["empty"] >= 1, outcomes  # a kill did land mid-run


def test_export_while_clients_import_is_one_instant(tmp_path, database_url,
                                                    elasticsearch_url):
    """Batches imported through the API during exports: each archive holds every batch
    wholly or not at all, and the batches it holds are the first ones (one instant)."""
    batch, batches = 40, 60
    with live_api(tmp_path, database_url, elasticsearch_url) as api:
        annota = Annota(api.env)
        done: list[int] = []

        def client() -> None:
            for k in range(batches):
                made = api.call("POST", f"/datasets/{api.dataset_id}/records", json={
                    "records": [api.record(10_000 + k * batch + i,
                                           external_id=f"b{k}-{i}") for i in range(batch)]})
                assert made.status_code == 201, made.text
                done.append(k)

        writer = threading.Thread(target=client)
        writer.start()
        archives = []
        while writer.is_alive() or not archives:
            path = tmp_path / f"during-{len(archives)}.annota"
            exported = annota.run("server", "database", "export", "-o", str(path))
            assert exported.returncode == 0, exported.stderr
            archives.append(path)
        writer.join()
        assert len(done) == batches
    partial = 0
    for path in archives:
        with zipfile.ZipFile(path) as z:
            member = next(n for n in z.namelist() if n.endswith("-records.jsonl"))
            manifest = json.loads(z.read("manifest.json"))
            columns = next(t["columns"] for t in manifest["tables"] if t["name"] == "records")
            ids = [json.loads(line)[columns.index("external_id")]
                   for line in z.read(member).splitlines()]
        per_batch = Counter(e.split("-")[0] for e in ids if e and e.startswith("b"))
        assert set(per_batch.values()) <= {batch}, per_batch  # whole batches only
        present = sorted(int(k[1:]) for k in per_batch)
        assert present == list(range(len(present)))  # the first ones: one instant
        partial += 0 < len(present) < batches
    assert partial >= 1, "no export ran while the client imported"


def test_a_user_moved_to_postgresql_keeps_its_api_key(tmp_path, postgres_url):
    sqlite = Annota(make_env(tmp_path / "a", f"sqlite:///{tmp_path / 'a.db'}"))
    assert sqlite.run("server", "database", "migrate").returncode == 0
    made = sqlite.run("server", "database", "users", "create", "--username", "olivia",
                      "--role", "owner", "--password-stdin", "--workspace", "team",
                      ANNOTA_NEW_USER_API_KEY=OWNER_KEY, input_text="Corr3ct-Horse-Battery")
    assert made.returncode == 0, made.stderr
    copied = sqlite.run("server", "database", "copy", "--to", postgres_url, "--yes")
    assert copied.returncode == 0, copied.stderr
    env = make_env(tmp_path / "b", postgres_url)
    port = free_port()
    server = annota_server(env, port, tmp_path / "server.log")
    try:
        wait_until_answering(port, server)
        import httpx

        base = f"http://127.0.0.1:{port}/api/v1"
        ok = httpx.get(f"{base}/workspaces", headers={"X-Annota-Api-Key": OWNER_KEY})
        assert ok.status_code == 200 and ok.json()[0]["name"] == "team"
        wrong = httpx.get(f"{base}/workspaces", headers={"X-Annota-Api-Key": "nope" * 8})
        assert wrong.status_code == 401
    finally:
        stop(server)


SEARCHES = [{"text": "banana"}, {"text": "apple pie"}, {"terms": {"source": ["mail"]}},
            {"ranges": {"length": {"gte": 3, "lt": 20}}},
            {"text": "bread", "terms": {"source": ["web", "mail"]}}, {}]


def test_a_moved_dataset_answers_the_same_searches(tmp_path, postgres_url,
                                                   elasticsearch_url):
    """A dataset exported from a server on SQLite and imported into another on
    PostgreSQL (another index prefix) gives the same hits for the same searches."""
    from tests.conftest import engine_env

    words = ["banana", "apple pie", "bread", "ripe banana bread", "apple"]
    (tmp_path / "a").mkdir()
    with live_api(tmp_path / "a", f"sqlite:///{tmp_path / 'a.db'}", elasticsearch_url) as a:
        made = a.call("POST", f"/datasets/{a.dataset_id}/records", json={"records": [
            a.record(100 + i, fields={"text": f"{words[i % 5]} number {i}"},
                     metadata={"source": ["web", "mail"][i % 2], "length": i, "score": i / 3},
                     external_id=f"m-{i}") for i in range(40)]})
        assert made.status_code == 201, made.text
        before = {json.dumps(q): _hits(a, a.dataset_id, q) for q in SEARCHES}
        assert any(before.values()) and len(set(map(tuple, before.values()))) > 2
        archive = tmp_path / "dataset.annota"
        exported = Annota(a.env).run("server", "database", "export", "--dataset-id",
                                     a.dataset_id, "-o", str(archive))
        assert exported.returncode == 0, exported.stderr

    env = engine_env(tmp_path / "b", postgres_url, elasticsearch_url)
    b = Annota(env)
    assert b.run("server", "database", "migrate").returncode == 0
    key = "bob-key-" + "b" * 24
    assert b.run("server", "database", "users", "create", "--username", "bob", "--role",
                 "owner", "--password-stdin", ANNOTA_NEW_USER_API_KEY=key,
                 input_text="Corr3ct-Horse-Battery").returncode == 0
    imported = b.run("server", "database", "import", str(archive), "--reindex", "--json")
    assert imported.returncode == 0, imported.stderr
    assert json.loads(imported.stdout)["reindexed"] == [a.dataset_id]
    port = free_port()
    server = annota_server(env, port, tmp_path / "b.log")
    try:
        wait_until_answering(port, server)
        import httpx

        from tests.api_tools import LiveAPI

        other = LiveAPI(f"http://127.0.0.1:{port}/api/v1", env)
        other.client.headers["X-Annota-Api-Key"] = key
        after = {json.dumps(q): _hits(other, a.dataset_id, q, key) for q in SEARCHES}
        assert after == before
        assert httpx  # the client the API tools use
    finally:
        stop(server)
        from tests.api_tools import _drop

        _drop(env)


def _hits(api, dataset_id: str, query: dict, key: str | None = None) -> list[str]:  # noqa: ANN001
    headers = {"X-Annota-Api-Key": key} if key else {}
    found = api.call("POST", f"/datasets/{dataset_id}/records/search",
                     json={**query, "limit": 100}, headers=headers)
    assert found.status_code == 200, found.text
    return sorted(h["id"] for h in found.json()["items"])
