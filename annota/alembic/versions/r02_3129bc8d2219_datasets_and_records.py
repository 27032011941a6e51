"""Create datasets, fields, questions, records and responses

Revision ID: 3129bc8d2219
Revises: af9c23184370
"""

import sqlalchemy as sa
from alembic import op

from annota.alembic.helpers import create_dataset_settings_table, id_column, timestamps

revision = "3129bc8d2219"
down_revision = "af9c23184370"
branch_labels = None
depends_on = None
release = "1.0"
data_loss = "drops datasets, fields, questions, records and responses (every labelled record)"


def upgrade() -> None:
    op.create_table(
        "datasets",
        id_column(),
        sa.Column("name", sa.String(), nullable=False),
        sa.Column("guidelines", sa.Text(), nullable=True),
        sa.Column("status", sa.String(), nullable=False),
        sa.Column("workspace_id", sa.Uuid(), nullable=False),
        *timestamps(),
        sa.PrimaryKeyConstraint("id", name="pk_datasets"),
        sa.ForeignKeyConstraint(
            ["workspace_id"], ["workspaces.id"], ondelete="CASCADE",
            name="fk_datasets_workspace_id_workspaces",
        ),
        sa.UniqueConstraint("name", "workspace_id", name="uq_datasets_name_workspace_id"),
    )
    op.create_index("ix_datasets_workspace_id", "datasets", ["workspace_id"])
    create_dataset_settings_table(
        op,
        "fields",
        sa.Column("required", sa.Boolean(), nullable=False),
        sa.Column("settings", sa.JSON(), nullable=False),
    )
    create_dataset_settings_table(
        op,
        "questions",
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("required", sa.Boolean(), nullable=False),
        sa.Column("settings", sa.JSON(), nullable=False),
    )
    op.create_table(
        "records",
        id_column(),
        sa.Column("fields", sa.JSON(), nullable=False),
        sa.Column("external_id", sa.String(), nullable=True),
        sa.Column("dataset_id", sa.Uuid(), nullable=False),
        *timestamps(),
        sa.PrimaryKeyConstraint("id", name="pk_records"),
        sa.ForeignKeyConstraint(
            ["dataset_id"], ["datasets.id"], ondelete="CASCADE",
            name="fk_records_dataset_id_datasets",
        ),
    )
    op.create_index("ix_records_dataset_id", "records", ["dataset_id"])
    op.create_table(
        "responses",
        id_column(),
        sa.Column("values", sa.JSON(), nullable=True),
        sa.Column("submitted", sa.Boolean(), nullable=False),
        sa.Column("record_id", sa.Uuid(), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        *timestamps(),
        sa.PrimaryKeyConstraint("id", name="pk_responses"),
        sa.ForeignKeyConstraint(
            ["record_id"], ["records.id"], ondelete="CASCADE",
            name="fk_responses_record_id_records",
        ),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], ondelete="CASCADE", name="fk_responses_user_id_users"
        ),
        sa.UniqueConstraint("record_id", "user_id", name="uq_responses_record_id_user_id"),
    )
    op.create_index("ix_responses_record_id", "responses", ["record_id"])
    op.create_index("ix_responses_user_id", "responses", ["user_id"])


def downgrade() -> None:
    for table in ("responses", "records", "questions", "fields", "datasets"):
        op.drop_table(table)
