"""Datasets with every kind of setting, for the search tests and nothing else."""

from __future__ import annotations

import random
import threading
import uuid

import sqlalchemy as sa

from annota.config import Settings
from annota.search import connect
from annota.search.engine import SearchEngine, alias_name
from annota.search.reindex import ReindexReporter
from annota.server.db import open_database
from annota.server.domain import datasets
from annota.server.domain import models as m
from annota.server.schema import migrate as migrations

DIMENSIONS = 4
LABELS = ["positive", "negative", "neutral"]


def migrated(env: dict[str, str]) -> Settings:
    settings = Settings.from_env(env)
    migrations.migrate(settings)
    return settings


def engine_of(settings: Settings) -> SearchEngine:
    return connect(settings.search)


def new_user(connection: sa.Connection, name: str) -> uuid.UUID:
    user = {"id": uuid.uuid4(), "first_name": name, "username": name, "role": "annotator",
            "api_key": uuid.uuid4().hex, "password_hash": "-", "inserted_at": m.utcnow(),
            "updated_at": m.utcnow()}
    connection.execute(sa.insert(m.User.__table__), user)
    return user["id"]


def record(i: int, users: list[uuid.UUID], *, dims: int = DIMENSIONS, word: str = "hello") -> dict:
    rng = random.Random(i)
    return {
        "fields": {"text": f"{word} record number {i}", "image": f"https://img/{i}.png"},
        "metadata": {"source": ["web", "mail"][i % 2], "length": i, "undeclared": "kept"},
        "external_id": f"ext-{i}",
        "responses": [{"user_id": u, "status": "submitted",
                       "values": {"sentiment": {"value": LABELS[(i + k) % 3]},
                                  "quality": {"value": 1 + (i + k) % 5}}}
                      for k, u in enumerate(users)],
        "suggestions": [{"question": "sentiment", "value": LABELS[i % 3], "score": 0.8,
                         "agent": "model-a"}],
        "vectors": {"embedding": [rng.uniform(0.1, 1.0) for _ in range(dims)]},
    }


def create_dataset(settings: Settings, n: int, *, name: str = "reviews") -> uuid.UUID:
    db = open_database(settings.database_url)
    try:
        with db.begin() as connection:
            users = [new_user(connection, f"{name}-annotator-{k}") for k in range(2)]
            workspace = datasets.create_workspace(connection, f"ws-{name}-{uuid.uuid4().hex[:6]}")
            dataset_id = datasets.create_dataset(
                connection, workspace_id=workspace, name=name,
                fields=[{"name": "text", "type": "text"}, {"name": "image", "type": "image"}],
                questions=[{"name": "sentiment", "type": "label_selection", "options": LABELS},
                           {"name": "quality", "type": "rating", "options": [1, 2, 3, 4, 5]}],
                metadata_properties=[{"name": "source", "type": "terms"},
                                     {"name": "length", "type": "integer"}],
                vector_settings=[{"name": "embedding", "dimensions": DIMENSIONS}],
            )
        add_records(settings, dataset_id, range(n), users)
    finally:
        db.dispose()
    return dataset_id


def add_records(settings: Settings, dataset_id: uuid.UUID, numbers, users=None, **kw) -> list:
    db = open_database(settings.database_url)
    try:
        with db.begin() as connection:
            if users is None:
                users = [new_user(connection, f"late-{uuid.uuid4().hex[:8]}")]
            return datasets.import_records(connection, dataset_id,
                                           [record(i, users, **kw) for i in numbers])
    finally:
        db.dispose()


def alias_of(settings: Settings, dataset_id) -> str:  # noqa: ANN001
    return alias_name(settings.search.index_prefix, dataset_id)


class Started(ReindexReporter):
    """A reindex reporter whose event is set once the reindex has sent a batch."""

    def __init__(self) -> None:
        self.event = threading.Event()

    def progressed(self, plan, done: int) -> None:  # noqa: ANN001
        self.event.set()


def run_in_thread(target, *args, **kwargs):  # noqa: ANN001, ANN201
    box: dict = {}

    def work() -> None:
        try:
            box["value"] = target(*args, **kwargs)
        except BaseException as exc:  # re-raised by the test
            box["error"] = exc

    thread = threading.Thread(target=work)
    thread.start()
    return thread, box
