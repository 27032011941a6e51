"""The dashboard's defences, against a real server process on PostgreSQL: a POST without
the session's CSRF token (none, empty, another session's, any other text) is refused and
changes nothing; a session cookie signed by another server, or forged, is refused; a
demoted owner loses the dashboard at once; no page ever shows a password, an API key, the
signing key or a URL's password."""

from __future__ import annotations

import base64
import json
import re
from urllib.parse import unquote, urlsplit

import httpx
import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from annota.search import connect
from annota.server.db import open_database
from tests.api_tools import OWNER_KEY, PASSWORD, pg_database
from tests.conftest import Annota, make_env
from tests.search_tools import create_dataset, migrated
from tests.server_tools import annota_server, free_port, stop, wait_until_answering

ANNOTATOR_KEY = "annotator-key-" + "b" * 20
SECRET = "signing-key-" + "s" * 20


def _server(env: dict[str, str], where) -> tuple:  # noqa: ANN001
    port = free_port()
    process = annota_server(env, port, where / f"server-{port}.log")
    wait_until_answering(port, process)
    return process, f"http://127.0.0.1:{port}"


@pytest.fixture(scope="module")
def deployment(tmp_path_factory, postgres_server_url):
    """A server on PostgreSQL (a URL with a password) with an owner, an annotator and an
    indexed dataset, its session key set; and a second server with a key of its own."""
    url, drop = pg_database(postgres_server_url)
    where = tmp_path_factory.mktemp("admin-security")
    env = {**make_env(where, url), "ANNOTA_SECRET_KEY": SECRET, "ANNOTA_SEARCH_ENGINE": "sqlite",
           "ANNOTA_SEARCH_PATH": str(where / "search.db")}
    settings_ = migrated(env)
    annota = Annota(env)
    for name, role, key in (("olivia", "owner", OWNER_KEY),
                            ("arthur", "annotator", ANNOTATOR_KEY)):
        assert annota.run("server", "database", "users", "create", "--username", name,
                          "--role", role, "--password-stdin", ANNOTA_NEW_USER_API_KEY=key,
                          input_text=PASSWORD).returncode == 0
    dataset = create_dataset(settings_, 40, name="secure")
    assert annota.run("server", "search-engine", "reindex").returncode == 0
    process, base = _server(env, where)
    other_home = where / "other"
    other_env = {**make_env(other_home, url), "ANNOTA_SEARCH_ENGINE": "sqlite",
                 "ANNOTA_SEARCH_PATH": str(where / "other-search.db")}
    other, other_base = _server(other_env, where)
    yield {"base": base, "other": other_base, "settings": settings_, "url": url,
           "dataset": str(dataset)}
    stop(process)
    stop(other)
    drop()


def _session(base: str, key: str = OWNER_KEY) -> tuple[httpx.Client, str]:
    """A client logged in, and its page's CSRF token."""
    client = httpx.Client(base_url=base, timeout=30)
    response = client.post("/admin/login", data={"api_key": key})
    assert response.status_code == 303, response.text
    cookie = response.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie.replace("Strict", "strict")
    page = client.get("/admin")
    assert page.status_code == 200
    token = re.search(r'name="csrf-token" content="([^"]+)"', page.text).group(1)
    return client, token


def _state(deployment) -> dict:  # noqa: ANN001
    """What a refused POST must leave alone: the jobs, the async migrations, the indices."""
    database = open_database(deployment["settings"].database_url)
    try:
        with database.connect() as connection:
            jobs = sorted(tuple(map(str, r)) for r in connection.execute(sa.text(
                "SELECT name, dataset_id, status, processed, attempts FROM backfill_jobs")))
            migrations = sorted(tuple(map(str, r)) for r in connection.execute(sa.text(
                "SELECT name, status, attempts FROM async_migrations")))
    finally:
        database.dispose()
    engine = connect(deployment["settings"].search)
    return {"jobs": jobs, "async": migrations, "indices": sorted(engine.indices("*"))}


def _actions(deployment) -> list[tuple[str, dict]]:  # noqa: ANN001
    return [("/admin/backfills/run", {"name": "agreement"}),
            ("/admin/backfills/retry", {"name": "record-status"}),
            ("/admin/backfills/cancel", {"name": "agreement"}),
            ("/admin/async/records_dataset_id_id_index/run", {}),
            (f"/admin/datasets/{deployment['dataset']}/reindex", {})]


@settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
@given(token=st.one_of(st.none(), st.just(""), st.text(min_size=1, max_size=60).filter(
    lambda t: t.isprintable() and t.isascii())), which=st.integers(0, 4))
def test_a_post_without_the_sessions_csrf_token_changes_nothing(deployment, token, which):
    client, real = _session(deployment["base"])
    path, body = _actions(deployment)[which]
    before = _state(deployment)
    headers = {} if token is None else {"X-CSRF-Token": token}
    if token == real:
        return
    response = client.post(path, json=body, headers=headers)
    assert response.status_code == 403, (path, token, response.text)
    assert "CSRF" in response.json()["detail"]
    assert _state(deployment) == before


def test_another_sessions_token_and_a_wrong_one_are_refused(deployment):
    client, mine = _session(deployment["base"])
    _, theirs = _session(deployment["base"])
    assert mine != theirs
    before = _state(deployment)
    for token in (theirs, mine[:-1] + ("A" if mine[-1] != "A" else "B")):
        for path, body in _actions(deployment):
            response = client.post(path, json=body, headers={"X-CSRF-Token": token})
            assert response.status_code == 403, (path, response.text)
    logout = client.post("/admin/logout", data={"csrf": theirs})
    assert logout.status_code == 403
    assert client.get("/admin").status_code == 200  # still logged in
    assert _state(deployment) == before
    # with its own token the same client is let through
    done = client.post("/admin/backfills/cancel", json={"name": "agreement"},
                       headers={"X-CSRF-Token": mine})
    assert done.status_code == 200, done.text


def test_a_cookie_from_another_server_or_forged_is_refused(deployment):
    from annota.server.api.sessions import COOKIE

    elsewhere, token = _session(deployment["other"])
    stolen = elsewhere.cookies.get(COOKIE)
    assert stolen
    payload = base64.urlsafe_b64encode(json.dumps(
        {"user": "x", "csrf": token}).encode()).decode().rstrip("=")
    for cookie in (stolen, payload + ".AAAA.BBBB", ""):
        client = httpx.Client(base_url=deployment["base"], cookies={COOKIE: cookie},
                              timeout=30)
        page = client.get("/admin")
        assert page.status_code == 303 and page.headers["location"] == "/admin/login"
        assert client.get("/admin/state").status_code == 303
        response = client.post("/admin/backfills/run", json={"name": "agreement"},
                               headers={"X-CSRF-Token": token})
        assert response.status_code == 401, response.text


def test_a_demoted_owner_loses_the_dashboard_at_once(deployment):
    client, token = _session(deployment["base"])
    database = open_database(deployment["settings"].database_url)
    try:
        with database.begin() as connection:
            connection.execute(sa.text("UPDATE users SET role = 'admin' WHERE username = "
                                       "'olivia'"))
        assert client.get("/admin").status_code == 403
        response = client.post("/admin/backfills/cancel", json={"name": "agreement"},
                               headers={"X-CSRF-Token": token})
        assert response.status_code == 403
    finally:
        with database.begin() as connection:
            connection.execute(sa.text("UPDATE users SET role = 'owner' WHERE username = "
                                       "'olivia'"))
        database.dispose()
    refused = httpx.post(f"{deployment['base']}/admin/login",
                         data={"api_key": ANNOTATOR_KEY})
    assert refused.status_code == 403 and "owners only" in refused.text


def test_no_page_shows_a_secret(deployment):
    client, _ = _session(deployment["base"])
    password = unquote(urlsplit(deployment["url"]).password or "")
    assert password
    secrets = [password, OWNER_KEY, ANNOTATOR_KEY, SECRET, PASSWORD, "$argon2"]
    pages = [client.get(p) for p in ("/admin", "/admin/live", "/admin/state")]
    pages += [httpx.get(f"{deployment['base']}/admin/login"),
              httpx.post(f"{deployment['base']}/admin/login", data={"api_key": OWNER_KEY + "x"}),
              httpx.post(f"{deployment['base']}/admin/login", data={"api_key": ANNOTATOR_KEY})]
    for page in pages:
        for secret in secrets:
            assert secret not in page.text, (str(page.url), secret[:6])
    assert "***" in pages[0].text  # the database URL is shown, masked
