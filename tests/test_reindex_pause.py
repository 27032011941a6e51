"""A reindex pauses a dataset's writers only to check what they changed since its
whole-dataset proof: clients import through the API throughout a reindex, on SQLite and
PostgreSQL, and none is refused; the index ends equal to the database by identity. The
pause is measured and printed (its bound is a benchmark's business, not an assertion)."""

from __future__ import annotations

import json
import threading

import pytest

from tests.api_tools import OWNER_KEY, live_api, pg_database
from tests.conftest import Annota


@pytest.fixture(params=["sqlite", "postgresql"])
def any_database(request, tmp_path):
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'annota.db'}"
    url, drop = pg_database(request.getfixturevalue("postgres_server_url"))
    request.addfinalizer(drop)
    return url


def test_clients_importing_throughout_a_reindex_are_never_refused(tmp_path, any_database,
                                                                   elasticsearch_url):
    with live_api(tmp_path, any_database, elasticsearch_url) as api:
        path = f"/datasets/{api.dataset_id}/records"
        for start in range(0, 3000, 500):
            seeded = api.call("POST", path, json={"records": [api.record(i) for i in
                                                              range(start, start + 500)]})
            assert seeded.status_code == 201, seeded.text
        stop, answers, lock = threading.Event(), [], threading.Lock()

        def client(first: int) -> None:
            """Imports of 50-300 records, new ones and updates by external id, nonstop."""
            import httpx

            n = first
            with httpx.Client(timeout=120) as http:
                while not stop.is_set():
                    size = 50 + n % 250
                    batch = [api.record(i) for i in range(n, n + size)]
                    batch += [api.record(n % 3000, fields={"text": f"updated {n}"})]
                    answer = http.post(f"{api.base}{path}", json={"records": batch},
                                       headers={"X-Annota-Api-Key": OWNER_KEY})
                    with lock:
                        answers.append((answer.status_code, answer.text[:200]))
                    n += size

        clients = [threading.Thread(target=client, args=(100_000 * (k + 1),))
                   for k in range(2)]
        for c in clients:
            c.start()
        try:
            while len(answers) < 4:  # both clients at work before the reindex starts
                stop.wait(0.1)
            before = len(answers)
            run = Annota(api.env).run("server", "search-engine", "reindex", "--json",
                                      "--batch-size", "200", timeout=600)
            during = len(answers) - before
        finally:
            stop.set()
            for c in clients:
                c.join(timeout=180)
        assert run.returncode == 0, run.stdout + run.stderr
        (result,) = json.loads(run.stdout)["datasets"]
        assert result["swapped"] and result["writers_paused_seconds"] is not None
        print(f"\nwriters paused {result['writers_paused_seconds'] * 1000:.0f} ms; "
              f"{during} imports during a {result['seconds']:.1f} s reindex")
        assert during > 0  # clients imported while the index was rebuilt
        refused = [a for a in answers if a[0] != 201]
        assert refused == [] and len(answers) > before
        verified = Annota(api.env).run("server", "search-engine", "status", "--verify")
        assert verified.returncode == 0, verified.stdout + verified.stderr

