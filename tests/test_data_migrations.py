"""Revisions that transform existing rows: the values they produce, up and down."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa

from annota.server.schema import migrate as migrations
from tests.schema_tools import insert

R_SUGGESTIONS, R_STATUS = "85fb5a1c553f", "95afe52a5067"
R_VECTORS, R_DISTRIBUTION = "05ad0fb71dfc", "9750b0a4e7b0"
R_KEEP_RESPONSES, R_LAST_ACTIVITY = "e4be47f32097", "e0c0a096f5b3"
T0 = datetime(2024, 5, 1, 12, 0, 0)
ORPHANS = "SELECT COUNT(*) FROM responses WHERE user_id IS NULL"


def move(settings, target: str) -> None:
    migrations.migrate(settings, target, confirm=lambda plan: True, backup=False)


DISTRIBUTION = {"strategy": "overlap", "min_submitted": 1}


def seed_dataset(connection, n_users: int = 3, **dataset: object) -> dict:
    stamp = {"inserted_at": T0, "updated_at": T0}
    users = [
        insert(connection, "users", first_name=f"u{i}", username=f"u{i}", role="annotator",
               api_key=f"key-{i}", password_hash="x", **stamp)
        for i in range(n_users)
    ]
    workspace = insert(connection, "workspaces", name="ws", **stamp)
    dataset = insert(connection, "datasets", name="ds", status="ready",
                     workspace_id=workspace, **stamp, **dataset)
    record = insert(connection, "records", fields={"text": "hello"}, dataset_id=dataset,
                    **stamp)
    return {"users": users, "dataset": dataset, "record": record}


def scalar_rows(connection, sql: str) -> list:
    return [row[0] for row in connection.execute(sa.text(sql))]


def test_response_status_replaces_the_submitted_flag_and_back(settings, db):
    move(settings, R_SUGGESTIONS)
    with db.begin() as connection:
        ids = seed_dataset(connection)
        for user, submitted in zip(ids["users"], [True, False, True], strict=True):
            insert(connection, "responses", values={"label": "a"}, submitted=submitted,
                   record_id=ids["record"], user_id=user, inserted_at=T0, updated_at=T0)
    move(settings, R_STATUS)
    order = "ORDER BY (SELECT username FROM users WHERE users.id = responses.user_id)"
    with db.begin() as connection:
        assert scalar_rows(connection, f"SELECT status FROM responses {order}") == [
            "submitted", "draft", "submitted"
        ]
        connection.execute(sa.text(
            "UPDATE responses SET status = 'discarded' WHERE user_id = :u"
        ), {"u": connection.execute(sa.text("SELECT id FROM users WHERE username = 'u2'"))
            .scalar_one()})
    move(settings, R_SUGGESTIONS)
    with db.connect() as connection:
        # the declared loss: discarded becomes an unsubmitted draft
        assert scalar_rows(connection, f"SELECT submitted FROM responses {order}") == [
            True, False, False
        ]


def test_distribution_is_filled_for_existing_datasets(settings, db):
    move(settings, R_VECTORS)
    with db.begin() as connection:
        seed_dataset(connection)
    move(settings, R_DISTRIBUTION)
    with db.connect() as connection:
        table = sa.Table("datasets", sa.MetaData(), autoload_with=connection)
        rows = connection.execute(sa.select(table.c.distribution)).scalars().all()
    assert rows == [DISTRIBUTION]


def test_responses_survive_their_user_and_the_downgrade_removes_only_those(settings, db):
    move(settings, R_KEEP_RESPONSES)
    with db.begin() as connection:
        ids = seed_dataset(connection, distribution=DISTRIBUTION)
        for user in ids["users"]:
            insert(connection, "responses", values={"label": "a"}, status="submitted",
                   record_id=ids["record"], user_id=user, inserted_at=T0, updated_at=T0)
    with db.begin() as connection:  # the app db enforces foreign keys (SQLite too)
        connection.execute(sa.text("DELETE FROM users WHERE username = 'u0'"))
        assert scalar_rows(connection, "SELECT COUNT(*) FROM responses") == [3]
        assert scalar_rows(connection, ORPHANS) == [1]
    move(settings, R_DISTRIBUTION)
    with db.connect() as connection:
        assert scalar_rows(connection, "SELECT COUNT(*) FROM responses") == [2]
        assert scalar_rows(connection, ORPHANS) == [0]


def test_last_activity_is_computed_from_records(settings, db):
    move(settings, R_KEEP_RESPONSES)
    later = datetime(2024, 6, 2, 8, 30, 0)
    with db.begin() as connection:
        ids = seed_dataset(connection, distribution=DISTRIBUTION)
        insert(connection, "records", fields={"text": "new"}, dataset_id=ids["dataset"],
               inserted_at=later, updated_at=later)
        insert(connection, "datasets", name="empty", status="draft",
                       workspace_id=connection.execute(sa.text("SELECT id FROM workspaces"))
                       .scalar_one(), inserted_at=T0, updated_at=T0,
                       distribution=DISTRIBUTION)
    move(settings, R_LAST_ACTIVITY)
    with db.connect() as connection:
        table = sa.Table("datasets", sa.MetaData(), autoload_with=connection)
        got = dict(connection.execute(sa.select(table.c.name, table.c.last_activity_at)).all())
    assert got == {"ds": later, "empty": T0}


def test_a_nul_escape_blocks_jsonb_with_a_clear_error_and_a_fix(postgres_url, tmp_path):
    from annota.config import Settings
    from annota.server.schema.history import history
    from tests.conftest import Annota, make_env

    env = make_env(tmp_path, postgres_url)
    settings = Settings.from_env(env)
    move(settings, "1.8")
    db = sa.create_engine(settings.database_url.sqlalchemy_url)
    with db.begin() as connection:
        ids = seed_dataset(connection, distribution=DISTRIBUTION, last_activity_at=T0)
        dataset = ids["dataset"]
        bad = insert(connection, "records", fields={"text": "bad\x00byte"},
                     dataset_id=dataset, inserted_at=T0, updated_at=T0)
        escaped = insert(connection, "records", fields={"text": "a\\u0000 as text"},
                         dataset_id=dataset, inserted_at=T0, updated_at=T0)
    annota = Annota(env)
    refused = annota.run("server", "database", "migrate")
    assert refused.returncode == 1
    assert f"records.fields of record {bad}" in refused.stderr
    assert "annota server database fix-json-nul" in refused.stderr
    assert migrations.status(settings).current == history().resolve("1.8")

    fixed = annota.run("server", "database", "fix-json-nul", "--yes")
    assert fixed.returncode == 0 and "from 1 documents" in fixed.stdout, fixed.stderr
    upgraded = annota.run("server", "upgrade", "--exclude", "search")  # past 2.3's gate
    assert upgraded.returncode == 0, upgraded.stdout + upgraded.stderr
    with db.connect() as connection:
        texts = dict(connection.execute(sa.text(
            "SELECT id, fields ->> 'text' FROM records")).tuples().all())
    db.dispose()
    assert texts[bad] == "badbyte"
    assert texts[escaped] == "a\\u0000 as text"  # an escaped backslash is no NUL
    assert texts[ids["record"]] == "hello"
