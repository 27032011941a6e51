"""Index records by dataset and id, built concurrently (an async migration)

A reindex reads a dataset's records in id order, a page at a time (``id > last``). With
only the dataset index, every page sorted the dataset's remaining records; this index
serves each page directly. It can replace none of the others, and on a large PostgreSQL
database it is built with CREATE INDEX CONCURRENTLY, outside the migration transaction.

Revision ID: 5d1e0c7a9b34
Revises: 2700b3e7aa16
"""

from alembic import op

from annota.server.schema.async_migrations import AsyncMigration, apply, revert

revision = "5d1e0c7a9b34"
down_revision = "2700b3e7aa16"
branch_labels = None
depends_on = None
release = "2.2"
data_loss = None

INDEX = AsyncMigration(
    name="records_dataset_id_id_index",
    sql="CREATE INDEX CONCURRENTLY IF NOT EXISTS ix_records_dataset_id_id "
        "ON records (dataset_id, id)",
    rollback_sql="DROP INDEX CONCURRENTLY IF EXISTS ix_records_dataset_id_id",
    sqlite_sql="CREATE INDEX IF NOT EXISTS ix_records_dataset_id_id ON records (dataset_id, id)",
    sqlite_rollback_sql="DROP INDEX IF EXISTS ix_records_dataset_id_id",
    apply_on_sqlite=True,
    index="ix_records_dataset_id_id",
)


def upgrade() -> None:
    apply(op, INDEX, revision)


def downgrade() -> None:
    revert(op, INDEX)
