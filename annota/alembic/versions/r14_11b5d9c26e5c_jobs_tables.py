"""Backfill jobs and async migrations: the schema keeps its own operational state

Revision ID: 11b5d9c26e5c
Revises: 0901a4f98754
"""

import sqlalchemy as sa
from alembic import op

from annota.alembic.helpers import id_column, timestamps

revision = "11b5d9c26e5c"
down_revision = "0901a4f98754"
branch_labels = None
depends_on = None
release = "2.1"
data_loss = "drops tables backfill_jobs and async_migrations (job history and progress)"


def upgrade() -> None:
    op.create_table(
        "backfill_jobs",
        id_column(),
        sa.Column("name", sa.String(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("dataset_id", sa.Uuid(), nullable=False),
        sa.Column("status", sa.String(), nullable=False),
        sa.Column("cursor", sa.String(), nullable=True),
        sa.Column("processed", sa.Integer(), server_default="0", nullable=False),
        sa.Column("total", sa.Integer(), nullable=True),
        sa.Column("attempts", sa.Integer(), server_default="0", nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("worker", sa.String(), nullable=True),
        sa.Column("heartbeat_at", sa.DateTime(), nullable=True),
        sa.Column("queued_at", sa.DateTime(), nullable=True),
        sa.Column("started_at", sa.DateTime(), nullable=True),
        sa.Column("finished_at", sa.DateTime(), nullable=True),
        *timestamps(),
        sa.PrimaryKeyConstraint("id", name="pk_backfill_jobs"),
        sa.ForeignKeyConstraint(
            ["dataset_id"], ["datasets.id"], ondelete="CASCADE",
            name="fk_backfill_jobs_dataset_id_datasets",
        ),
        sa.UniqueConstraint("name", "dataset_id", name="uq_backfill_jobs_name_dataset_id"),
    )
    op.create_index("ix_backfill_jobs_dataset_id", "backfill_jobs", ["dataset_id"])
    op.create_index("ix_backfill_jobs_status", "backfill_jobs", ["status"])
    op.create_table(
        "async_migrations",
        sa.Column("name", sa.String(), nullable=False),
        sa.Column("revision", sa.String(), nullable=False),
        sa.Column("status", sa.String(), nullable=False),
        sa.Column("sql", sa.Text(), nullable=False),
        sa.Column("rollback_sql", sa.Text(), nullable=False),
        sa.Column("index_name", sa.String(), nullable=True),
        sa.Column("attempts", sa.Integer(), server_default="0", nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("scheduled_at", sa.DateTime(), nullable=True),
        sa.Column("started_at", sa.DateTime(), nullable=True),
        sa.Column("finished_at", sa.DateTime(), nullable=True),
        *timestamps(),
        sa.PrimaryKeyConstraint("name", name="pk_async_migrations"),
    )


def downgrade() -> None:
    op.drop_table("async_migrations")
    op.drop_table("backfill_jobs")
