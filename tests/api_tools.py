"""A live annota server on loopback, with users and a dataset, for the API edge tests and
the schema fuzzing; and a snapshot of what it stores, to show that a refusal changed
nothing."""

from __future__ import annotations

import json
import uuid
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import sqlalchemy as sa

from annota.config import Settings
from annota.search import connect
from annota.search.engine import index_pattern
from tests.conftest import Annota, engine_env, sqlalchemy_url
from tests.server_tools import annota_server, free_port, stop, wait_until_answering

OWNER_KEY = "owner-key-" + "k" * 24
PASSWORD = "Corr3ct-Horse-Battery"
TABLES = ("workspaces", "workspaces_users", "users", "datasets", "fields", "questions",
          "metadata_properties", "vector_settings", "records", "responses", "suggestions",
          "vectors", "backfill_jobs")
DATASET = {
    "name": "reviews",
    "fields": [{"name": "text", "type": "text"}, {"name": "note", "type": "text",
                                                  "required": False}],
    "questions": [{"name": "sentiment", "type": "label_selection",
                   "options": ["positive", "negative"]},
                  {"name": "stars", "type": "rating", "values": [1, 2, 3, 4, 5]},
                  {"name": "comment", "type": "text"}],
    "metadata_properties": [{"name": "source", "type": "terms"},
                            {"name": "length", "type": "integer"},
                            {"name": "score", "type": "float"}],
    "vector_settings": [{"name": "embedding", "dimensions": 3}],
}


@dataclass
class LiveAPI:
    base: str
    env: dict[str, str]
    workspace_id: str = ""
    dataset_id: str = ""
    owner_id: str = ""
    client: httpx.Client = field(default_factory=lambda: httpx.Client(timeout=60))

    def call(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        headers = {"X-Annota-Api-Key": OWNER_KEY, **kwargs.pop("headers", {})}
        return self.client.request(method, f"{self.base}{path}", headers=headers, **kwargs)

    def record(self, i: int, **changes: Any) -> dict[str, Any]:
        """A valid record for the dataset, then ``changes``."""
        return {"fields": {"text": f"review number {i}"},
                "metadata": {"source": "web", "length": i, "score": 0.5},
                "external_id": f"r-{i}",
                "responses": [{"user_id": self.owner_id, "status": "submitted",
                               "values": {"sentiment": {"value": "positive"},
                                          "stars": {"value": 4}}}],
                "suggestions": [{"question": "sentiment", "value": "negative", "score": 0.7}],
                "vectors": {"embedding": [0.1, 0.2, 0.3]}, **changes}

    def snapshot(self) -> dict[str, Any]:
        """Rows and last writes per table, and documents per index."""
        settings = Settings.from_env(self.env)
        db = sa.create_engine(sqlalchemy_url(self.env["ANNOTA_DATABASE_URL"]))
        try:
            with db.connect() as connection:
                rows = {t: tuple(connection.execute(sa.text(
                    f"SELECT COUNT(*), MAX(updated_at) FROM {t}")).one()) for t in TABLES}
        finally:
            db.dispose()
        engine = connect(settings.search)
        prefix = settings.search.index_prefix
        engine.refresh(index_pattern(prefix)) if engine.indices(index_pattern(prefix)) else None
        docs = {name: engine.count(name) for name in engine.indices(index_pattern(prefix))}
        return {"rows": rows, "documents": docs}


@contextmanager
def live_api(tmp_path: Path, database_url: str, engine_url: str,
             kind: str = "elasticsearch"):
    env = engine_env(tmp_path, database_url, engine_url, kind)
    annota = Annota(env)
    assert annota.run("server", "database", "migrate").returncode == 0
    created = annota.run("server", "database", "users", "create", "--username", "olivia",
                         "--role", "owner", "--password-stdin", "--workspace", "team",
                         ANNOTA_NEW_USER_API_KEY=OWNER_KEY, input_text=PASSWORD)
    assert created.returncode == 0, created.stderr
    users = json.loads(annota.run("server", "database", "users", "list", "--json").stdout)
    port = free_port()
    server = annota_server(env, port, tmp_path / "server.log")
    try:
        wait_until_answering(port, server)
        api = LiveAPI(f"http://127.0.0.1:{port}/api/v1", env,
                      owner_id=next(u["id"] for u in users if u["username"] == "olivia"))
        api.workspace_id = api.call("GET", "/workspaces").json()[0]["id"]
        made = api.call("POST", "/datasets", json={"workspace_id": api.workspace_id,
                                                   **DATASET})
        assert made.status_code == 201, made.text
        api.dataset_id = made.json()["id"]
        seeded = api.call("POST", f"/datasets/{api.dataset_id}/records",
                          json={"records": [api.record(i) for i in range(5)]})
        assert seeded.status_code == 201, seeded.text
        yield api
    finally:
        stop(server)
        _drop(env)


@contextmanager
def writes_refused(engine, index: str):  # noqa: ANN001, ANN201
    """The engine refuses every write to ``index`` meanwhile: a cluster's index closed; the
    embedded engine's document table moved out of the way."""
    if engine.kind != "sqlite":
        engine.client.indices.close(index=index)
        try:
            yield
        finally:
            engine.client.indices.open(index=index, wait_for_active_shards=1)
        return
    import sqlite3

    with sqlite3.connect(engine.settings.path) as connection:
        (number,) = connection.execute("SELECT id FROM indices WHERE name = ?",
                                       [index]).fetchone()
        connection.execute(f"ALTER TABLE x{number}_docs RENAME TO x{number}_away")
    try:
        yield
    finally:
        with sqlite3.connect(engine.settings.path) as connection:
            connection.execute(f"ALTER TABLE x{number}_away RENAME TO x{number}_docs")


def _drop(env: dict[str, str]) -> None:
    settings = Settings.from_env(env)
    engine = connect(settings.search)
    for name in engine.indices(f"{settings.search.index_prefix}.*"):  # records, leases
        engine.delete_index(name)


def pg_database(server_url: str) -> tuple[str, Any]:
    """A fresh PostgreSQL database on ``server_url``; returns (url, drop)."""
    from urllib.parse import urlsplit, urlunsplit

    name = f"annota_api_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(sqlalchemy_url(server_url), isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.exec_driver_sql(f'CREATE DATABASE "{name}"')

    def drop() -> None:
        with admin.connect() as connection:
            connection.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()

    return urlunsplit(urlsplit(server_url)._replace(path=f"/{name}")), drop
