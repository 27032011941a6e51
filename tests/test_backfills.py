"""Backfills on SQLite and PostgreSQL: results on hand-computed fixtures, job accounting."""

from __future__ import annotations

import json
import threading
import time
from collections import Counter

import pytest
import sqlalchemy as sa

from annota.server.domain import models as m
from annota.server.domain.agreement import question_alphas
from annota.server.domain.krippendorff import alpha_nominal, percent_agreement
from annota.server.jobs import backfill_jobs as job_states
from tests.backfill_tools import (
    EXPECTED_ALPHA,
    EXPECTED_PERCENT,
    EXPECTED_STATUS_1,
    EXPECTED_STATUS_2,
    expected_statuses,
    legacy_database,
    statuses,
)
from tests.conftest import Annota

JOBS = m.BackfillJob.__table__


def test_krippendorff_alpha_on_known_examples():
    # Krippendorff (2011), "Computing Krippendorff's alpha-reliability": 4 coders, 12 units,
    # nominal alpha = 0.743
    coders = [[1, 2, 3, 3, 2, 1, 4, 1, 2, None, None, None],
              [1, 2, 3, 3, 2, 2, 4, 1, 2, 5, None, 3],
              [None, 3, 3, 3, 2, 3, 4, 2, 2, 5, 1, None],
              [1, 2, 3, 3, 2, 4, 4, 1, 2, 5, 1, None]]
    units = [Counter(str(v) for v in unit if v is not None) for unit in zip(*coders, strict=True)]
    assert round(alpha_nominal(units), 3) == 0.743
    # two coders, four units, by hand: 1 - 7 * 2 / (2 * 3 * 5)
    two = [Counter("aa"), Counter("ab"), Counter("bb"), Counter("bb")]
    assert alpha_nominal(two) == pytest.approx(1 - 14 / 30)
    assert alpha_nominal([Counter("aa"), Counter("aa")]) is None  # no variation at all
    assert alpha_nominal([Counter("a"), Counter("b")]) is None  # nothing pairable
    assert percent_agreement(Counter("aab")) == pytest.approx(1 / 3)
    assert percent_agreement(Counter("a")) is None


def test_migration_registers_jobs_and_backfills_compute_the_fixture(annota, settings, db):
    ids = legacy_database(settings, db)
    with db.connect() as connection:
        registered = connection.execute(sa.select(JOBS.c.name, JOBS.c.status)).all()
    assert sorted(registered) == sorted(
        [("agreement", "PENDING")] * 2 + [("record-status", "PENDING")] * 2)
    assert annota.invoke("server", "database", "backfills", "status").exit_code == 3
    assert "backfills: 4 PENDING" in annota.invoke("server", "database", "current").stdout

    for name in ("record-status", "agreement"):
        result = annota.invoke("server", "database", "backfills", "run", name, "--all",
                               "--batch-size", "2")
        assert result.exit_code == 0, result.output
        assert f"{name}: queued 2, skipped 0" in result.stdout
    assert statuses(db, ids["overlap-1"]) == EXPECTED_STATUS_1
    assert statuses(db, ids["overlap-2"]) == EXPECTED_STATUS_2

    agreements = m.RecordAgreement.__table__
    records = m.Record.__table__
    with db.connect() as connection:
        got = dict(connection.execute(
            sa.select(records.c.external_id, agreements.c.percent_agreement)
            .join(records, records.c.id == agreements.c.record_id)
            .where(records.c.dataset_id == ids["overlap-1"])).all())
        alphas = question_alphas(connection, ids["overlap-1"])
    assert got.keys() == EXPECTED_PERCENT.keys()  # rating questions get no agreement rows
    for record, value in EXPECTED_PERCENT.items():
        assert got[record] == (pytest.approx(value) if value is not None else None), record
    assert alphas == {"label": pytest.approx(EXPECTED_ALPHA)}

    done = annota.invoke("server", "database", "backfills", "status", "--json")
    assert done.exit_code == 0
    data = json.loads(done.stdout)
    assert data["totals"]["completed"] == 4
    assert all(j["processed"] == j["total"] for j in data["jobs"])


def test_new_writes_keep_derived_data_current(settings, db, env):
    from annota.server.domain import datasets

    ids = legacy_database(settings, db)
    annota = Annota(env)
    annota.invoke("server", "database", "backfills", "run", "agreement", "--all")
    with db.begin() as connection:
        users = connection.execute(sa.select(m.User.id).order_by(m.User.username)).scalars().all()
        new = datasets.import_records(connection, ids["overlap-1"], [{
            "fields": {"text": "new"}, "external_id": "n1",
            "responses": [{"user_id": users[0], "values": {"label": {"value": "a"}}},
                          {"user_id": users[1], "values": {"label": {"value": "b"}}}],
        }])
    assert statuses(db, ids["overlap-1"])["n1"] == "completed"
    with db.connect() as connection:
        row = connection.execute(sa.select(m.RecordAgreement.percent_agreement)
                                 .where(m.RecordAgreement.record_id == new[0])).scalar_one()
        alphas = question_alphas(connection, ids["overlap-1"])
    assert row == 0.0
    # one more disagreeing unit: o_ab = o_ba = 3, n_a = 6, n_b = 7, n = 13
    assert alphas["label"] == pytest.approx(1 - 12 * 6 / (169 - 36 - 49))


def test_limit_skip_and_force_accounting(sqlite_annota, tmp_path):
    from annota.config import Settings
    from annota.server.db import open_database

    settings = Settings.from_env(sqlite_annota.env)
    db = open_database(settings.database_url)
    legacy_database(settings, db)
    with db.begin() as connection:  # a third dataset, created after the migration
        from annota.server.domain import datasets

        workspace = connection.execute(sa.select(m.Workspace.id)).scalar_one()
        datasets.create_dataset(connection, workspace_id=workspace, name="later",
                                fields=[{"name": "text", "type": "text"}],
                                questions=[{"name": "label", "type": "label_selection",
                                            "options": ["a", "b"]}])
    db.dispose()

    def run(*args: str) -> dict:
        result = sqlite_annota.invoke("server", "database", "backfills", "run",
                                      "record-status", *args, "--json")
        assert result.exit_code == 0, result.output
        return json.loads(result.stdout)

    assert (lambda d: (d["queued"], d["skipped"], d["remaining"]))(run("--limit", "2")) == (2, 0, 1)
    assert (lambda d: (d["queued"], d["skipped"], d["remaining"]))(run("--limit", "2")) == (1, 2, 0)
    assert (lambda d: (d["queued"], d["skipped"], d["remaining"]))(run("--all")) == (0, 3, 0)
    forced = run("--all", "--force")
    assert (forced["queued"], forced["skipped"]) == (3, 0)
    assert set(forced["final"].values()) == {"COMPLETED"}
    usage = sqlite_annota.invoke("server", "database", "backfills", "run", "record-status")
    assert usage.exit_code == 2 and "exactly one of" in usage.stderr
    unknown = sqlite_annota.invoke("server", "database", "backfills", "run", "nope", "--all")
    assert unknown.exit_code == 11 and "no backfill named 'nope'" in unknown.stderr


def _job(db, dataset_id, name: str = "record-status"):  # noqa: ANN001, ANN202
    with db.connect() as connection:
        return connection.execute(sa.select(JOBS).where(
            JOBS.c.dataset_id == dataset_id, JOBS.c.name == name)).one()


def test_cancel_between_batches_then_resume_gives_the_same_result(settings, db, env):
    ids = legacy_database(settings, db, extra_records=200)
    dataset = ids["overlap-1"]
    with db.begin() as connection:
        (job_id,) = job_states.queue_jobs(connection, "record-status",
                                          dataset_id=str(dataset)).queued
    worker = threading.Thread(target=job_states.run_job, args=(db, job_id),
                              kwargs={"batch_size": 5, "batch_seconds": None})
    worker.start()
    while _job(db, dataset).processed < 50:
        time.sleep(0.01)
    annota = Annota(env)
    assert annota.invoke("server", "database", "backfills", "cancel", "record-status",
                         "--dataset-id", str(dataset)).stdout.startswith("Canceled 1")
    worker.join(timeout=60)
    stopped = _job(db, dataset)
    assert stopped.status == "CANCELED" and 0 < stopped.processed < stopped.total
    assert stopped.cursor is not None

    result = annota.invoke("server", "database", "backfills", "run", "record-status",
                           "--dataset-id", str(dataset), "--batch-size", "50")
    assert result.exit_code == 0, result.output
    resumed = _job(db, dataset)
    assert (resumed.status, resumed.processed, resumed.attempts) == (
        "COMPLETED", resumed.total, 2)
    assert statuses(db, dataset) == expected_statuses(db, dataset, 1)


def test_a_failed_job_records_its_error_and_is_retried(settings, db, env):
    ids = legacy_database(settings, db)
    dataset = ids["overlap-2"]
    datasets_table = m.Dataset.__table__
    with db.begin() as connection:
        connection.execute(sa.update(datasets_table).where(datasets_table.c.id == dataset)
                           .values(distribution={"min_submitted": "two"}))
    annota = Annota(env)
    failed = annota.invoke("server", "database", "backfills", "run", "record-status",
                           "--dataset-id", str(dataset))
    assert failed.exit_code == 4
    job = _job(db, dataset)
    assert job.status == "FAILED" and "ValueError" in job.last_error
    listed = json.loads(annota.invoke("server", "database", "backfills", "list",
                                      "--status", "failed", "--json").stdout)
    assert [j["dataset_id"] for j in listed] == [str(dataset)]
    assert annota.invoke("server", "database", "backfills", "status").exit_code == 4

    with db.begin() as connection:
        connection.execute(sa.update(datasets_table).where(datasets_table.c.id == dataset)
                           .values(distribution={"strategy": "overlap", "min_submitted": 2}))
    retried = annota.invoke("server", "database", "backfills", "run", "record-status",
                            "--dataset-id", str(dataset))
    assert retried.exit_code == 0, retried.output
    job = _job(db, dataset)
    assert (job.status, job.attempts, job.last_error) == ("COMPLETED", 2, None)
    assert statuses(db, dataset) == EXPECTED_STATUS_2


def test_only_legal_transitions(settings, db):
    ids = legacy_database(settings, db)
    with db.begin() as connection:
        job = JOBS.c.dataset_id == ids["overlap-1"]
        assert job_states.transition(connection, job, "RUNNING") == 0  # PENDING -/-> RUNNING
        assert job_states.transition(connection, job, "COMPLETED") == 0
        assert job_states.transition(connection, job, "QUEUED") == 2
        assert job_states.transition(connection, job, "QUEUED") == 0  # already there
        assert job_states.transition(connection, job, "CANCELED") == 2
        assert job_states.transition(connection, job, "FAILED") == 0  # CANCELED -/-> FAILED


@pytest.mark.parametrize(("target", "grows"), [(10.0, True), (1e-6, False)])
def test_batches_adapt_their_size_to_the_target_transaction_time(settings, db, target,
                                                                 grows):
    """Far above what a batch takes, sizes double; far below, they halve (to the floor),
    and the result is the same."""
    ids = legacy_database(settings, db, extra_records=3000)
    dataset = ids["overlap-1"]
    with db.begin() as connection:
        (job_id,) = job_states.queue_jobs(connection, "record-status",
                                          dataset_id=str(dataset)).queued
    sizes: list[int] = []
    status = job_states.run_job(db, job_id, batch_size=100, batch_seconds=target,
                                on_batch=lambda n, seconds: sizes.append(n))
    assert status == "COMPLETED"
    full = sizes[:-1]  # the last batch is whatever was left
    if grows:
        assert full[:4] == [100, 200, 400, 800], sizes
    else:
        assert full[:4] == [100, 50, 25, 12] and set(full[5:]) == {10}, sizes
    assert sum(sizes) == _job(db, dataset).total
    assert statuses(db, dataset) == expected_statuses(db, dataset, 1)
