"""The HTTP API as a real server process on loopback, on SQLite and PostgreSQL."""

from __future__ import annotations

import json
import time

import httpx
import pytest

from annota.config import Settings
from annota.server.schema import migrate as migrations
from tests.conftest import Annota, engine_env
from tests.server_tools import annota_server, free_port, stop, wait_until_answering

OWNER_KEY, ADMIN_KEY, ANNOTATOR_KEY = ("owner-key-" + "x" * 20, "admin-key-" + "y" * 20,
                                       "annotator-key-" + "z" * 16)
PASSWORD = "Corr3ct-Horse-Battery"


@pytest.fixture
def server_env(tmp_path, database_url, elasticsearch_url):
    env = engine_env(tmp_path, database_url, elasticsearch_url)
    yield env
    from tests.conftest import _drop_indices

    _drop_indices(env)


def create_users(annota: Annota) -> None:
    for name, role, key in (("olivia", "owner", OWNER_KEY), ("adam", "admin", ADMIN_KEY),
                            ("anna", "annotator", ANNOTATOR_KEY)):
        result = annota.run("server", "database", "users", "create", "--username", name,
                            "--role", role, "--password-stdin", "--workspace", "team",
                            ANNOTA_NEW_USER_API_KEY=key, input_text=PASSWORD)
        assert result.returncode == 0, result.stderr


def test_users_create_is_rerunnable_and_list_shows_no_secrets(sqlite_annota):
    assert sqlite_annota.run("server", "database", "migrate").returncode == 0
    first = sqlite_annota.run("server", "database", "users", "create", "--username", "ana",
                              "--role", "owner", "--password-stdin", input_text=PASSWORD)
    assert first.returncode == 0 and "Created owner 'ana'" in first.stdout
    key = first.stdout.split("shown once; annota keeps only its digest): ")[1].strip()
    again = sqlite_annota.run("server", "database", "users", "create", "--username", "ana",
                              "--role", "annotator", "--password-stdin", input_text=PASSWORD)
    assert again.returncode == 0 and "already exists (role owner)" in again.stdout
    listed = sqlite_annota.run("server", "database", "users", "list", "--json")
    (user,) = json.loads(listed.stdout)
    assert user["username"] == "ana" and user["role"] == "owner"
    assert key not in listed.stdout and PASSWORD not in listed.stdout
    short = sqlite_annota.run("server", "database", "users", "create", "--username", "bo",
                              "--password-stdin", input_text="short")
    assert short.returncode == 1 and "at least 8 characters" in short.stderr


def test_the_server_refuses_a_schema_that_is_not_at_head(server_env):
    annota = Annota(server_env)
    result = annota.run("server", "start", "--port", str(free_port()), timeout=60)
    assert result.returncode == 3
    assert "annota server database migrate" in result.stderr
    migrations.migrate(Settings.from_env(server_env), "1.7")
    behind = annota.run("server", "start", "--port", str(free_port()), timeout=60)
    assert behind.returncode == 3 and "behind" in behind.stderr


def test_the_api_end_to_end(server_env, tmp_path):
    annota = Annota(server_env)
    assert annota.run("server", "database", "migrate").returncode == 0
    create_users(annota)
    port = free_port()
    log = tmp_path / "server.log"
    server = annota_server(server_env, port, log)
    responses: list[httpx.Response] = []

    def call(method: str, path: str, key: str | None = OWNER_KEY, **kw) -> httpx.Response:
        headers = {"X-Annota-Api-Key": key} if key else {}
        response = httpx.request(method, f"http://127.0.0.1:{port}/api/v1{path}",
                                 headers=headers, timeout=30, **kw)
        responses.append(response)
        return response

    try:
        wait_until_answering(port, server)
        assert call("GET", "/ready", key=None).json()["ready"] is True
        info = call("GET", "/info").json()
        assert info["schema"]["state"] == "up_to_date"
        assert info["search_engine"]["kind"] == "elasticsearch"

        team = [w for w in call("GET", "/workspaces").json() if w["name"] == "team"][0]
        dataset = call("POST", "/datasets", json={
            "workspace_id": team["id"], "name": "reviews",
            "fields": [{"name": "text", "type": "text"}],
            "questions": [{"name": "sentiment", "type": "label_selection",
                           "options": ["pos", "neg"]}],
            "metadata_properties": [{"name": "source", "type": "terms"}],
        })
        assert dataset.status_code == 201, dataset.text
        dataset_id = dataset.json()["id"]
        anna = json.loads(annota.run("server", "database", "users", "list", "--json").stdout)
        anna_id = next(u["id"] for u in anna if u["username"] == "anna")
        records = [{"fields": {"text": text}, "metadata": {"source": source},
                    "responses": [{"user_id": anna_id, "status": "submitted",
                                   "values": {"sentiment": {"value": "pos"}}}] if i == 0 else []}
                   for i, (text, source) in enumerate([("a ripe banana", "web"),
                                                       ("an apple pie", "mail"),
                                                       ("banana bread", "mail")])]
        imported = call("POST", f"/datasets/{dataset_id}/records", json={"records": records})
        assert imported.status_code == 201, imported.text
        assert imported.json()["indexed"] == 3

        found = call("POST", f"/datasets/{dataset_id}/records/search", key=ANNOTATOR_KEY,
                     json={"text": "banana"}).json()
        assert sorted(h["fields"]["text"] for h in found["items"]) == [
            "a ripe banana", "banana bread"]
        filtered = call("POST", f"/datasets/{dataset_id}/records/search",
                        json={"text": "banana", "terms": {"source": ["mail"]}}).json()
        assert [h["fields"]["text"] for h in filtered["items"]] == ["banana bread"]

        run = call("POST", "/backfills/record-status/run",
                   json={"dataset_id": dataset_id, "force": True})
        assert run.status_code == 202 and run.json()["queued"] == 1
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            jobs = call("GET", "/backfills", params={"name": "record-status"}).json()["jobs"]
            if jobs and jobs[0]["status"] == "COMPLETED":
                break
            time.sleep(0.2)
        assert jobs[0]["status"] == "COMPLETED" and jobs[0]["processed"] == 3

        # authentication, roles, input
        assert call("GET", "/info", key=None).status_code == 401
        assert call("GET", "/info", key="not-a-key").status_code == 401
        forbidden = call("POST", "/datasets", key=ANNOTATOR_KEY,
                         json={"workspace_id": team["id"], "name": "x",
                               "fields": [{"name": "t", "type": "text"}]})
        assert forbidden.status_code == 403
        assert call("GET", "/backfills", key=ADMIN_KEY).status_code == 403
        missing = call("POST", "/datasets", json={"workspace_id": team["id"], "name": "x"})
        assert missing.status_code == 422 and "fields" in missing.text
        bad_record = call("POST", f"/datasets/{dataset_id}/records",
                          json={"records": [{"metadata": {}}]})
        assert bad_record.status_code == 422 and "fields" in bad_record.text
        no_selection = call("POST", "/backfills/agreement/run", json={})
        assert no_selection.status_code == 422 and "exactly one of" in no_selection.text
        assert call("GET", "/datasets/6c1b2d9e-0000-4000-8000-000000000000").status_code == 404
    finally:
        stop(server)
    secrets = [PASSWORD, OWNER_KEY, ADMIN_KEY, ANNOTATOR_KEY]
    logged = log.read_text()
    assert "GET /api/v1/info" in logged  # the access log is there, and clean
    for secret in secrets:
        assert secret not in logged
        assert all(secret not in r.text for r in responses)
