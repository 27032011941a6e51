"""Record the checksum of each applied revision file, so `check` can tell one changed

Revision ID: 8c2f4e6a1d07
Revises: 5d1e0c7a9b34
"""

import sqlalchemy as sa
from alembic import op

revision = "8c2f4e6a1d07"
down_revision = "5d1e0c7a9b34"
branch_labels = None
depends_on = None
release = "2.2"
data_loss = "the checksums recorded for applied revision files"


def upgrade() -> None:
    op.create_table(
        "revision_checksums",
        sa.Column("revision", sa.String(), nullable=False),
        sa.Column("checksum", sa.String(), nullable=False),
        sa.Column("applied_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("revision", name="pk_revision_checksums"),
    )


def downgrade() -> None:
    op.drop_table("revision_checksums")
