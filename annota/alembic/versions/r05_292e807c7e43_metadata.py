"""Metadata properties per dataset and a metadata document per record

Revision ID: 292e807c7e43
Revises: 95afe52a5067
"""

import sqlalchemy as sa
from alembic import op

from annota.alembic.helpers import create_dataset_settings_table

revision = "292e807c7e43"
down_revision = "95afe52a5067"
branch_labels = None
depends_on = None
release = "1.3"
data_loss = "drops table metadata_properties and column records.metadata"


def upgrade() -> None:
    create_dataset_settings_table(
        op,
        "metadata_properties",
        sa.Column("settings", sa.JSON(), nullable=False),
        sa.Column("allowed_roles", sa.JSON(), nullable=False),
    )
    op.add_column("records", sa.Column("metadata", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("records") as batch:
        batch.drop_column("metadata")
    op.drop_table("metadata_properties")
