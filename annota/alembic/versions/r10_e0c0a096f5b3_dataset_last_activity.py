"""Datasets: last_activity_at, computed for existing datasets from their records

The downgrade drops a derived column that this upgrade recomputes, so nothing is lost.

Revision ID: e0c0a096f5b3
Revises: e4be47f32097
"""

import sqlalchemy as sa
from alembic import op

revision = "e0c0a096f5b3"
down_revision = "e4be47f32097"
branch_labels = None
depends_on = None
release = "1.7"
data_loss = None


def upgrade() -> None:
    op.add_column("datasets", sa.Column("last_activity_at", sa.DateTime(), nullable=True))
    op.execute(
        "UPDATE datasets SET last_activity_at = COALESCE("
        "(SELECT MAX(records.updated_at) FROM records WHERE records.dataset_id = datasets.id),"
        " datasets.updated_at)"
    )
    with op.batch_alter_table("datasets") as batch:
        batch.alter_column("last_activity_at", existing_type=sa.DateTime(), nullable=False)


def downgrade() -> None:
    with op.batch_alter_table("datasets") as batch:
        batch.drop_column("last_activity_at")
