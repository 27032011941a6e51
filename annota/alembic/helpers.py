"""Column shapes shared by the revision files.

Revisions are frozen history: change nothing here that an existing revision uses.
"""

from __future__ import annotations

import sqlalchemy as sa


def id_column() -> sa.Column:
    return sa.Column("id", sa.Uuid(), nullable=False)


def timestamps() -> list[sa.Column]:
    return [
        sa.Column("inserted_at", sa.DateTime(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
    ]


def is_postgresql(op) -> bool:  # noqa: ANN001 - alembic's op proxy
    # the migration context knows its dialect in online and offline (--sql) mode alike
    return op.get_context().dialect.name == "postgresql"
