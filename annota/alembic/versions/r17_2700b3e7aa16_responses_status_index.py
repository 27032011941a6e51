"""Index responses by record and status, built concurrently (an async migration)

On a large PostgreSQL database the build takes a while and must not lock responses, so it
runs outside the migration transaction with CREATE INDEX CONCURRENTLY.

Revision ID: 2700b3e7aa16
Revises: 4700fbf00e8f
"""

from alembic import op

from annota.server.schema.async_migrations import AsyncMigration, apply, revert

revision = "2700b3e7aa16"
down_revision = "4700fbf00e8f"
branch_labels = None
depends_on = None
release = "2.1"
data_loss = None

INDEX = AsyncMigration(
    name="responses_record_id_status_index",
    sql="CREATE INDEX CONCURRENTLY IF NOT EXISTS ix_responses_record_id_status "
        "ON responses (record_id, status)",
    rollback_sql="DROP INDEX CONCURRENTLY IF EXISTS ix_responses_record_id_status",
    sqlite_sql="CREATE INDEX IF NOT EXISTS ix_responses_record_id_status "
               "ON responses (record_id, status)",
    sqlite_rollback_sql="DROP INDEX IF EXISTS ix_responses_record_id_status",
    apply_on_sqlite=True,
    index="ix_responses_record_id_status",
)


def upgrade() -> None:
    apply(op, INDEX, revision)


def downgrade() -> None:
    revert(op, INDEX)
