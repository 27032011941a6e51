"""Index changes: the records each dataset's writers changed, for a reindex's final check

A reindex proves its new index equal to the database over the whole dataset while writers
go on, then pauses the dataset's writers only to check what they changed since that proof:
the records named here. Writers upsert one row per record they write or delete, in their
own transaction (a fresh token each time); a reindex clears the dataset's rows before its
proof and forgets the rows it has caught up with (by token, so a later write stays). At
most one row per record and dataset.

Revision ID: 7e1f3a9c2b50
Revises: 6d4a2c8e9f15
"""

import sqlalchemy as sa
from alembic import op

revision = "7e1f3a9c2b50"
down_revision = "6d4a2c8e9f15"
branch_labels = None
depends_on = None
release = "2.4"
data_loss = ("the log of records changed since a reindex began (operational: a reindex "
             "running then checks its whole dataset again)")


def upgrade() -> None:
    op.create_table(
        "index_changes",
        sa.Column("dataset_id", sa.Uuid(), nullable=False),
        sa.Column("record_id", sa.Uuid(), nullable=False),
        sa.Column("token", sa.Uuid(), nullable=False),
        sa.ForeignKeyConstraint(["dataset_id"], ["datasets.id"], ondelete="CASCADE",
                                name="fk_index_changes_dataset_id_datasets"),
        sa.PrimaryKeyConstraint("dataset_id", "record_id", name="pk_index_changes"),
    )


def downgrade() -> None:
    op.drop_table("index_changes")
