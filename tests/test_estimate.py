"""``upgrade``'s time estimates: sampled from the database when nothing is recorded, then
this deployment's own rates, recorded by each run (``$ANNOTA_HOME/upgrade-rates.json``).
What is asserted is where each figure comes from and that it is the recorded rate times
the rows now; how close an estimate comes is measured in ``benchmarks/upgrade_estimate.py``."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import sqlalchemy as sa

from annota.config import Settings
from annota.server.db import open_database
from annota.server.upgrade.estimate import MIN_ROWS, RATES_FILE, Estimator, Rates
from tests.conftest import Annota, make_env
from tests.test_upgrade import NO_SEARCH, seed_at
from tests.upgrade_tools import T0, uid


def _grow(settings: Settings, records: int) -> None:
    """``records`` more records (with a response each) in release 1.0's dataset."""
    database = open_database(settings.database_url)
    try:
        with database.begin() as connection:
            meta = sa.MetaData()
            meta.reflect(connection, only=["records", "responses"])
            dataset = uid("1.0", "dataset").hex
            user = uid("1.0", "user", 0).hex
            connection.execute(meta.tables["records"].insert(), [
                {"id": uid("grow", i).hex, "fields": {"text": f"r{i}"}, "external_id": f"g{i}",
                 "dataset_id": dataset, "inserted_at": T0, "updated_at": T0}
                for i in range(records)])
            connection.execute(meta.tables["responses"].insert(), [
                {"id": uid("grow-response", i).hex, "values": {"label": {"value": "a"}},
                 "submitted": True, "record_id": uid("grow", i).hex, "user_id": user,
                 "inserted_at": T0, "updated_at": T0} for i in range(records)])
    finally:
        database.dispose()


def test_rates_scale_with_rows_and_survive_a_bad_file(tmp_path):
    settings = Settings.from_env(make_env(tmp_path, f"sqlite:///{tmp_path / 'a.db'}"))
    rates = Rates(settings)
    rates.record("backfill:agreement", 4000, 2.0)
    rates.record("backfill:record-status", MIN_ROWS - 1, 50.0)  # too few rows: no rate
    estimator = Estimator(settings)
    assert estimator.piece("backfill:agreement", 10_000) == (5.0, "recorded")
    assert rates.per_row("backfill:record-status") is None
    assert json.loads((settings.home / RATES_FILE).read_text())[
        "sqlite:backfill:agreement"]["rows"] == 4000
    (settings.home / RATES_FILE).write_text("{not json")
    assert rates.per_row("backfill:agreement") is None  # a damaged file: sampled again
    rates.record("backfill:agreement", 2000, 1.0)  # and written whole again
    assert rates.per_row("backfill:agreement") == pytest.approx(0.0005)


def test_a_home_that_cannot_be_written_loses_only_the_rates(tmp_path):
    settings = Settings.from_env(make_env(tmp_path, f"sqlite:///{tmp_path / 'a.db'}"))
    settings.home.parent.mkdir(parents=True, exist_ok=True)
    settings.home.write_text("a file where the home directory should be")
    Rates(settings).record("backup", 5000, 1.0)  # no error
    assert Rates(settings).per_row("backup") is None


def test_the_second_upgrade_estimates_from_the_rates_the_first_recorded(tmp_path):
    env = make_env(tmp_path, f"sqlite:///{tmp_path / 'annota.db'}")
    settings = Settings.from_env(env)
    seed_at(settings, "1.0")
    _grow(settings, 3000)
    database = open_database(settings.database_url)
    with database.connect() as connection:
        rows = connection.execute(sa.text(
            "SELECT (SELECT count(*) FROM records) + (SELECT count(*) FROM responses)")
        ).scalar_one()
    database.dispose()
    pristine = tmp_path / "pristine.db"
    shutil.copy(tmp_path / "annota.db", pristine)
    annota = Annota(env)

    first = annota.run("server", "upgrade", "--yes", "--json", *NO_SEARCH)
    assert first.returncode == 0, first.stderr
    plan = json.loads(first.stdout)["plan"]
    assert set(plan["estimates"]) == {"backup", "schema", "backfills"}
    assert {e["basis"] for e in plan["estimates"].values()} == {"sampled"}
    assert "estimated" in first.stderr  # each part's estimate beside its time
    recorded = json.loads((settings.home / RATES_FILE).read_text())
    assert {"sqlite:backup", "sqlite:backfill:record-status", "sqlite:backfill:agreement",
            "sqlite:revision:95afe52a5067"} <= set(recorded)
    assert recorded["sqlite:backup"]["rows"] == rows  # the records and responses then

    shutil.copy(pristine, tmp_path / "annota.db")  # the same database, upgraded again
    second = annota.run("server", "upgrade", "--dry-run", "--json", *NO_SEARCH)
    assert second.returncode == 0, second.stderr
    estimates = json.loads(second.stdout)["plan"]["estimates"]
    assert {part: e["basis"] for part, e in estimates.items()} == {
        "backup": "recorded", "schema": "recorded", "backfills": "recorded"}
    backup = recorded["sqlite:backup"]
    assert estimates["backup"]["seconds"] == pytest.approx(backup["seconds"], abs=0.01)
    agreement = recorded["sqlite:backfill:agreement"]
    assert estimates["backfills"]["seconds"] == pytest.approx(agreement["seconds"], abs=0.01)


def test_an_empty_database_is_estimated_without_a_sample(tmp_path):
    annota = Annota(make_env(tmp_path, f"sqlite:///{tmp_path / 'new.db'}"))
    result = annota.run("server", "upgrade", "--dry-run", "--json", *NO_SEARCH)
    assert result.returncode == 0, result.stderr
    estimates = json.loads(result.stdout)["plan"]["estimates"]
    assert list(estimates) == ["schema"] and estimates["schema"]["basis"] == "sampled"
    assert not Path(tmp_path / "new.db").exists()  # a dry run creates nothing
