"""Responses: a status (draft / submitted / discarded) replaces the submitted flag

Existing rows are transformed, not dropped: submitted -> 'submitted', else 'draft'.

Revision ID: 95afe52a5067
Revises: 85fb5a1c553f
"""

import sqlalchemy as sa
from alembic import op

revision = "95afe52a5067"
down_revision = "85fb5a1c553f"
branch_labels = None
depends_on = None
release = "1.2"
data_loss = "discarded responses become unsubmitted drafts (submitted = false)"


def upgrade() -> None:
    with op.batch_alter_table("responses") as batch:
        batch.add_column(sa.Column("status", sa.String(), nullable=True))
    op.execute(
        "UPDATE responses SET status = CASE WHEN submitted THEN 'submitted' ELSE 'draft' END"
    )
    with op.batch_alter_table("responses") as batch:
        batch.alter_column("status", existing_type=sa.String(), nullable=False)
        batch.drop_column("submitted")


def downgrade() -> None:
    with op.batch_alter_table("responses") as batch:
        batch.add_column(sa.Column("submitted", sa.Boolean(), nullable=True))
    op.execute("UPDATE responses SET submitted = (status = 'submitted')")
    with op.batch_alter_table("responses") as batch:
        batch.alter_column("submitted", existing_type=sa.Boolean(), nullable=False)
        batch.drop_column("status")
