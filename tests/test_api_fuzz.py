"""Schemathesis against the OpenAPI schema of the real server process, on SQLite and on
PostgreSQL: no request is ever a 5xx, and every 4xx leaves the database and the search
index exactly as they were. Requests carry the owner's key (so they reach past
authentication) and the live dataset's id (so they reach past 404).

Schemathesis generates the cases (valid and invalid ones, per operation) and Hypothesis runs
them; its pytest plugin is not used (it does not work with pytest 9 yet).
"""

from __future__ import annotations

import time

import httpx
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.api_tools import OWNER_KEY

EXAMPLES_PER_OPERATION = 25


def test_no_5xx_and_a_4xx_changes_nothing(api):
    root = api.base.removesuffix("/api/v1")
    schema = schemathesis.openapi.from_url(f"{root}/openapi.json")
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 18  # every endpoint of the README's tables is in the schema
    assert {o.path for o in operations} >= {"/admin/state", "/admin/backfills/{action}",
                                            "/admin/async/{name}/run",
                                            "/admin/datasets/{dataset_id}/reindex",
                                            "/api/v1/datasets/{dataset_id}/reindex",
                                            "/api/v1/tasks/{task_id}"}
    for operation in operations:
        fuzz(api, root, operation)


def fuzz(api, root: str, operation) -> None:  # noqa: ANN001
    session = _session(root)
    strategy = st.one_of(operation.as_strategy(schemathesis.GenerationMode.POSITIVE),
                         operation.as_strategy(schemathesis.GenerationMode.NEGATIVE))

    @settings(max_examples=EXAMPLES_PER_OPERATION, deadline=None, database=None,
              suppress_health_check=list(HealthCheck))
    @given(case=strategy)
    def check(case) -> None:  # noqa: ANN001
        if case.path_parameters and "dataset_id" in case.path_parameters:
            case.path_parameters["dataset_id"] = api.dataset_id
        if isinstance(case.body, dict) and "workspace_id" in case.body:
            case.body["workspace_id"] = api.workspace_id  # past "no such workspace"
        before = api.snapshot()
        headers = {"X-Annota-Api-Key": OWNER_KEY}
        if case.operation.path.startswith("/admin/"):  # the dashboard's: a session and its token
            headers = {"X-CSRF-Token": session["csrf"], "Cookie": session["cookie"]}
        response = case.call(base_url=root, headers=headers)
        what = (case.method, case.formatted_path, case.query, case.body)
        assert response.status_code < 500, (*what, response.status_code, response.text)
        if response.status_code == 202 and case.formatted_path.endswith("/reindex"):
            _finished(root, response.json()["id"])  # a client polls its task to the end
        if 400 <= response.status_code < 500:
            assert api.snapshot() == before, (*what, response.status_code)

    check()


def _finished(root: str, task_id: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while True:
        task = httpx.get(f"{root}/api/v1/tasks/{task_id}",
                         headers={"X-Annota-Api-Key": OWNER_KEY}).json()
        if task["status"] in ("finished", "failed"):
            assert task["status"] == "finished", task
            return
        assert time.monotonic() < deadline, task
        time.sleep(0.1)


def _session(root: str) -> dict[str, str]:
    """The owner logged in to the dashboard: its cookie and CSRF token."""
    import re

    client = httpx.Client(base_url=root, timeout=30)
    client.post("/admin/login", data={"api_key": OWNER_KEY})
    page = client.get("/admin")
    csrf = re.search(r'name="csrf-token" content="([^"]+)"', page.text).group(1)
    cookie = "; ".join(f"{k}={v}" for k, v in client.cookies.items())
    return {"csrf": csrf, "cookie": cookie}
