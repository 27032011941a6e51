"""Records: a derived status (pending / completed), recomputed by the record-status backfill

Every existing dataset gets a PENDING record-status job in this same migration.

Revision ID: c0178eeb3592
Revises: 11b5d9c26e5c
"""

import sqlalchemy as sa
from alembic import op

from annota.alembic.helpers import forget_backfill_jobs, register_backfill_jobs

revision = "c0178eeb3592"
down_revision = "11b5d9c26e5c"
branch_labels = None
depends_on = None
release = "2.1"
data_loss = ("drops records.status (derived: after an upgrade the record-status backfill "
             "recomputes it)")


def upgrade() -> None:
    op.add_column(
        "records",
        sa.Column("status", sa.String(), server_default="pending", nullable=False),
    )
    op.create_index("ix_records_dataset_id_status", "records", ["dataset_id", "status"])
    register_backfill_jobs(op, "record-status", 1)


def downgrade() -> None:
    forget_backfill_jobs(op, "record-status")
    op.drop_index("ix_records_dataset_id_status", table_name="records")
    with op.batch_alter_table("records") as batch:
        batch.drop_column("status")
