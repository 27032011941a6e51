"""Every command against every database state: it works, or it says in one line what is
wrong and what to run, with the documented exit code, and the database is unchanged.

States: no file, an empty file, each older release, head, ahead of this code (a revision
it does not know), a corrupt file, and another application's database (tables, no
``alembic_version``). SQLite files live under a directory whose name has a space, ``?``,
``#``, ``%`` and a non-ASCII letter, so odd paths are exercised by every case.
"""

from __future__ import annotations

import shutil
import sqlite3
import uuid
from pathlib import Path

import pytest
import sqlalchemy as sa

from annota.config import Settings
from annota.server.jobs.backfills import BACKFILLS
from annota.server.schema import migrate as migrations
from annota.server.schema.history import JOBS_TABLES_REVISION, history
from annota.urls import DatabaseURL
from tests.conftest import Annota, make_env, sqlalchemy_url

HIST = history()
OLDER = [t.release for t in HIST.tags if t.revision != HIST.head.revision]
UNREACHABLE_ENGINE = {"ANNOTA_ELASTICSEARCH": "http://127.0.0.1:1"}
ODD_DIR = "odd dir ?#%é"
PASSWORD = "a-long-enough-password\n"

# command -> exit code on a database at head ("ok"); None: not run at head (it would serve)
COMMANDS: dict[tuple[str, ...], int | None] = {
    ("server", "database", "revisions"): 0,
    ("server", "database", "current"): 0,
    ("server", "database", "check"): 0,
    ("server", "database", "migrate"): 0,
    ("server", "upgrade", "--exclude", "search"): 0,
    ("server", "database", "migrate", "--sql"): 2,  # SQLite only in this matrix
    ("server", "database", "backfills", "list"): 0,
    ("server", "database", "backfills", "status"): 0,
    ("server", "database", "backfills", "run", "record-status", "--all"): 0,
    ("server", "database", "backfills", "cancel"): 0,
    ("server", "database", "async-migrations", "list"): 0,
    ("server", "database", "async-migrations", "run"): 0,
    ("server", "database", "users", "list"): 0,
    ("server", "database", "users", "create", "--username", "ana", "--password-stdin"): 0,
    ("server", "search-engine", "status"): 8,  # the engine is unreachable on purpose
    ("server", "search-engine", "reindex"): 8,
    ("server", "worker"): 2,  # no ANNOTA_REDIS_URL
    ("server", "database", "fix-json-nul", "--yes"): 0,
    ("server", "start"): None,
}
READ_ONLY = {("server", "database", c) for c in ("revisions", "current", "check")}
# they read or change only the jobs tables: any schema from the release that made them on
JOBS_ONLY = {("server", "database", *c) for c in (
    ("backfills", "list"), ("backfills", "status"), ("backfills", "cancel"),
    ("async-migrations", "list"), ("async-migrations", "run"))}
WITH_JOBS_TABLES = {t.release for t in HIST.tags
                    if HIST.position(t.revision) >= HIST.position(JOBS_TABLES_REVISION)}
# a backfill runs from the revision that registers it on (a release gate may need it)
RUN_BACKFILL = ("server", "database", "backfills", "run", "record-status", "--all")
WITH_BACKFILL = {t.release for t in HIST.tags if HIST.position(t.revision)
                 >= HIST.position(BACKFILLS["record-status"].since)}


def expected(command: tuple[str, ...], state: str) -> int | None:
    """The documented exit code of ``command`` on a database in ``state``."""
    if command == ("server", "database", "migrate", "--sql"):
        return 2  # SQLite: said before the database is even read
    if command == ("server", "worker"):
        return 2  # its missing setting is said first
    if state == "corrupt":
        return 5
    if command in READ_ONLY - {("server", "database", "check")}:
        return 0
    if state == "head" or (command in JOBS_ONLY and state in WITH_JOBS_TABLES) or (
            command == RUN_BACKFILL and state in WITH_BACKFILL):
        return COMMANDS[command]
    if state in ("ahead", "foreign"):
        return 4
    if command in (("server", "database", "migrate"), ("server", "upgrade", "--exclude",
                                                     "search")):
        return 0  # none, empty, older: it migrates
    if command[2:3] == ("fix-json-nul",) and state not in ("none", "empty", "1.0"):
        return 0  # it needs the document tables, which 1.1 completes
    return 3  # none, empty, older: behind; run migrate


def sqlite_template(root: Path, state: str) -> Path | None:
    """A SQLite file in ``state`` (None for no file), built once per session."""
    path = root / f"{state}.db"
    if state == "none" or path.exists():
        return None if state == "none" else path
    if state == "empty":
        path.touch()
    elif state == "corrupt":
        path.write_bytes(b"SQLite format 2\x00" + bytes(range(256)) * 8)
    elif state == "foreign":
        with sqlite3.connect(path) as con:
            con.execute("CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT)")
            con.execute("INSERT INTO customers (name) VALUES ('Ada'), ('Grace')")
        con.close()
    else:
        target = "head" if state in ("head", "ahead") else state
        settings = Settings.from_env({"ANNOTA_DATABASE_URL": DatabaseURL.for_sqlite_file(path).raw})
        migrations.migrate(settings, target)
        if state == "ahead":
            with sqlite3.connect(path) as con:
                con.execute("UPDATE alembic_version SET version_num = 'ffffffffffff'")
            con.close()
    return path


def snapshot(path: Path) -> object:
    """What the database holds: nothing, raw bytes (not a database), or a logical dump."""
    if not path.exists():
        return None
    try:
        con = sqlite3.connect(f"{path.as_uri()}?mode=ro", uri=True)
        try:
            return list(con.iterdump())
        finally:
            con.close()
    except sqlite3.DatabaseError:
        return path.read_bytes()


@pytest.fixture(scope="session")
def templates(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("states")


STATES = ["none", "empty", "corrupt", "foreign", "ahead", "head", *OLDER]


# at head, `start` serves: that case belongs to the server tests
CASES = [(c, s) for c in COMMANDS for s in STATES if expected(c, s) is not None]


@pytest.mark.parametrize(("command", "state"), CASES,
                         ids=[f"{' '.join(c[1:4])}-{s}" for c, s in CASES])
def test_every_command_in_every_sqlite_state(command, state, templates, tmp_path):
    code = expected(command, state)
    path = tmp_path / ODD_DIR / "annota.db"
    path.parent.mkdir()
    template = sqlite_template(templates, state)
    if template is not None:
        shutil.copy(template, path)
    # the default database, annota.db in ANNOTA_HOME, in a directory with an odd name
    env = {**make_env(tmp_path, None), "ANNOTA_HOME": str(path.parent), **UNREACHABLE_ENGINE}
    before = snapshot(path)
    result = Annota(env).invoke(*command, input=PASSWORD)
    assert result.exit_code == code, (state, result.output)
    assert "Traceback" not in result.output
    if code != 0:
        lines = result.stderr.splitlines()
        assert len(lines) == 1, lines
        if code == 3 and command != ("server", "database", "check"):
            assert "annota server database migrate" in lines[0]
        assert snapshot(path) == before  # a refusal changes nothing
    elif command in READ_ONLY:
        assert snapshot(path) == before
        assert path.exists() == (template is not None)  # reading never creates the file


def test_migrate_refuses_another_applications_database(templates, tmp_path):
    path = tmp_path / "foreign.db"
    shutil.copy(sqlite_template(templates, "foreign"), path)
    annota = Annota({**make_env(tmp_path, None),
                     "ANNOTA_DATABASE_URL": DatabaseURL.for_sqlite_file(path).raw})
    before = snapshot(path)
    result = annota.invoke("server", "database", "migrate")
    assert result.exit_code == 4
    assert "another application's tables (customers)" in result.stderr
    assert "no alembic_version" in result.stderr
    assert snapshot(path) == before
    current = annota.invoke("server", "database", "current", "--json")
    assert '"state": "foreign"' in current.stdout


# --- PostgreSQL: the states a server can be in ------------------------------------------

# every command, migrate and upgrade last: where they succeed the state is no longer the one tested
PG_COMMANDS = sorted(COMMANDS, key=lambda c: c[:3] == ("server", "database", "migrate")
                     or c[:2] == ("server", "upgrade"))


def expected_pg(command: tuple[str, ...], state: str) -> int | None:
    if command == ("server", "database", "migrate", "--sql"):
        return 4 if state in ("ahead", "foreign") else 0  # PostgreSQL prints the SQL
    return expected(command, state)


def pg_snapshot(url: str) -> dict[str, object]:
    db = sa.create_engine(sqlalchemy_url(url))
    try:
        with db.connect() as connection:
            tables = sorted(sa.inspect(connection).get_table_names())
            return {t: connection.execute(sa.text(f'SELECT * FROM "{t}" ORDER BY 1')).all()
                    for t in tables}
    finally:
        db.dispose()


def pg_state(url: str, state: str) -> None:
    db = sa.create_engine(sqlalchemy_url(url))
    try:
        if state == "foreign":
            with db.begin() as connection:
                connection.exec_driver_sql("CREATE TABLE customers (id int PRIMARY KEY)")
                connection.exec_driver_sql("INSERT INTO customers VALUES (1), (2)")
        elif state != "empty":
            migrations.migrate(Settings.from_env({"ANNOTA_DATABASE_URL": url}),
                               "head" if state in ("head", "ahead") else state)
            if state == "ahead":
                with db.begin() as connection:
                    connection.exec_driver_sql(
                        "UPDATE alembic_version SET version_num = 'ffffffffffff'")
    finally:
        db.dispose()


@pytest.mark.postgres
@pytest.mark.parametrize("state", ["empty", "foreign", "ahead", "head", "1.0", "1.7", "2.0"])
def test_every_command_in_every_postgresql_state(state, postgres_url, tmp_path):
    pg_state(postgres_url, state)
    env = {**make_env(tmp_path, postgres_url), **UNREACHABLE_ENGINE}
    for command in PG_COMMANDS:
        code = expected_pg(command, state)
        if code is None:
            continue
        before = pg_snapshot(postgres_url)
        result = Annota(env).invoke(*command, input=PASSWORD)
        assert result.exit_code == code, (command, state, result.output)
        assert "Traceback" not in result.output
        if code != 0:
            assert len(result.stderr.splitlines()) == 1, (command, result.stderr)
            assert pg_snapshot(postgres_url) == before, command


@pytest.mark.postgres
def test_a_missing_postgresql_database_is_one_line(postgres_server_url, tmp_path):
    url = postgres_server_url.rsplit("/", 1)[0] + "/annota_no_such_database"
    result = Annota(make_env(tmp_path, url)).invoke("server", "database", "current")
    assert result.exit_code == 5
    assert result.stderr.count("\n") == 1 and "does not exist" in result.stderr


@pytest.mark.parametrize("args", [
    ("backfills", "cancel", "--dataset-id", ""), ("backfills", "cancel", " "),
    ("backfills", "list", "--name", ""), ("backfills", "status", "--dataset-id", ""),
    ("backfills", "run", "record-status", "--dataset-id", ""),
    ("async-migrations", "run", ""), ("users", "create", "--username", ""),
    ("users", "create", "--username", "ana", "--workspace", ""),
    ("migrate", "--revision", ""),
], ids=" ".join)
def test_an_empty_value_is_a_usage_error_not_a_wildcard(args, templates, tmp_path):
    path = tmp_path / "annota.db"
    shutil.copy(sqlite_template(templates, "head"), path)
    env = {**make_env(tmp_path, None), "ANNOTA_DATABASE_URL": f"sqlite:///{path}"}
    annota = Annota(env)
    created = annota.invoke("server", "database", "users", "create", "--username", "owner",
                            "--role", "owner", "--workspace", "w", "--password-stdin",
                            input=PASSWORD)
    assert created.exit_code == 0
    from annota.server.domain import datasets

    db = sa.create_engine(f"sqlite:///{path}")
    with db.begin() as connection:
        workspace = connection.execute(sa.text("SELECT id FROM workspaces")).scalar_one()
        datasets.create_dataset(connection, workspace_id=uuid.UUID(workspace), name="d",
                                fields=[{"name": "t", "type": "text"}], questions=[])
    db.dispose()
    queued = annota.invoke("server", "database", "backfills", "status")  # registers jobs
    assert queued.exit_code == 3  # one PENDING job per backfill
    before = snapshot(path)
    result = annota.invoke("server", "database", *args, input=PASSWORD)
    assert result.exit_code == 2, result.output
    errors = [line for line in result.stderr.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1 and "must not be empty" in errors[0]  # click's usage error
    assert snapshot(path) == before  # nothing canceled, created or moved
