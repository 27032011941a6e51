"""Index records by dataset and external id for imports that update by external id

Revision ID: 0901a4f98754
Revises: 2dc006381611
"""

from alembic import op

revision = "0901a4f98754"
down_revision = "2dc006381611"
branch_labels = None
depends_on = None
release = "2.0"
data_loss = None


def upgrade() -> None:
    op.create_index(
        "ix_records_dataset_id_external_id", "records", ["dataset_id", "external_id"]
    )


def downgrade() -> None:
    op.drop_index("ix_records_dataset_id_external_id", table_name="records")
