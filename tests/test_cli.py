"""The database commands through click's CliRunner, on SQLite and PostgreSQL."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import click
import pytest
import sqlalchemy as sa

from annota.cli import cli
from annota.config import Settings
from annota.server.schema import migrate as migrations
from annota.server.schema.history import history
from tests.conftest import Annota, make_env, sqlalchemy_url

HEAD = history().head
R17 = history().resolve("1.7")


def current_of(annota: Annota) -> str | None:
    return migrations.status(Settings.from_env(annota.env)).current


def all_commands(group: click.Group, path: tuple[str, ...] = ()):
    for name, command in group.commands.items():
        yield (*path, name), command
        if isinstance(command, click.Group):
            yield from all_commands(command, (*path, name))


def test_every_command_has_help_with_an_example():
    for path, command in all_commands(cli):
        assert command.help, f"{' '.join(path)} has no help"
        if not isinstance(command, click.Group) or path == ("server", "database"):
            assert "Example" in command.help, f"{' '.join(path)} has no example"


def test_revisions_json_marks_the_current_release(annota):
    empty = json.loads(annota.invoke("server", "database", "revisions", "--json").stdout)
    assert empty["status"]["state"] == "empty"
    assert not any(r["current"] for r in empty["releases"] + empty["history"])
    assert annota.invoke("server", "database", "migrate", "-r", "1.7").exit_code == 0
    data = json.loads(annota.invoke("server", "database", "revisions", "--json").stdout)
    assert [r["release"] for r in data["releases"] if r["current"]] == ["1.7"]
    assert [r["revision"] for r in data["history"] if r["current"]] == [R17]
    assert data["status"]["current"] == {"revision": R17, "release": "1.7"}
    assert len(data["history"]) == len(history().revisions)
    assert set(data["history"][0]) == {
        "revision", "down_revision", "release", "description", "data_loss_on_downgrade",
        "tag", "current",
    }
    text = annota.invoke("server", "database", "revisions").stdout
    assert f"* {R17}" in text.replace("  ", " ") and "<- current" in text


def test_current_reports_each_state(annota):
    def state() -> dict:
        result = annota.invoke("server", "database", "current", "--json")
        assert result.exit_code == 0
        return json.loads(result.stdout)

    assert state()["state"] == "empty"
    assert state()["behind_by"] == len(history().revisions)
    annota.invoke("server", "database", "migrate", "-r", "1.7")
    behind = state()
    assert behind["state"] == "behind"
    assert behind["behind_by"] == len(history().revisions) - history().position(R17)
    assert behind["app_version"] and behind["head"]["revision"] == HEAD.revision
    annota.invoke("server", "database", "migrate")
    assert state()["state"] == "up_to_date"
    info = annota.invoke("server", "database", "info")
    assert "up to date" in info.stdout and HEAD.revision in info.stdout


def stamp_unknown_revision(annota: Annota) -> None:
    db = sa.create_engine(sqlalchemy_url(annota.env["ANNOTA_DATABASE_URL"]))
    with db.begin() as connection:
        connection.execute(sa.text("UPDATE alembic_version SET version_num = 'ffffffffffff'"))
    db.dispose()


def test_check_exit_codes_and_a_schema_from_the_future(annota):
    assert annota.invoke("server", "database", "check").exit_code == 3  # empty
    annota.invoke("server", "database", "migrate", "-r", "1.5")
    behind = annota.invoke("server", "database", "check")
    assert behind.exit_code == 3 and "annota server database migrate" in behind.stderr
    annota.invoke("server", "database", "migrate")
    assert annota.invoke("server", "database", "check").exit_code == 0
    stamp_unknown_revision(annota)
    assert annota.invoke("server", "database", "check").exit_code == 4
    assert json.loads(annota.invoke("server", "database", "current", "--json").stdout)[
        "state"] == "ahead"
    refused = annota.invoke("server", "database", "migrate", "-r", "1.7", "--yes")
    assert refused.exit_code == 4
    assert "ffffffffffff" in refused.stderr and "newer annota" in refused.stderr


def test_migrate_prints_the_plan_and_a_line_per_revision(annota):
    result = annota.invoke("server", "database", "migrate", "--revision", "1.7")
    assert result.exit_code == 0, result.output
    plan = history().plan(None, R17)
    for step in plan.steps:
        r = step.revision
        assert f"upgrade   {r.revision}  {r.release}" in result.stdout
        assert f"Applied {r.revision} ({r.release}) in " in result.stdout
    assert current_of(annota) == R17
    again = annota.invoke("server", "database", "migrate", "--revision", "1.7")
    assert again.exit_code == 0 and "Nothing to do" in again.stdout


def test_a_downgrade_without_a_terminal_is_refused_unless_yes(annota):
    annota.invoke("server", "database", "migrate")
    refused = annota.invoke("server", "database", "migrate", "-r", "1.7")
    assert refused.exit_code == 7
    assert "--yes" in refused.stderr
    assert "LOSES DATA" in refused.stdout  # the plan was shown before refusing
    assert current_of(annota) == HEAD.revision
    done = annota.invoke("server", "database", "migrate", "-r", "1.7", "--yes")
    assert done.exit_code == 0, done.output
    assert "Reverted" in done.stdout
    assert current_of(annota) == R17


def test_migrate_json_shape(annota):
    result = annota.invoke("server", "database", "migrate", "-r", "1.1", "--json")
    data = json.loads(result.stdout)  # stdout is only the JSON; progress went to stderr
    assert "Plan: upgrade" in result.stderr
    assert data["direction"] == "upgrade"
    assert data["from"] == {"revision": None, "release": None}
    assert data["to"]["release"] == "1.1"
    assert [s["revision"] for s in data["steps"]] == [
        s.revision.revision for s in history().plan(None, history().resolve("1.1")).steps
    ]
    assert all(s["seconds"] >= 0 for s in data["steps"])
    down = json.loads(
        annota.invoke("server", "database", "migrate", "-r", "1.0", "--yes", "--json").stdout
    )
    assert down["direction"] == "downgrade"
    assert down["steps"][0]["data_loss"]


def test_unknown_release_lists_the_known_ones(annota):
    result = annota.invoke("server", "database", "migrate", "-r", "3.9")
    assert result.exit_code == 1
    assert "unknown release or revision '3.9'" in result.stderr
    assert "1.7" in result.stderr and "2.0" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_sqlite_downgrade_is_backed_up_first(sqlite_annota):
    sqlite_annota.invoke("server", "database", "migrate")
    db_file = Path(Settings.from_env(sqlite_annota.env).database_url.sqlite_path)
    result = sqlite_annota.invoke("server", "database", "migrate", "-r", "1.7", "--yes")
    backups = list(db_file.parent.glob("annota.db.*.bak"))
    assert len(backups) == 1 and str(backups[0]) in result.stdout
    with sqlite3.connect(backups[0]) as copy:  # the copy is the database before the downgrade
        assert copy.execute("SELECT version_num FROM alembic_version").fetchone()[0] == (
            HEAD.revision
        )
    sqlite_annota.invoke("server", "database", "migrate", "-r", "1.5", "--yes", "--no-backup")
    assert len(list(db_file.parent.glob("annota.db.*.bak"))) == 1


def test_sql_is_printed_not_run_on_postgresql(pg_annota):
    result = pg_annota.invoke("server", "database", "migrate", "--sql")
    assert result.exit_code == 0
    assert "CREATE TABLE users" in result.stdout and "CREATE TABLE vectors" in result.stdout
    assert current_of(pg_annota) is None
    pg_annota.invoke("server", "database", "migrate")
    down = pg_annota.invoke("server", "database", "migrate", "-r", "1.7", "--sql")
    assert "DROP INDEX ix_records_dataset_id_external_id" in down.stdout
    assert current_of(pg_annota) == HEAD.revision


def test_sql_on_sqlite_says_why_not(sqlite_annota):
    result = sqlite_annota.invoke("server", "database", "migrate", "--sql")
    assert result.exit_code == 2
    assert "not available on SQLite" in result.stderr


def test_passwords_never_appear(pg_annota, postgres_server_url, tmp_path):
    password = Settings.from_env(pg_annota.env).database_url.password
    assert password
    outputs = [
        pg_annota.invoke("server", "database", "migrate", "--json"),
        pg_annota.invoke("server", "database", "current"),
        pg_annota.invoke("server", "database", "revisions", "--json"),
        pg_annota.invoke("server", "database", "migrate", "-r", "1.0", "--yes"),
    ]
    for result in outputs:
        assert result.exit_code == 0, result.output
        assert password not in result.output and "***" in result.output


@pytest.mark.parametrize(
    ("url", "code", "message"),
    [
        ("postgresql://annota:Sup3r-s3cret@127.0.0.1:1/annota", 5, "cannot open the database"),
        ("postgresql://annota:Sup3r-s3cret@127.0.0.1:port/annota", 2, "malformed"),
        ("mysql://annota:Sup3r-s3cret@localhost/annota", 2, "unsupported database"),
    ],
)
@pytest.mark.parametrize("command", ["current", "revisions", "check", "migrate"])
def test_bad_or_unreachable_database_is_one_masked_line(tmp_path, url, code, message, command):
    result = Annota(make_env(tmp_path, url)).invoke("server", "database", command)
    assert result.exit_code == code
    assert message in result.stderr
    assert "Sup3r-s3cret" not in result.output and "***" in result.stderr
    assert "Traceback" not in result.output


def test_wrong_password_is_masked(postgres_server_url, tmp_path):
    url = sqlalchemy_url(postgres_server_url)
    wrong = sa.make_url(url).set(password="Wr0ng-pa55word").render_as_string(False)
    result = Annota(make_env(tmp_path, wrong)).invoke("server", "database", "current")
    assert result.exit_code == 5
    assert "password authentication failed" in result.stderr
    assert "Wr0ng-pa55word" not in result.output


def test_traceback_flag_shows_the_exception(tmp_path):
    annota = Annota(make_env(tmp_path, "mysql://a:b-s3cret@h/d"))
    for result in (annota.invoke("--traceback", "server", "database", "current"),
                   annota.invoke("server", "database", "current", ANNOTA_TRACEBACK="1")):
        assert result.exit_code == 2
        assert "Traceback (most recent call last)" in result.stderr
        assert "ConfigurationError: ANNOTA_DATABASE_URL uses an unsupported database" in (
            result.stderr)
        assert "b-s3cret" not in result.output


def test_a_held_migration_lock_times_out_with_a_clear_message(annota):
    from annota.server.db import connect, dialect_for, open_database

    settings = Settings.from_env(annota.env)
    url = settings.database_url
    if url.sqlite_path:
        url.sqlite_path.parent.mkdir(parents=True, exist_ok=True)
    db = open_database(url)
    try:
        with connect(db, url) as connection, dialect_for(url).migration_lock(
                url, connection, timeout=5):
            result = annota.invoke("server", "database", "migrate", "--lock-timeout", "1")
    finally:
        db.dispose()
    assert result.exit_code == 6
    assert "another migration still holds" in result.stderr
    assert "waiting for its lock" in result.stdout
    assert current_of(annota) is None  # nothing ran
