"""Metadata properties per dataset and a metadata document per record

Revision ID: 292e807c7e43
Revises: 95afe52a5067
"""

import sqlalchemy as sa
from alembic import op

from annota.alembic.helpers import id_column, timestamps

revision = "292e807c7e43"
down_revision = "95afe52a5067"
branch_labels = None
depends_on = None
release = "1.3"
data_loss = "drops table metadata_properties and column records.metadata"


def upgrade() -> None:
    op.create_table(
        "metadata_properties",
        id_column(),
        sa.Column("name", sa.String(), nullable=False),
        sa.Column("title", sa.Text(), nullable=False),
        sa.Column("settings", sa.JSON(), nullable=False),
        sa.Column("allowed_roles", sa.JSON(), nullable=False),
        sa.Column("dataset_id", sa.Uuid(), nullable=False),
        *timestamps(),
        sa.PrimaryKeyConstraint("id", name="pk_metadata_properties"),
        sa.ForeignKeyConstraint(
            ["dataset_id"], ["datasets.id"], ondelete="CASCADE",
            name="fk_metadata_properties_dataset_id_datasets",
        ),
        sa.UniqueConstraint(
            "name", "dataset_id", name="uq_metadata_properties_name_dataset_id"
        ),
    )
    op.create_index(
        "ix_metadata_properties_dataset_id", "metadata_properties", ["dataset_id"]
    )
    op.add_column("records", sa.Column("metadata", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("records") as batch:
        batch.drop_column("metadata")
    op.drop_table("metadata_properties")
