"""Create suggestions: model predictions per record and question

Revision ID: 85fb5a1c553f
Revises: 3129bc8d2219
"""

import sqlalchemy as sa
from alembic import op

from annota.alembic.helpers import id_column, timestamps

revision = "85fb5a1c553f"
down_revision = "3129bc8d2219"
branch_labels = None
depends_on = None
release = "1.1"
data_loss = "drops table suggestions (every model suggestion)"


def upgrade() -> None:
    op.create_table(
        "suggestions",
        id_column(),
        sa.Column("value", sa.JSON(), nullable=False),
        sa.Column("score", sa.Float(), nullable=True),
        sa.Column("agent", sa.String(), nullable=True),
        sa.Column("type", sa.String(), nullable=True),
        sa.Column("record_id", sa.Uuid(), nullable=False),
        sa.Column("question_id", sa.Uuid(), nullable=False),
        *timestamps(),
        sa.PrimaryKeyConstraint("id", name="pk_suggestions"),
        sa.ForeignKeyConstraint(
            ["record_id"], ["records.id"], ondelete="CASCADE",
            name="fk_suggestions_record_id_records",
        ),
        sa.ForeignKeyConstraint(
            ["question_id"], ["questions.id"], ondelete="CASCADE",
            name="fk_suggestions_question_id_questions",
        ),
        sa.UniqueConstraint(
            "record_id", "question_id", name="uq_suggestions_record_id_question_id"
        ),
    )
    op.create_index("ix_suggestions_record_id", "suggestions", ["record_id"])
    op.create_index("ix_suggestions_question_id", "suggestions", ["question_id"])


def downgrade() -> None:
    op.drop_table("suggestions")
