"""Datasets: a distribution setting (minimum submitted responses per record)

Existing datasets get the behaviour they had: overlap with one submitted response.

Revision ID: 9750b0a4e7b0
Revises: 33283b8970a0
"""

import sqlalchemy as sa
from alembic import op

revision = "9750b0a4e7b0"
down_revision = "33283b8970a0"
branch_labels = None
depends_on = None
release = "1.5"
data_loss = "drops datasets.distribution (each dataset's minimum submitted responses)"


def upgrade() -> None:
    op.add_column("datasets", sa.Column("distribution", sa.JSON(), nullable=True))
    op.execute(
        """UPDATE datasets SET distribution = '{"strategy": "overlap", "min_submitted": 1}'"""
    )
    with op.batch_alter_table("datasets") as batch:
        batch.alter_column("distribution", existing_type=sa.JSON(), nullable=False)


def downgrade() -> None:
    with op.batch_alter_table("datasets") as batch:
        batch.drop_column("distribution")
