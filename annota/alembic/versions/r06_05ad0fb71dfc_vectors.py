"""Vector settings per dataset and one vector per record and setting

Revision ID: 05ad0fb71dfc
Revises: 292e807c7e43
"""

import sqlalchemy as sa
from alembic import op

from annota.alembic.helpers import id_column, timestamps

revision = "05ad0fb71dfc"
down_revision = "292e807c7e43"
branch_labels = None
depends_on = None
release = "1.4"
data_loss = "drops tables vector_settings and vectors (every stored vector)"


def upgrade() -> None:
    op.create_table(
        "vector_settings",
        id_column(),
        sa.Column("name", sa.String(), nullable=False),
        sa.Column("title", sa.Text(), nullable=False),
        sa.Column("dimensions", sa.Integer(), nullable=False),
        sa.Column("dataset_id", sa.Uuid(), nullable=False),
        *timestamps(),
        sa.PrimaryKeyConstraint("id", name="pk_vector_settings"),
        sa.ForeignKeyConstraint(
            ["dataset_id"], ["datasets.id"], ondelete="CASCADE",
            name="fk_vector_settings_dataset_id_datasets",
        ),
        sa.UniqueConstraint("name", "dataset_id", name="uq_vector_settings_name_dataset_id"),
    )
    op.create_index("ix_vector_settings_dataset_id", "vector_settings", ["dataset_id"])
    op.create_table(
        "vectors",
        id_column(),
        sa.Column("value", sa.JSON(), nullable=False),
        sa.Column("record_id", sa.Uuid(), nullable=False),
        sa.Column("vector_settings_id", sa.Uuid(), nullable=False),
        *timestamps(),
        sa.PrimaryKeyConstraint("id", name="pk_vectors"),
        sa.ForeignKeyConstraint(
            ["record_id"], ["records.id"], ondelete="CASCADE",
            name="fk_vectors_record_id_records",
        ),
        sa.ForeignKeyConstraint(
            ["vector_settings_id"], ["vector_settings.id"], ondelete="CASCADE",
            name="fk_vectors_vector_settings_id_vector_settings",
        ),
        sa.UniqueConstraint(
            "record_id", "vector_settings_id", name="uq_vectors_record_id_vector_settings_id"
        ),
    )
    op.create_index("ix_vectors_record_id", "vectors", ["record_id"])
    op.create_index("ix_vectors_vector_settings_id", "vectors", ["vector_settings_id"])


def downgrade() -> None:
    op.drop_table("vectors")
    op.drop_table("vector_settings")
