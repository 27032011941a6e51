"""Drop ix_records_dataset_id: the keyset index (dataset_id, id) serves every query it did

A contract step of release 2.3, gated: the schema moves past it only once the async
migration that builds ix_records_dataset_id_id (release 2.2) has finished, so no query is
left without an index. On PostgreSQL the index is dropped (and, on a downgrade, rebuilt)
concurrently, outside the revision's transaction: writers are never blocked.

Revision ID: 3b9e5f1c7a42
Revises: 8c2f4e6a1d07
"""

from alembic import op

from annota.alembic.helpers import dialect

revision = "3b9e5f1c7a42"
down_revision = "8c2f4e6a1d07"
branch_labels = None
depends_on = None
release = "2.3"
data_loss = None
requires_async_migrations = ("records_dataset_id_id_index",)

INDEX = "ix_records_dataset_id"


def _concurrently(sql: str) -> None:
    context = op.get_context()
    if context.as_sql:
        op.execute(sql)
        return
    dialect(op).run_heavy(context, lambda: context.connection.exec_driver_sql(sql))


def upgrade() -> None:
    if dialect(op).name == "postgresql":
        _concurrently(f"DROP INDEX CONCURRENTLY IF EXISTS {INDEX}")
    else:
        op.drop_index(INDEX, table_name="records")


def downgrade() -> None:
    if dialect(op).name == "postgresql":
        # an INVALID index left by an interrupted build would satisfy IF NOT EXISTS
        _concurrently(f"DROP INDEX CONCURRENTLY IF EXISTS {INDEX}")
        _concurrently(f"CREATE INDEX CONCURRENTLY {INDEX} ON records (dataset_id)")
    else:
        op.create_index(INDEX, "records", ["dataset_id"])
