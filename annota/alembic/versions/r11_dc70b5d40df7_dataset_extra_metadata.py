"""Datasets: allow_extra_metadata flag (records may carry undeclared metadata)

Revision ID: dc70b5d40df7
Revises: e0c0a096f5b3
"""

import sqlalchemy as sa
from alembic import op

revision = "dc70b5d40df7"
down_revision = "e0c0a096f5b3"
branch_labels = None
depends_on = None
release = "1.8"
data_loss = "drops datasets.allow_extra_metadata (datasets that disallowed it allow it again)"


def upgrade() -> None:
    op.add_column(
        "datasets",
        sa.Column(
            "allow_extra_metadata", sa.Boolean(), nullable=False, server_default=sa.true()
        ),
    )


def downgrade() -> None:
    with op.batch_alter_table("datasets") as batch:
        batch.drop_column("allow_extra_metadata")
