"""Index records by dataset and insertion time for the record listing

Revision ID: 33283b8970a0
Revises: 05ad0fb71dfc
"""

from alembic import op

revision = "33283b8970a0"
down_revision = "05ad0fb71dfc"
branch_labels = None
depends_on = None
release = "1.5"
data_loss = None


def upgrade() -> None:
    op.create_index(
        "ix_records_dataset_id_inserted_at", "records", ["dataset_id", "inserted_at"]
    )


def downgrade() -> None:
    op.drop_index("ix_records_dataset_id_inserted_at", table_name="records")
