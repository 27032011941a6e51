"""The dashboard (``/admin``) in a real browser: Debian's Chromium driven by Selenium
against a real server process on loopback. An owner logs in; watches a backfill's bar
move and complete; runs a scheduled async migration and sees it FINISHED; cancels a
backfill; reindexes a dataset and sees its drift clear; an annotator is refused. Each page
is saved as a screenshot under the run's artifacts (``ANNOTA_TEST_ARTIFACTS``, default
``test-artifacts/``)."""

from __future__ import annotations

import os
import time
import uuid
from pathlib import Path

import pytest
import sqlalchemy as sa

from annota.config import Settings
from annota.server.db import open_database
from tests.api_tools import OWNER_KEY, PASSWORD
from tests.conftest import Annota, make_env, service_missing
from tests.search_tools import create_dataset, migrated
from tests.server_tools import annota_server, free_port, stop, wait_until_answering

ROOT = Path(__file__).resolve().parent.parent
ANNOTATOR_KEY = "annotator-key-" + "a" * 20
RECORDS = 12000  # a backfill over these takes seconds at this batch time: a bar to watch


@pytest.fixture(scope="module")
def artifacts() -> Path:
    where = Path(os.environ.get("ANNOTA_TEST_ARTIFACTS", ROOT / "test-artifacts"))
    (where / "screenshots").mkdir(parents=True, exist_ok=True)
    return where / "screenshots"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """A server on SQLite (the embedded search engine), with an owner, an annotator and a
    dataset of ``RECORDS`` records, indexed."""
    where = tmp_path_factory.mktemp("admin")
    env = {**make_env(where, f"sqlite:///{where / 'annota.db'}"),
           "ANNOTA_BACKFILL_BATCH_SECONDS": "0.05"}
    settings = migrated(env)
    annota = Annota(env)
    for name, role, key in (("olivia", "owner", OWNER_KEY),
                            ("arthur", "annotator", ANNOTATOR_KEY)):
        made = annota.run("server", "database", "users", "create", "--username", name,
                          "--role", role, "--password-stdin", ANNOTA_NEW_USER_API_KEY=key,
                          input_text=PASSWORD)
        assert made.returncode == 0, made.stderr
    dataset = create_dataset(settings, RECORDS, name="legacy")
    assert annota.run("server", "search-engine", "reindex").returncode == 0
    port = free_port()
    process = annota_server(env, port, where / "server.log")
    wait_until_answering(port, process)
    yield {"url": f"http://127.0.0.1:{port}", "settings": settings, "dataset": str(dataset)}
    stop(process)


@pytest.fixture(scope="module")
def browser():
    from selenium import webdriver
    from selenium.common.exceptions import WebDriverException
    from selenium.webdriver.chrome.service import Service

    binary = os.environ.get("ANNOTA_TEST_CHROMIUM") or "/usr/bin/chromium"
    driver_path = os.environ.get("ANNOTA_TEST_CHROMEDRIVER") or "/usr/bin/chromedriver"
    if not (Path(binary).exists() and Path(driver_path).exists()):
        service_missing("no Chromium: `bash scripts/test` installs chromium and "
                        "chromium-driver")
    options = webdriver.ChromeOptions()
    options.binary_location = binary
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage",
                     "--window-size=1400,1600"):
        options.add_argument(argument)
    try:
        driver = webdriver.Chrome(options=options, service=Service(driver_path))
    except WebDriverException as exc:
        service_missing(f"Chromium does not start: {exc.msg}")
    driver.implicitly_wait(0)
    yield driver
    driver.quit()


def _sql(settings: Settings, statement: str, **params) -> list:
    database = open_database(settings.database_url)
    try:
        with database.begin() as connection:
            result = connection.execute(sa.text(statement), params)
            return result.all() if result.returns_rows else []
    finally:
        database.dispose()


def _wait(condition, timeout: float = 60, every: float = 0.1):  # noqa: ANN001, ANN202
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        assert time.monotonic() < deadline, "timed out"
        time.sleep(every)


def _login(browser, server, key: str = OWNER_KEY) -> None:  # noqa: ANN001
    from selenium.webdriver.common.by import By

    browser.delete_all_cookies()
    browser.get(f"{server['url']}/admin")
    assert browser.current_url.endswith("/admin/login")  # no session: sent to log in
    browser.find_element(By.ID, "api-key").send_keys(key)
    browser.find_element(By.ID, "login").click()
    _wait(lambda: any(browser.find_elements(By.ID, page)
                      for page in ("logout", "refused", "login-error")), timeout=30)


def _cell(browser, row: str, column: int) -> str:  # noqa: ANN001
    from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException
    from selenium.webdriver.common.by import By

    try:  # the live part is redrawn every second: read it whole, again if it moved
        return browser.find_element(By.CSS_SELECTOR, f"{row} td:nth-child({column})").text
    except (NoSuchElementException, StaleElementReferenceException):
        return ""


def _click(browser, selector: str) -> None:  # noqa: ANN001
    from selenium.common.exceptions import StaleElementReferenceException
    from selenium.webdriver.common.by import By

    def clicked() -> bool:
        try:
            browser.find_element(By.CSS_SELECTOR, selector).click()
            return True
        except StaleElementReferenceException:
            return False
    _wait(clicked, timeout=10)


def _legacy(server) -> None:  # noqa: ANN001
    """The dataset's derived data never computed: its backfill jobs back to none."""
    _sql(server["settings"], "DELETE FROM backfill_jobs WHERE dataset_id = :d",
         d=uuid.UUID(server["dataset"]).hex)


def test_an_annotator_is_refused_and_a_wrong_key_too(browser, server, artifacts):
    from selenium.webdriver.common.by import By

    _login(browser, server, ANNOTATOR_KEY)
    refused = browser.find_element(By.ID, "refused").text
    assert "annotator may not use the dashboard" in refused
    browser.save_screenshot(str(artifacts / "refused-annotator.png"))
    _login(browser, server, "not-a-key")
    assert browser.find_element(By.ID, "login-error").text == "unknown API key"
    browser.save_screenshot(str(artifacts / "login-wrong-key.png"))
    browser.get(f"{server['url']}/admin")
    assert browser.current_url.endswith("/admin/login")  # still no session


def test_an_owner_watches_a_backfill_bar_move_and_complete(browser, server, artifacts):
    from selenium.webdriver.common.by import By

    _legacy(server)
    _login(browser, server)
    assert "olivia" in browser.find_element(By.TAG_NAME, "header").text
    browser.save_screenshot(str(artifacts / "dashboard.png"))
    _click(browser, 'button[data-post="/admin/backfills/run"][data-name="agreement"]'
                    ':not([data-limit])')
    row = f'tr[data-job="agreement/{server["dataset"]}"]'
    seen: list[float] = []

    def done() -> bool:
        try:
            bar = browser.find_element(By.CSS_SELECTOR, f"{row} [role=progressbar]")
            seen.append(float(bar.get_attribute("aria-valuenow")))
        except Exception:  # noqa: BLE001 - redrawn meanwhile: read it next time
            return False
        status = _cell(browser, row, 3)
        assert status != "FAILED", _cell(browser, row, 8)
        return status == "COMPLETED"

    _wait(done, timeout=120)
    moving = sorted({v for v in seen if 0 < v < 100})
    assert moving, f"the bar never showed a value between 0 and 100: {sorted(set(seen))}"
    assert seen[-1] == 100.0
    assert _cell(browser, row, 4).endswith(f"{RECORDS} / {RECORDS}")
    browser.save_screenshot(str(artifacts / "backfill-completed.png"))
    (status,) = _sql(server["settings"], "SELECT status FROM backfill_jobs WHERE name = "
                     "'agreement' AND dataset_id = :d", d=uuid.UUID(server["dataset"]).hex)
    assert status == ("COMPLETED",)


def test_an_owner_cancels_a_running_backfill(browser, server, artifacts):
    _legacy(server)
    _login(browser, server)
    _click(browser, 'button[data-post="/admin/backfills/run"][data-name="agreement"]'
                    ':not([data-limit])')
    row = f'tr[data-job="agreement/{server["dataset"]}"]'
    _wait(lambda: _cell(browser, row, 3) == "RUNNING", timeout=30, every=0.05)
    _click(browser, f'{row} button[data-post="/admin/backfills/cancel"]')
    _wait(lambda: _cell(browser, row, 3) == "CANCELED", timeout=30)
    browser.save_screenshot(str(artifacts / "backfill-canceled.png"))
    ((status, processed),) = _sql(
        server["settings"], "SELECT status, processed FROM backfill_jobs WHERE name = "
        "'agreement' AND dataset_id = :d", d=uuid.UUID(server["dataset"]).hex)
    assert status == "CANCELED" and processed < RECORDS


def test_an_owner_runs_a_scheduled_async_migration(browser, server, artifacts):
    settings = server["settings"]
    ((index,),) = _sql(settings, "SELECT index_name FROM async_migrations WHERE name = "
                       "'records_dataset_id_id_index'")
    _sql(settings, f"DROP INDEX {index}")  # scheduled, not yet run
    _sql(settings, "UPDATE async_migrations SET status = 'SCHEDULED', finished_at = NULL "
                   "WHERE name = 'records_dataset_id_id_index'")
    _login(browser, server)
    row = 'tr[data-async="records_dataset_id_id_index"]'
    assert _cell(browser, row, 3) == "SCHEDULED"
    _click(browser, f'{row} button[data-post$="/run"]')
    _wait(lambda: _cell(browser, row, 3) == "FINISHED", timeout=60)
    browser.save_screenshot(str(artifacts / "async-finished.png"))
    assert _sql(settings, "SELECT name FROM sqlite_master WHERE type = 'index' AND "
                          "name = :n", n=index) == [(index,)]


def test_an_owner_reindexes_a_drifted_dataset(browser, server, artifacts):
    settings = server["settings"]
    extra = uuid.uuid4()  # a record written past the index (as by a crashed writer)
    _sql(settings, "INSERT INTO records (id, fields, metadata, external_id, dataset_id, "
         "status, inserted_at, updated_at) SELECT :id, fields, metadata, 'extra', "
         "dataset_id, status, inserted_at, updated_at FROM records WHERE dataset_id = :d "
         "LIMIT 1", id=extra.hex, d=uuid.UUID(server["dataset"]).hex)
    _login(browser, server)
    row = f'tr[data-dataset="{server["dataset"]}"]'
    _wait(lambda: "records but" in _cell(browser, row, 4), timeout=30)
    browser.save_screenshot(str(artifacts / "index-drift.png"))
    _click(browser, f'{row} button[data-post$="/reindex"]')
    _wait(lambda: _cell(browser, row, 4) == "none", timeout=120)
    assert _cell(browser, row, 2) == _cell(browser, row, 3) == str(RECORDS + 1)
    browser.save_screenshot(str(artifacts / "index-reindexed.png"))
