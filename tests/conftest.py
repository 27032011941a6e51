"""Fixtures: real SQLite files and a real PostgreSQL, never mocks.

PostgreSQL comes from ANNOTA_TEST_POSTGRES_URL (scripts/test starts a local one), else
from testcontainers when a Docker engine answers, else the test is skipped — except under
CI=true, where a missing service fails the run.
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest
import sqlalchemy as sa
from click.testing import CliRunner

from annota.cli import cli
from annota.config import Settings
from annota.urls import DatabaseURL

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
# testcontainers' reaper runs from an image that cannot be pulled here; every fixture that
# starts a container stops it itself
os.environ.setdefault("TESTCONTAINERS_RYUK_DISABLED", "true")
POSTGRES_IMAGE = os.environ.get("ANNOTA_TEST_POSTGRES_IMAGE", "postgres:16-alpine")
REDIS_IMAGE = os.environ.get("ANNOTA_TEST_REDIS_IMAGE", "redis:7-alpine")


def service_missing(reason: str) -> None:
    if IN_CI:
        pytest.fail(f"{reason} (CI=true: a missing service fails the run)", pytrace=False)
    pytest.skip(reason)


def _docker_available() -> bool:
    try:
        import docker

        docker.from_env().ping()
    except Exception:
        return False
    return True


def service_url(variable: str, name: str, container, url_of):  # noqa: ANN001, ANN201
    """A service's URL from its environment variable, else from a testcontainer when a
    Docker engine answers, else skip (fail under CI)."""
    url = os.environ.get(variable)
    if url:
        yield url
        return
    if _docker_available():
        with container() as running:
            yield url_of(running)
        return
    service_missing(f"no {name}: set {variable}, or run `bash scripts/test`, which starts one")


def _container(module: str, name: str, *args, **kwargs):  # noqa: ANN001, ANN202
    """A testcontainers class, imported only when a Docker engine is used."""
    import importlib

    return lambda: getattr(importlib.import_module(module), name)(*args, **kwargs)


@pytest.fixture(scope="session")
def postgres_server_url():
    yield from service_url(
        "ANNOTA_TEST_POSTGRES_URL", "PostgreSQL",
        _container("testcontainers.postgres", "PostgresContainer", POSTGRES_IMAGE,
                   driver=None),
        lambda c: c.get_connection_url())


def sqlalchemy_url(url: str) -> str:
    return DatabaseURL.parse(url).sqlalchemy_url


@pytest.fixture
def postgres_url(postgres_server_url):
    """A fresh, empty PostgreSQL database for one test."""
    name = f"annota_test_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(sqlalchemy_url(postgres_server_url), isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as connection:
            connection.exec_driver_sql(f'CREATE DATABASE "{name}"')
    except sa.exc.OperationalError as exc:
        admin.dispose()
        service_missing(f"PostgreSQL at ANNOTA_TEST_POSTGRES_URL is unreachable: {exc.orig}")
    parts = urlsplit(postgres_server_url)
    yield urlunsplit(parts._replace(path=f"/{name}"))
    with admin.connect() as connection:
        connection.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    admin.dispose()


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'annota.db'}"


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest) -> str:
    """Each test using this runs once on SQLite and once on PostgreSQL."""
    if request.param == "sqlite":
        return request.getfixturevalue("sqlite_url")
    return request.getfixturevalue("postgres_url")


def make_env(tmp_path: Path, database_url: str | None) -> dict[str, str]:
    """The environment of an annota process: its own home, and this test's database."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ANNOTA_")}
    env["ANNOTA_HOME"] = str(tmp_path / "home")
    if database_url:
        env["ANNOTA_DATABASE_URL"] = database_url
    return env


@pytest.fixture
def env(tmp_path: Path, database_url: str) -> dict[str, str]:
    return make_env(tmp_path, database_url)


@pytest.fixture
def settings(env: dict[str, str]) -> Settings:
    return Settings.from_env(env)


@pytest.fixture
def db(settings: Settings):
    """A SQLAlchemy engine on this test's database."""
    from annota.server.db import open_database

    db = open_database(settings.database_url)
    yield db
    db.dispose()


class Annota:
    """Runs the command line, in-process (CliRunner) or as a real process."""

    def __init__(self, env: dict[str, str]) -> None:
        self.env = env

    def invoke(self, *args: str, input: str | None = None, **env: str):
        runner = CliRunner()
        return runner.invoke(cli, list(args), env={**self.env, **env}, input=input,
                             catch_exceptions=False)

    def run(self, *args: str, timeout: float = 120, input_text: str | None = None,
            **env: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-m", "annota", *args], env={**self.env, **env},
            capture_output=True, text=True, timeout=timeout, input=input_text,
            stdin=subprocess.DEVNULL if input_text is None else None,
        )

    def popen(self, *args: str, **env: str) -> subprocess.Popen:
        return subprocess.Popen(
            [sys.executable, "-m", "annota", *args], env={**self.env, **env},
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
            stdin=subprocess.DEVNULL,
        )


@pytest.fixture
def annota(env: dict[str, str]) -> Annota:
    """The command line on this test's database (SQLite, then PostgreSQL)."""
    return Annota(env)


@pytest.fixture
def sqlite_annota(tmp_path: Path, sqlite_url: str) -> Annota:
    return Annota(make_env(tmp_path, sqlite_url))


@pytest.fixture
def pg_annota(tmp_path: Path, postgres_url: str) -> Annota:
    return Annota(make_env(tmp_path, postgres_url))


# --- search engines -------------------------------------------------------------------

SEARCH_ENGINES = {  # test id -> (ANNOTA_SEARCH_ENGINE, environment variable with its URL)
    "elasticsearch8": ("elasticsearch", "ANNOTA_TEST_ELASTICSEARCH_URL"),
    "elasticsearch9": ("elasticsearch", "ANNOTA_TEST_ELASTICSEARCH9_URL"),
    "opensearch": ("opensearch", "ANNOTA_TEST_OPENSEARCH_URL"),
    # two Elasticsearch 8 nodes: indices get 2 shards and 1 replica there (see _search_env)
    "es-cluster": ("elasticsearch", "ANNOTA_TEST_ELASTICSEARCH_CLUSTER_URL"),
    "sqlite": ("sqlite", None),  # embedded: a file beside the test's database
}
CLUSTER_SETTINGS = {"ANNOTA_SEARCH_SHARDS": "2", "ANNOTA_SEARCH_REPLICAS": "1"}
_CONTAINERS = {
    "elasticsearch8": ("testcontainers.elasticsearch", "ElasticSearchContainer",
                       "docker.elastic.co/elasticsearch/elasticsearch:8.19.3"),
    "elasticsearch9": ("testcontainers.elasticsearch", "ElasticSearchContainer",
                       "docker.elastic.co/elasticsearch/elasticsearch:9.1.0"),
    "opensearch": ("testcontainers.opensearch", "OpenSearchContainer",
                   "opensearchproject/opensearch:2.19.1"),
}


@pytest.fixture(scope="session", params=list(SEARCH_ENGINES))
def search_server(request: pytest.FixtureRequest):
    """(engine kind, URL) of a real search engine; the same tests run on each."""
    kind, variable = SEARCH_ENGINES[request.param]
    if variable is None:
        yield kind, ""
        return
    if request.param not in _CONTAINERS and not os.environ.get(variable):
        service_missing(f"no {request.param}: set {variable} (`bash scripts/test` starts one)")
    for url in service_url(
        variable, request.param, _container(*_CONTAINERS.get(request.param, ("", "", ""))),
        lambda c: f"http://{c.get_container_host_ip()}:{c.get_exposed_port(9200)}",
    ):
        yield kind, url


@pytest.fixture(scope="session")
def elasticsearch_url() -> str:
    """One engine, for the tests of what sits on top of search (the server, docker)."""
    url = os.environ.get("ANNOTA_TEST_ELASTICSEARCH_URL")
    if not url:
        service_missing("no Elasticsearch: set ANNOTA_TEST_ELASTICSEARCH_URL")
    return url


def engine_env(tmp_path: Path, database_url: str | None, url: str,
               kind: str = "elasticsearch") -> dict[str, str]:
    """make_env plus a search engine, with an index prefix of this test's own (drop its
    indices with ``_drop_indices``)."""
    env = make_env(tmp_path, database_url)
    env.update({"ANNOTA_SEARCH_ENGINE": kind,
                "ANNOTA_SEARCH_INDEX_PREFIX": f"annota-test-{uuid.uuid4().hex[:10]}"})
    if url:
        env["ANNOTA_ELASTICSEARCH"] = url
    return env


def _search_env(tmp_path: Path, database_url: str, search_server) -> dict[str, str]:
    kind, url = search_server
    env = engine_env(tmp_path, database_url, url, kind)
    if url and url == os.environ.get(SEARCH_ENGINES["es-cluster"][1]):
        env.update(CLUSTER_SETTINGS)
    return env


def _drop_indices(env: dict[str, str]) -> None:
    from annota.search import connect

    settings = Settings.from_env(env)
    engine = connect(settings.search)
    for name in engine.indices(f"{settings.search.index_prefix}.*"):  # records, leases
        engine.delete_index(name)


@pytest.fixture
def search_env(tmp_path: Path, sqlite_url: str, search_server):
    """SQLite plus a search engine, with an index prefix of this test's own."""
    env = _search_env(tmp_path, sqlite_url, search_server)
    yield env
    _drop_indices(env)


@pytest.fixture
def search_env_any_db(tmp_path: Path, database_url: str, search_server):
    """Like search_env, once on SQLite and once on PostgreSQL."""
    env = _search_env(tmp_path, database_url, search_server)
    yield env
    _drop_indices(env)


# --- redis ----------------------------------------------------------------------------


@pytest.fixture(scope="session")
def redis_server_url():
    yield from service_url(
        "ANNOTA_TEST_REDIS_URL", "Redis",
        _container("testcontainers.redis", "RedisContainer", REDIS_IMAGE),
        lambda c: f"redis://{c.get_container_host_ip()}:{c.get_exposed_port(6379)}/0")


@pytest.fixture
def redis_url(redis_server_url: str):
    """Redis with an empty database for this test (the RQ queue starts empty)."""
    from redis import Redis

    client = Redis.from_url(redis_server_url)
    client.flushdb()
    yield redis_server_url
    client.flushdb()


@pytest.fixture(scope="module", params=["sqlite", "postgresql", "sqlite-embedded"])
def api(request, tmp_path_factory):
    """A live server with an owner and a dataset, one per test module: on SQLite and on
    PostgreSQL with Elasticsearch, and on SQLite with the embedded engine."""
    from tests.api_tools import live_api, pg_database

    tmp = tmp_path_factory.mktemp(f"api-{request.param}")
    if request.param == "sqlite-embedded":
        with live_api(tmp, f"sqlite:///{tmp / 'annota.db'}", "", "sqlite") as live:
            yield live
        return
    elasticsearch_url = request.getfixturevalue("elasticsearch_url")
    if request.param == "sqlite":
        with live_api(tmp, f"sqlite:///{tmp / 'annota.db'}", elasticsearch_url) as live:
            yield live
        return
    url, drop = pg_database(request.getfixturevalue("postgres_server_url"))
    try:
        with live_api(tmp, url, elasticsearch_url) as live:
            yield live
    finally:
        drop()
