"""Edges an operator meets on a bad day, as the command line shows them: every numeric
option given a number that is none (nan, inf, negative), a home under a regular file, an
unreachable Redis with a password in its URL. One line, the documented exit code, nothing
changed and no secret printed."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import click
import pytest
import sqlalchemy as sa
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from annota.cli import cli
from annota.commands.common import Seconds
from tests.conftest import Annota, make_env
from tests.test_cli import all_commands

NUMERIC = (click.IntRange, click.FloatRange, Seconds, type(click.INT), type(click.FLOAT))


def numeric_options() -> list[tuple[tuple[str, ...], str]]:
    """(command path, option) for every numeric option of every command."""
    found = []
    for path, command in all_commands(cli):
        for param in command.params:
            if isinstance(param, click.Option) and isinstance(param.type, NUMERIC):
                found.append((path, param.opts[0]))
    return found


OPTIONS = numeric_options()
NOT_A_NUMBER = st.one_of(
    st.sampled_from(["nan", "NaN", "inf", "-inf", "Infinity", "1e999", "-1", "-0.5"]),
    st.floats(max_value=-1e-9, allow_nan=False).map(repr),
    st.integers(max_value=-1).map(str))


def test_the_walk_finds_the_numeric_options():
    names = {(" ".join(p), o) for p, o in OPTIONS}
    assert ("server database check", "--wait") in names
    assert ("server database backfills run", "--batch-size") in names
    assert ("server search-engine reindex", "--wait") in names
    assert ("server start", "--port") in names


@settings(max_examples=150, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(option=st.sampled_from(OPTIONS), value=NOT_A_NUMBER)
def test_every_numeric_option_refuses_nan_inf_and_negatives(tmp_path, option, value):
    path, name = option
    args = [*path, f"{name}={value}"]
    if path[-1] == "run" and path[-2] == "backfills":
        args[len(path):len(path)] = ["record-status", "--all"]
    result = CliRunner().invoke(cli, args, env=make_env(tmp_path, None))
    assert result.exit_code == 2, (args, result.output)
    assert result.stdout == ""
    assert re.fullmatch(rf"Error: [^\n]*{re.escape(name)}[^\n]*\n", result.stderr), result.stderr
    assert not (tmp_path / "home").exists()  # nothing was created


def test_check_wait_nan_returns_at_once(tmp_path):
    """It once waited forever: no comparison with nan is ever true."""
    result = subprocess.run([sys.executable, "-m", "annota", "server", "database", "check",
                             "--wait", "nan"], env=make_env(tmp_path, None),
                            capture_output=True, text=True, timeout=30)
    assert result.returncode == 2 and result.stderr.count("\n") == 1, result.stderr


# what each says of a home that cannot exist: those that must create it, exit 2 naming the
# file in the way; those that only read find no database (current reports it, exit 0)
HOME_COMMANDS = {("server", "database", "migrate"): 2,
                 ("server", "upgrade", "--yes", "--exclude", "search"): 2,
                 ("server", "database", "current"): 0, ("server", "database", "check"): 3,
                 ("server", "database", "backfills", "list"): 3,
                 ("server", "database", "users", "list"): 3}


@pytest.mark.parametrize("command", HOME_COMMANDS, ids=" ".join)
def test_a_home_under_a_regular_file_is_one_line(tmp_path, command):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory\n")
    env = {**make_env(tmp_path, None), "ANNOTA_HOME": str(blocker / "sub" / "home")}
    result = Annota(env).run(*command)
    assert "Traceback" not in result.stderr
    assert result.returncode == HOME_COMMANDS[command], result.stderr
    if result.returncode:
        assert result.stderr.count("\n") == 1, result.stderr  # check says it without "Error:"
    if result.returncode == 2:
        assert "a-file/sub/home" in result.stderr and "ANNOTA_HOME" in result.stderr
    assert blocker.read_text() == "not a directory\n"


def _jobs(url: str) -> list[tuple]:
    from tests.conftest import sqlalchemy_url

    db = sa.create_engine(sqlalchemy_url(url))
    try:
        with db.connect() as connection:
            return [tuple(r) for r in connection.execute(sa.text(
                "SELECT id, status, attempts, queued_at FROM backfill_jobs ORDER BY id"))]
    finally:
        db.dispose()


def test_an_unreachable_redis_is_exit_5_masked_and_changes_nothing(annota, tmp_path,
                                                                   database_url):
    from annota.config import Settings
    from annota.server import db as dbs
    from annota.server.domain import datasets

    assert annota.run("server", "database", "migrate").returncode == 0
    database = dbs.open_database(Settings.from_env(annota.env).database_url)
    with database.begin() as connection:
        workspace = datasets.create_workspace(connection, "w")
        datasets.create_dataset(connection, workspace_id=workspace, name="d",
                                fields=[{"name": "t", "type": "text"}], questions=[])
    database.dispose()
    assert annota.run("server", "database", "backfills", "status").returncode == 3
    before = _jobs(database_url)
    redis = "redis://:redis-s3cret@127.0.0.1:1/0"  # a closed port
    result = annota.run("server", "database", "backfills", "run", "record-status", "--all",
                        ANNOTA_REDIS_URL=redis)
    assert result.returncode == 5, result.stderr
    assert re.fullmatch(r"Error: cannot reach Redis at redis://:\*\*\*@127\.0\.0\.1:1/0: [^\n]*\n",
                        result.stderr), result.stderr
    assert "s3cret" not in result.stdout + result.stderr
    assert _jobs(database_url) == before  # no job was marked QUEUED for a queue never reached
    assert Path(tmp_path).exists()
