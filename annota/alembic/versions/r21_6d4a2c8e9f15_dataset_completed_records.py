"""Datasets: completed_records, counted from the records' statuses and kept current

Release 2.1 gave records a derived status, computed for legacy records by the
record-status backfill. This revision of release 2.3 stores each dataset's count of
completed records (its progress, without counting on every read), filled here from the
statuses. It is a release gate: a count made while the backfill is unfinished would count
uncomputed placeholders, so the schema moves past it only once every record-status job is
complete. From here on, whatever recomputes statuses recounts the dataset.

Revision ID: 6d4a2c8e9f15
Revises: 3b9e5f1c7a42
"""

import sqlalchemy as sa
from alembic import op

revision = "6d4a2c8e9f15"
down_revision = "3b9e5f1c7a42"
branch_labels = None
depends_on = None
release = "2.3"
data_loss = ("drops datasets.completed_records (derived: an upgrade counts it again from "
             "the records' statuses)")
requires_backfills = ("record-status",)


def upgrade() -> None:
    op.add_column("datasets", sa.Column("completed_records", sa.BigInteger(), nullable=True))
    op.execute(
        "UPDATE datasets SET completed_records = (SELECT count(*) FROM records "
        "WHERE records.dataset_id = datasets.id AND records.status = 'completed')")


def downgrade() -> None:
    with op.batch_alter_table("datasets") as batch:
        batch.drop_column("completed_records")
