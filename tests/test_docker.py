"""The docker entrypoint run on the host (no Docker engine needed), and the compose file."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
import yaml

from annota.search import reindex as reindexing
from tests.conftest import _drop_indices, engine_env, make_env, service_missing
from tests.search_tools import alias_of, create_dataset, engine_of, migrated
from tests.server_tools import free_port, start, stop, wait_until_answering

ROOT = Path(__file__).resolve().parent.parent
ENTRYPOINT = ROOT / "docker" / "entrypoint.sh"
PASSWORD = "Entrypo1nt-Pa55word"
API_KEY = "entrypoint-owner-key-0123456789"


@pytest.fixture
def entry_env(tmp_path, postgres_url, elasticsearch_url):
    env = engine_env(tmp_path, postgres_url, elasticsearch_url)
    env.update(ANNOTA_COMMAND=f"{sys.executable} -m annota", ANNOTA_SERVER_HOST="127.0.0.1",
               USERNAME="owner", PASSWORD=PASSWORD, API_KEY=API_KEY, ANNOTA_WAIT_SECONDS="60")
    yield env
    _drop_indices(env)


def entrypoint(env: dict[str, str], port: int, log: Path, **extra: str):  # noqa: ANN201
    return start(["bash", str(ENTRYPOINT)], {**env, "ANNOTA_SERVER_PORT": str(port), **extra},
                 log)


def deleted_index_setup(env: dict[str, str]) -> tuple:
    settings = migrated(env)
    dataset = create_dataset(settings, 25)
    reindexing.reindex(settings)
    engine, alias = engine_of(settings), alias_of(settings, dataset)
    for index in engine.alias_indices(alias):
        engine.delete_index(index)
    assert engine.alias_indices(alias) == []
    return engine, alias


@pytest.mark.parametrize("reindex", ["true", "1", None])
def test_reindex_datasets_rebuilds_before_the_api_answers(entry_env, tmp_path, reindex):
    engine, alias = deleted_index_setup(entry_env)
    port, log = free_port(), tmp_path / "entrypoint.log"
    extra = {"REINDEX_DATASETS": reindex} if reindex else {}
    process = entrypoint(entry_env, port, log, **extra)
    try:
        first = wait_until_answering(port, process)
        indices = engine.alias_indices(alias)  # looked at the moment the API first answers
        assert first.status_code == 200
        if reindex:
            assert len(indices) == 1 and engine.count(alias) == 25
        else:
            assert indices == []
        info = httpx.get(f"http://127.0.0.1:{port}/api/v1/info",
                         headers={"X-Annota-Api-Key": API_KEY}, timeout=10)
        assert info.status_code == 200  # the owner from USERNAME / PASSWORD / API_KEY
    finally:
        stop(process)
    logged = log.read_text()
    assert PASSWORD not in logged and API_KEY not in logged
    assert ("reindexing every dataset" in logged) == bool(reindex)


def test_two_entrypoints_at_once_share_one_migration(entry_env, tmp_path):
    ports = [free_port(), free_port()]
    logs = [tmp_path / "a.log", tmp_path / "b.log"]
    processes = [entrypoint(entry_env, p, log) for p, log in zip(ports, logs, strict=True)]
    try:
        for port, process in zip(ports, processes, strict=True):
            ready = wait_until_answering(port, process, path="/api/v1/ready")
            assert ready.status_code == 200, ready.text
    finally:
        for process in processes:
            stop(process)
    texts = [log.read_text() for log in logs]
    applied = sorted(len(re.findall(r"^Applied ", t, re.M)) for t in texts)
    assert applied[0] == 0 and applied[1] > 10
    assert sum("already exists" in t for t in texts) == 1  # the owner was created once


def test_entrypoint_gives_up_on_an_unreachable_database(tmp_path):
    env = make_env(tmp_path, "postgresql://a:Sup3r-s3cret@127.0.0.1:1/x")
    env.update(ANNOTA_COMMAND=f"{sys.executable} -m annota", ANNOTA_WAIT_SECONDS="3")
    log = tmp_path / "e.log"
    process = start(["bash", str(ENTRYPOINT)], env, log)
    assert process.wait(timeout=60) == 5
    text = log.read_text()
    assert "giving up" in text and "Sup3r-s3cret" not in text


def test_the_compose_tool_accepts_the_file():
    """Checked by the compose tool itself (Debian's docker-compose 1.29 here, or the
    `docker compose` plugin), not only read as YAML."""
    if shutil.which("docker-compose"):
        command = ["docker-compose"]
    elif subprocess.run(["docker", "compose", "version"], capture_output=True).returncode == 0:
        command = ["docker", "compose"]
    else:
        service_missing("no compose tool: scripts/services.py installs docker-compose")
    checked = subprocess.run([*command, "-f", str(ROOT / "docker" / "docker-compose.yaml"),
                              "config", "-q"], capture_output=True, text=True,
                             env={**os.environ, "PASSWORD": "x"})
    assert checked.returncode == 0, checked.stderr


def test_compose_defines_the_services_and_variables():
    compose = yaml.safe_load((ROOT / "docker" / "docker-compose.yaml").read_text())
    services = compose["services"]
    assert set(services) >= {"annota", "worker", "postgres", "elasticsearch", "redis"}
    annota_env = services["annota"]["environment"]
    for variable in ("ANNOTA_DATABASE_URL", "ANNOTA_ELASTICSEARCH", "ANNOTA_SEARCH_ENGINE",
                     "ANNOTA_REDIS_URL", "USERNAME", "PASSWORD", "API_KEY",
                     "REINDEX_DATASETS"):
        assert variable in annota_env, variable
    assert "worker" in services["worker"]["command"]
    assert services["worker"]["environment"]["ANNOTA_REDIS_URL"].startswith("redis://redis")
    assert annota_env["ANNOTA_DATABASE_URL"].startswith("postgresql://")
    readme = (ROOT / "README.md").read_text()
    entry = ENTRYPOINT.read_text()
    used = set(re.findall(r"\$\{([A-Z_]+)[:}]", entry)) | set(annota_env)
    for variable in used:
        assert f"`{variable}`" in readme, f"{variable} is not documented in the README"
