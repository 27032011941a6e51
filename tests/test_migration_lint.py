"""A migration linter (Squawk) on the PostgreSQL SQL of every upgrade.

Each revision's upgrade is rendered offline (Alembic's ``--sql``, as
``migrate --sql`` does) and checked by Squawk. What a released revision may break is
listed in ``tests/migration_lint.toml`` with the reason; a new revision must pass clean.
"""

from __future__ import annotations

import io
import json
import shutil
import subprocess
from pathlib import Path

import pytest
import tomllib

from annota.server.schema.history import history
from annota.server.schema.migrate import _alembic_config
from tests.conftest import service_missing

ALLOWED = tomllib.loads((Path(__file__).parent / "migration_lint.toml").read_text())


@pytest.fixture(scope="module")
def reported(tmp_path_factory) -> dict[str, set[str]]:
    """{revision: the Squawk rules its upgrade's SQL breaks}."""
    from alembic import command

    squawk = shutil.which("squawk")
    if not squawk:
        service_missing("no squawk: it comes with `pip install -e '.[test]'` (squawk-cli)")
    folder = tmp_path_factory.mktemp("lint")
    for revision in history().revisions:
        buffer = io.StringIO()
        config = _alembic_config()
        config.output_buffer = buffer
        config.attributes["url"] = "postgresql+psycopg://lint@localhost/lint"
        command.upgrade(config, f"{revision.down_revision or 'base'}:{revision.revision}",
                        sql=True)
        (folder / f"{revision.revision}.sql").write_text(buffer.getvalue())
    run = subprocess.run([squawk, "--reporter", "json", "--pg-version", "15",
                          *sorted(str(p) for p in folder.glob("*.sql"))],
                         capture_output=True, text=True, timeout=120)
    found: dict[str, set[str]] = {r.revision: set() for r in history().revisions}
    for violation in json.loads(run.stdout or "[]"):
        found[Path(violation["file"]).stem].add(violation["rule_name"])
    return found


def test_every_upgrade_passes_the_linter_or_is_listed_with_a_reason(reported):
    unexplained = {revision: sorted(rules - set(ALLOWED["everywhere"])
                                    - set(ALLOWED["released"].get(revision, {})))
                   for revision, rules in reported.items()}
    assert {r: v for r, v in unexplained.items() if v} == {}


def test_the_linter_really_runs(reported):
    # the timeouts migrate sets on its session are missing from every file with DDL
    assert sum("require-lock-timeout" in rules for rules in reported.values()) > 10


def test_only_released_revisions_are_excused_and_every_excuse_still_applies(reported):
    hist = history()
    newest = hist.get(hist.revisions[-1].revision).release
    for revision, rules in ALLOWED["released"].items():
        assert revision in hist, revision
        assert hist.get(revision).release != newest, f"{revision} is not released yet"
        assert set(rules) <= reported[revision], (revision, set(rules) - reported[revision])
        assert all(reason.strip() for reason in rules.values())
