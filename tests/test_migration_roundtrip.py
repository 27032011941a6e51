"""Every revision upgraded, downgraded and upgraded again, with rows seeded at each release.

The rule checked at every step: an upgrade, or a downgrade whose revision declares no
data loss, keeps every table, every row and every value of the columns it keeps. A
downgrade may lose data only if its revision says so (``data_loss``). The operational
tables (backfill jobs, async migrations, revision checksums) are the schema's own state,
which revisions register and forget by design, so only their survival as tables is
checked. Release gates are crossed (``force``): the jobs they wait for are not run here.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from annota.server.domain.models import Base
from annota.server.schema import migrate as migrations
from annota.server.schema.history import history
from tests.schema_tools import seed_generation, snapshot


def move(settings, target: str | None) -> None:
    migrations.migrate(settings, target or "base", confirm=lambda plan: True, backup=False,
                       force=True)


OPERATIONAL = {"backfill_jobs", "async_migrations", "revision_checksums"}


def step_and_check(settings, db, target: str | None) -> None:
    hist = history()
    with db.connect() as connection:
        before = snapshot(connection)
    current = migrations.status(settings).current
    plan = hist.plan(current, target)
    assert len(plan.steps) == 1, plan
    step = plan.steps[0]
    move(settings, target)
    assert migrations.status(settings).current == target
    with db.connect() as connection:
        after = snapshot(connection)
    if step.loses_data:
        return
    what = f"{step.direction} of {step.revision.revision} ({step.revision.description})"
    assert set(before) <= set(after), f"{what} dropped tables without declaring data loss"
    for table, rows in before.items():
        if table in OPERATIONAL:
            continue
        assert set(after[table]) == set(rows), f"{what} lost or added rows in {table}"
        for row_id, row in rows.items():
            kept = {c: after[table][row_id][c] for c in row if c in after[table][row_id]}
            assert kept == {c: row[c] for c in kept}, f"{what} changed {table} row {row_id}"


def test_every_revision_round_trips_with_data(settings, db):
    revisions = history().revisions
    for generation, revision in enumerate(revisions):
        step_and_check(settings, db, revision.revision)
        with db.begin() as connection:
            seed_generation(connection, generation)
        step_and_check(settings, db, revision.down_revision)
        step_and_check(settings, db, revision.revision)

    with db.connect() as connection:
        at_head = snapshot(connection)
    # every release's rows reach head, except those seeded right before the round trip of
    # the revision that creates their table (its downgrade drops the table, as declared)
    creates_vectors = history().position("05ad0fb71dfc")  # 1-based
    assert len(at_head["users"]) == 2 * (len(revisions) - 1)
    assert len(at_head["vectors"]) == 2 * (len(revisions) - creates_vectors)

    for revision in reversed(revisions):
        step_and_check(settings, db, revision.down_revision)
    with db.connect() as connection:
        assert snapshot(connection) == {}
    for revision in revisions:
        step_and_check(settings, db, revision.revision)


def test_models_match_the_migrated_schema(settings, db):
    move(settings, "head")
    with db.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        diff = compare_metadata(context, Base.metadata)
    assert diff == []


def test_the_version_table_is_the_only_other_table(settings, db):
    move(settings, "head")
    with db.connect() as connection:
        names = set(sa.inspect(connection).get_table_names())
    assert names - set(Base.metadata.tables) == {"alembic_version"}
