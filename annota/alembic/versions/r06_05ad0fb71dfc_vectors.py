"""Vector settings per dataset and one vector per record and setting

Revision ID: 05ad0fb71dfc
Revises: 292e807c7e43
"""

import sqlalchemy as sa
from alembic import op

from annota.alembic.helpers import create_dataset_settings_table, id_column, timestamps

revision = "05ad0fb71dfc"
down_revision = "292e807c7e43"
branch_labels = None
depends_on = None
release = "1.4"
data_loss = "drops tables vector_settings and vectors (every stored vector)"


def upgrade() -> None:
    create_dataset_settings_table(
        op, "vector_settings", sa.Column("dimensions", sa.Integer(), nullable=False)
    )
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
