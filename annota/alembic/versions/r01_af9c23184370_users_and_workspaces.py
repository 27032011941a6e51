"""Create users, workspaces and workspace membership

Revision ID: af9c23184370
Revises:
"""

import sqlalchemy as sa
from alembic import op

from annota.alembic.helpers import id_column, timestamps

revision = "af9c23184370"
down_revision = None
branch_labels = None
depends_on = None
release = "1.0"
data_loss = "drops tables users, workspaces and workspaces_users (every account)"


def upgrade() -> None:
    op.create_table(
        "users",
        id_column(),
        sa.Column("first_name", sa.String(), nullable=False),
        sa.Column("last_name", sa.String(), nullable=True),
        sa.Column("username", sa.String(), nullable=False),
        sa.Column("role", sa.String(), nullable=False),
        sa.Column("api_key", sa.Text(), nullable=False),
        sa.Column("password_hash", sa.Text(), nullable=False),
        *timestamps(),
        sa.PrimaryKeyConstraint("id", name="pk_users"),
        sa.UniqueConstraint("username", name="uq_users_username"),
        sa.UniqueConstraint("api_key", name="uq_users_api_key"),
    )
    op.create_table(
        "workspaces",
        id_column(),
        sa.Column("name", sa.String(), nullable=False),
        *timestamps(),
        sa.PrimaryKeyConstraint("id", name="pk_workspaces"),
        sa.UniqueConstraint("name", name="uq_workspaces_name"),
    )
    op.create_table(
        "workspaces_users",
        id_column(),
        sa.Column("workspace_id", sa.Uuid(), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        *timestamps(),
        sa.PrimaryKeyConstraint("id", name="pk_workspaces_users"),
        sa.ForeignKeyConstraint(
            ["workspace_id"], ["workspaces.id"], ondelete="CASCADE",
            name="fk_workspaces_users_workspace_id_workspaces",
        ),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], ondelete="CASCADE",
            name="fk_workspaces_users_user_id_users",
        ),
        sa.UniqueConstraint(
            "workspace_id", "user_id", name="uq_workspaces_users_workspace_id_user_id"
        ),
    )
    op.create_index("ix_workspaces_users_workspace_id", "workspaces_users", ["workspace_id"])
    op.create_index("ix_workspaces_users_user_id", "workspaces_users", ["user_id"])


def downgrade() -> None:
    op.drop_table("workspaces_users")
    op.drop_table("workspaces")
    op.drop_table("users")
