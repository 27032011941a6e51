"""Annotator agreement per record and question, and Krippendorff's alpha per question

Every existing dataset gets a PENDING agreement job in this same migration.

Revision ID: 4700fbf00e8f
Revises: c0178eeb3592
"""

import sqlalchemy as sa
from alembic import op

from annota.alembic.helpers import (
    forget_backfill_jobs,
    id_column,
    register_backfill_jobs,
    timestamps,
)

revision = "4700fbf00e8f"
down_revision = "c0178eeb3592"
branch_labels = None
depends_on = None
release = "2.1"
data_loss = ("drops record_agreements and question_agreements (derived: after an upgrade "
             "the agreement backfill recomputes them)")


def upgrade() -> None:
    op.create_table(
        "record_agreements",
        id_column(),
        sa.Column("record_id", sa.Uuid(), nullable=False),
        sa.Column("question_id", sa.Uuid(), nullable=False),
        sa.Column("responses", sa.Integer(), nullable=False),
        sa.Column("value_counts", sa.JSON(), nullable=False),
        sa.Column("percent_agreement", sa.Float(), nullable=True),
        *timestamps(),
        sa.PrimaryKeyConstraint("id", name="pk_record_agreements"),
        sa.ForeignKeyConstraint(["record_id"], ["records.id"], ondelete="CASCADE",
                                name="fk_record_agreements_record_id_records"),
        sa.ForeignKeyConstraint(["question_id"], ["questions.id"], ondelete="CASCADE",
                                name="fk_record_agreements_question_id_questions"),
        sa.UniqueConstraint("record_id", "question_id",
                            name="uq_record_agreements_record_id_question_id"),
    )
    for column in ("record_id", "question_id", "percent_agreement"):
        op.create_index(f"ix_record_agreements_{column}", "record_agreements", [column])
    op.create_table(
        "question_agreements",
        id_column(),
        sa.Column("question_id", sa.Uuid(), nullable=False),
        sa.Column("units", sa.Integer(), nullable=False),
        sa.Column("alpha", sa.Float(), nullable=True),
        sa.Column("stale", sa.Boolean(), server_default=sa.false(), nullable=False),
        *timestamps(),
        sa.PrimaryKeyConstraint("id", name="pk_question_agreements"),
        sa.ForeignKeyConstraint(["question_id"], ["questions.id"], ondelete="CASCADE",
                                name="fk_question_agreements_question_id_questions"),
        sa.UniqueConstraint("question_id", name="uq_question_agreements_question_id"),
    )
    register_backfill_jobs(op, "agreement", 1)


def downgrade() -> None:
    forget_backfill_jobs(op, "agreement")
    op.drop_table("question_agreements")
    op.drop_table("record_agreements")
