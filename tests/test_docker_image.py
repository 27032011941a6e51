"""The Docker image, built from docker/Dockerfile and run for real through testcontainers.

The containers use host networking and the suite's own services (PostgreSQL, Redis,
Elasticsearch on loopback). The image is built on ANNOTA_TEST_DOCKER_BASE, the stand-in
base scripts/services.py makes from Debian packages (public images cannot be pulled
here). Without a Docker engine these tests skip, and under CI=true they fail.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from tests.conftest import _docker_available, _drop_indices, engine_env, service_missing
from tests.search_tools import alias_of, create_dataset, migrated
from tests.server_tools import free_port, wait_until_answering
from tests.test_docker import deleted_index_setup

ROOT = Path(__file__).resolve().parent.parent
TAG = "annota-test:latest"
PASSWORD = "D0cker-Pa55word-x"
API_KEY = "docker-owner-key-0123456789abcdef"
HEADERS = {"X-Annota-Api-Key": API_KEY}


@pytest.fixture(scope="session")
def image() -> str:
    """The image, built once per session (Docker's layer cache makes a rebuild quick)."""
    if not _docker_available():
        service_missing("no Docker engine: run `bash scripts/test`, which starts one as root")
    from testcontainers.core.image import DockerImage

    base = os.environ.get("ANNOTA_TEST_DOCKER_BASE")
    DockerImage(path=str(ROOT), tag=TAG, dockerfile_path="docker/Dockerfile",
                buildargs={"BASE": base} if base else {}, network_mode="host").build()
    return TAG


class Running:
    """A started container, with what ``wait_until_answering`` asks of a process."""

    def __init__(self, container) -> None:  # noqa: ANN001
        self.container = container
        self.returncode: int | None = None

    def poll(self) -> int | None:
        wrapped = self.container.get_wrapped_container()
        wrapped.reload()
        if wrapped.status in ("created", "running"):
            return None
        self.returncode = wrapped.attrs["State"]["ExitCode"]
        return self.returncode

    def logs(self) -> str:
        out, err = self.container.get_logs()
        return out.decode(errors="replace") + err.decode(errors="replace")

    def health(self) -> str | None:
        wrapped = self.container.get_wrapped_container()
        wrapped.reload()
        return (wrapped.attrs["State"].get("Health") or {}).get("Status")


@contextmanager
def container(image: str, env: dict[str, str], *, volume: str | None = None,
              command: list[str] | None = None) -> Iterator[Running]:
    from testcontainers.core.container import DockerContainer

    box = DockerContainer(image).with_kwargs(network_mode="host")
    for key, value in env.items():
        box.with_env(key, value)
    if volume:
        box.with_volume_mapping(volume, "/var/lib/annota", "rw")
    if command:
        box.with_command(command)
    box.start()
    try:
        yield Running(box)
    finally:
        box.stop()


def container_env(host_env: dict[str, str], port: int, **extra: str) -> dict[str, str]:
    """What a container gets: the services' URLs, never the host's home or paths."""
    keep = ("ANNOTA_DATABASE_URL", "ANNOTA_ELASTICSEARCH", "ANNOTA_SEARCH_INDEX_PREFIX",
            "ANNOTA_SEARCH_ENGINE", "ANNOTA_REDIS_URL")
    env = {k: v for k, v in host_env.items() if k in keep}
    return {**env, "ANNOTA_SERVER_PORT": str(port), "USERNAME": "owner",
            "PASSWORD": PASSWORD, "API_KEY": API_KEY, "ANNOTA_WAIT_SECONDS": "60", **extra}


def secrets_of(env: dict[str, str]) -> list[str]:
    found = [PASSWORD, API_KEY]
    url = env.get("ANNOTA_DATABASE_URL", "")
    if "@" in url:
        found.append(url.split("//", 1)[1].rsplit("@", 1)[0].split(":", 1)[1])
    return found


def ready(port: int, running: Running, timeout: float = 240) -> httpx.Response:
    answer = wait_until_answering(port, running, timeout=timeout, path="/api/v1/ready")
    assert answer.status_code == 200, (answer.text, running.logs()[-3000:])
    return answer


def healthy(running: Running, timeout: float = 60) -> None:
    """Wait for the image's HEALTHCHECK to say healthy (never unhealthy on the way)."""
    deadline = time.monotonic() + timeout
    while (health := running.health()) != "healthy":
        assert health == "starting", (health, running.logs()[-2000:])
        assert time.monotonic() < deadline, "never healthy"
        time.sleep(1)


@pytest.fixture
def docker_env(tmp_path, postgres_url, elasticsearch_url):
    env = engine_env(tmp_path, postgres_url, elasticsearch_url)
    yield env
    _drop_indices(env)


def test_fresh_database_zero_datasets_with_reindex(image, docker_env):
    port = free_port()
    env = container_env(docker_env, port, REINDEX_DATASETS="true")
    with container(image, env) as running:
        ready(port, running)
        datasets = httpx.get(f"http://127.0.0.1:{port}/api/v1/datasets", headers=HEADERS,
                             timeout=10)
        assert datasets.status_code == 200 and datasets.json() == []
        healthy(running)
        uid = running.container.exec(["id", "-u"])
        assert uid.exit_code == 0 and int(uid.output) != 0  # not root
        assert running.container.get_wrapped_container().attrs["Config"]["User"] == "annota"
        logs = running.logs()
    assert "No datasets: nothing to reindex." in logs
    for secret in secrets_of(env):
        assert secret not in logs


def test_deleted_indices_are_rebuilt_before_the_api_answers(image, docker_env):
    engine, alias = deleted_index_setup(docker_env)  # indexed, then its index deleted
    settings = migrated(docker_env)
    more = {alias_of(settings, create_dataset(settings, n, name=f"more-{n}")): n
            for n in (1, 7, 30)}  # never indexed
    port = free_port()
    with container(image, container_env(docker_env, port, REINDEX_DATASETS="1")) as running:
        ready(port, running)
        # at the moment the API first answers
        for name, records in {alias: 25, **more}.items():
            assert len(engine.alias_indices(name)) == 1 and engine.count(name) == records


def test_two_containers_on_one_database_migrate_once(image, docker_env):
    ports = [free_port(), free_port()]
    with container(image, container_env(docker_env, ports[0])) as first, \
            container(image, container_env(docker_env, ports[1])) as second:
        for port, running in zip(ports, (first, second), strict=True):
            ready(port, running)
            info = httpx.get(f"http://127.0.0.1:{port}/api/v1/info", headers=HEADERS,
                             timeout=10)
            assert info.status_code == 200
        texts = [first.logs(), second.logs()]
    applied = sorted(len(re.findall(r"^Applied ", t, re.M)) for t in texts)
    assert applied[0] == 0 and applied[1] > 10, applied
    assert sum("already exists" in t for t in texts) == 1  # one owner, created once


def test_a_worker_container_runs_a_backfill_queued_through_the_api(image, docker_env,
                                                                     redis_url):
    settings = migrated(docker_env)
    dataset = str(create_dataset(settings, 40))
    port = free_port()
    env = container_env({**docker_env, "ANNOTA_REDIS_URL": redis_url}, port)
    with container(image, env) as api:
        ready(port, api)
        queued = httpx.post(f"http://127.0.0.1:{port}/api/v1/backfills/record-status/run",
                            json={"dataset_id": dataset, "force": True}, headers=HEADERS,
                            timeout=10)
        assert queued.status_code == 202, queued.text

        def statuses() -> list[str]:
            listed = httpx.get(f"http://127.0.0.1:{port}/api/v1/backfills",
                               params={"dataset_id": dataset, "name": "record-status"},
                               headers=HEADERS, timeout=10)
            assert listed.status_code == 200, listed.text
            return [j["status"] for j in listed.json()["jobs"]]

        time.sleep(3)
        assert statuses() == ["QUEUED"]  # the API only queues: nobody runs it yet
        with container(image, env, command=["worker", "--workers", "1"]) as worker:
            deadline = time.monotonic() + 120
            while statuses() != ["COMPLETED"]:
                assert worker.poll() is None, worker.logs()[-3000:]
                assert time.monotonic() < deadline, (statuses(), worker.logs()[-3000:])
                time.sleep(1)
            healthy(worker)
            logs = worker.logs()
    for secret in secrets_of(env):
        assert secret not in logs


def test_a_restarted_container_keeps_its_sqlite_data(image, docker_env):
    volume = f"annota-test-{uuid.uuid4().hex[:10]}"
    env = {k: v for k, v in docker_env.items() if k != "ANNOTA_DATABASE_URL"}
    port = free_port()
    try:
        with container(image, container_env(env, port), volume=volume) as first:
            ready(port, first)
            made = httpx.post(f"http://127.0.0.1:{port}/api/v1/workspaces",
                              json={"name": "kept"}, headers=HEADERS, timeout=10)
            assert made.status_code == 201, made.text
        with container(image, container_env(env, port), volume=volume) as second:
            ready(port, second)
            names = [w["name"] for w in httpx.get(
                f"http://127.0.0.1:{port}/api/v1/workspaces", headers=HEADERS,
                timeout=10).json()]
            logs = second.logs()
        assert "kept" in names
        assert not re.search(r"^Applied ", logs, re.M)  # nothing left to migrate
        assert "already exists" in logs  # the owner was kept too
    finally:
        subprocess.run(["docker", "volume", "rm", "-f", volume], capture_output=True)


def test_testcontainers_fallback_with_locally_built_images(image, tmp_path):
    """Without service URLs, the fixtures start PostgreSQL and Redis from the images named
    by ANNOTA_TEST_POSTGRES_IMAGE / ANNOTA_TEST_REDIS_IMAGE; CI=true makes a skip a
    failure, so both tests must really run."""
    for variable in ("ANNOTA_TEST_POSTGRES_IMAGE", "ANNOTA_TEST_REDIS_IMAGE"):
        if not os.environ.get(variable):
            service_missing(f"no {variable}: scripts/services.py builds it")
    env = {k: v for k, v in os.environ.items()
           if k not in ("ANNOTA_TEST_POSTGRES_URL", "ANNOTA_TEST_REDIS_URL")}
    env["CI"] = "true"
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-rs",
         "tests/test_async_migrations.py::test_runs_during_migrate_by_default",
         "tests/test_workers.py::test_two_workers_never_process_the_same_job"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-2000:]
    assert re.search(r"\b3 passed\b", run.stdout) and "skipped" not in run.stdout, run.stdout


def test_the_embedded_engine_on_the_sqlite_volume(image):
    """No database URL and no engine: the image keeps the database and the embedded
    engine's file on its volume, searches text and vectors (by sqlite-vec: the image's
    Python loads extensions), and after a restart with REINDEX_DATASETS still answers."""
    import math
    import random

    from tests.api_tools import DATASET

    volume = f"annota-test-{uuid.uuid4().hex[:10]}"
    port = free_port()
    env = container_env({}, port, REINDEX_DATASETS="true")
    api = f"http://127.0.0.1:{port}/api/v1"
    rng = random.Random(4)
    vectors = [[rng.uniform(-1, 1) for _ in range(3)] for _ in range(40)]

    def cosine(a: list[float], b: list[float]) -> float:
        return sum(x * y for x, y in zip(a, b, strict=True)) / math.sqrt(
            sum(x * x for x in a) * sum(y * y for y in b))

    def searched(body: dict) -> dict:
        answer = httpx.post(f"{api}/datasets/{dataset}/records/search", json=body,
                            headers=HEADERS, timeout=30)
        assert answer.status_code == 200, answer.text
        return answer.json()

    try:
        with container(image, env, volume=volume) as first:
            ready(port, first)
            info = httpx.get(f"{api}/info", headers=HEADERS, timeout=10).json()
            assert "sqlite-vec" in json.dumps(info), info
            workspace = httpx.get(f"{api}/workspaces", headers=HEADERS, timeout=10).json()[0]
            made = httpx.post(f"{api}/datasets", json={"workspace_id": workspace["id"],
                                                        **DATASET}, headers=HEADERS, timeout=30)
            assert made.status_code == 201, made.text
            dataset = made.json()["id"]
            records = [{"fields": {"text": f"{'kiwi' if i % 4 == 0 else 'plum'} review {i}"},
                        "metadata": {"source": "web", "length": i, "score": 0.5},
                        "external_id": f"e{i}", "vectors": {"embedding": v}}
                       for i, v in enumerate(vectors)]
            stored = httpx.post(f"{api}/datasets/{dataset}/records", json={"records": records},
                                headers=HEADERS, timeout=60)
            assert stored.status_code == 201 and stored.json()["indexed"] == 40, stored.text
            assert searched({"text": {"q": "kiwi"}})["total"] == 10
            query = [0.3, -0.2, 0.9]
            similar = searched({"similarity": {"vector": "embedding", "value": query,
                                               "k": 5}})
            best = sorted(range(40), key=lambda i: -cosine(vectors[i], query))[:5]
            assert [i["external_id"] for i in similar["items"]] == [f"e{i}" for i in best]
        with container(image, env, volume=volume) as second:
            ready(port, second)
            assert searched({"text": {"q": "kiwi"}})["total"] == 10
            logs = second.logs()
        assert "reindexing every dataset" in logs
    finally:
        subprocess.run(["docker", "volume", "rm", "-f", volume], capture_output=True)
