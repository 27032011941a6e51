"""Responses: keep an annotator's responses when the user is deleted

The foreign key to users changes from ON DELETE CASCADE to ON DELETE SET NULL. On SQLite
this alters a named constraint, which batch mode can do because every constraint is named.

Revision ID: e4be47f32097
Revises: 9750b0a4e7b0
"""

import sqlalchemy as sa
from alembic import op

revision = "e4be47f32097"
down_revision = "9750b0a4e7b0"
branch_labels = None
depends_on = None
release = "1.6"
data_loss = "deletes responses whose annotator was deleted (user_id is NULL)"


def _user_fk(ondelete: str, nullable: bool) -> None:
    with op.batch_alter_table("responses") as batch:
        batch.drop_constraint("fk_responses_user_id_users", type_="foreignkey")
        batch.alter_column("user_id", existing_type=sa.Uuid(), nullable=nullable)
        batch.create_foreign_key(
            "fk_responses_user_id_users", "users", ["user_id"], ["id"], ondelete=ondelete
        )


def upgrade() -> None:
    _user_fk("SET NULL", nullable=True)


def downgrade() -> None:
    op.execute("DELETE FROM responses WHERE user_id IS NULL")
    _user_fk("CASCADE", nullable=False)
