"""History integrity: each applied revision's file checksum is recorded, and `check`
reports a revision file changed after it was applied (as Flyway's validate does)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import sqlalchemy as sa

from annota.server.schema import checksums
from annota.server.schema import migrate as migrations
from annota.server.schema.history import history

ROOT = Path(__file__).resolve().parent.parent
CHANGED = "0901a4f98754"  # 2.0's external-id index


def recorded(db: sa.Engine) -> dict[str, str]:
    with db.connect() as connection:
        return dict(connection.execute(sa.select(checksums.TABLE.c.revision,
                                                 checksums.TABLE.c.checksum)).all())


def test_every_revision_applied_in_a_run_is_recorded(settings, db):
    migrations.migrate(settings)
    hist = history()
    assert recorded(db) == {r.revision: checksums.checksum(r) for r in hist.revisions}
    # below the release that made the table, and back: only what this run applied
    before = hist.get("8c2f4e6a1d07").down_revision
    migrations.migrate(settings, before, confirm=lambda plan: True, backup=False)
    with db.connect() as connection:
        assert not sa.inspect(connection).has_table("revision_checksums")
    migrations.migrate(settings)
    made_table = hist.position("8c2f4e6a1d07") - 1
    assert set(recorded(db)) == {r.revision for r in hist.revisions[made_table:]}


def test_check_reports_a_revision_file_changed_after_it_was_applied(annota, settings, db,
                                                                      tmp_path):
    migrations.migrate(settings)
    assert annota.run("server", "database", "check").returncode == 0
    # the same annota, but one released revision edited after it was applied here
    copy = tmp_path / "edited"
    shutil.copytree(ROOT / "annota", copy / "annota",
                    ignore=shutil.ignore_patterns("__pycache__"))
    (path,) = (copy / "annota" / "alembic" / "versions").glob(f"*_{CHANGED}_*.py")
    path.write_text(path.read_text() + "\n# edited after release\n")
    before = recorded(db)
    result = subprocess.run([sys.executable, "-m", "annota", "server", "database", "check"],
                            cwd=copy, env=annota.env, capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 14, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 2 and "up to date" in lines[0]
    assert f"revision {CHANGED} (2.0) changed after it was applied" in lines[1]
    assert "Traceback" not in result.stderr
    assert recorded(db) == before  # check changes nothing


def test_check_reports_a_live_schema_changed_by_hand(annota, settings, db):
    migrations.migrate(settings)
    with db.begin() as connection:
        connection.exec_driver_sql("ALTER TABLE records ADD COLUMN rogue INTEGER")
        connection.exec_driver_sql("DROP INDEX ix_records_dataset_id_external_id")
    result = annota.run("server", "database", "check")
    assert result.returncode == 15, result.stderr
    lines = result.stderr.strip().splitlines()
    assert "up to date" in lines[0] and "Traceback" not in result.stderr
    drift = sorted(lines[1:])
    assert len(drift) == 2, drift
    assert "column records.rogue: not in the models" in drift[0]
    assert ("index ix_records_dataset_id_external_id on records: missing from the "
            "database") in drift[1]
