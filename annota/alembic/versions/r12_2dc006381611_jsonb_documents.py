"""PostgreSQL: record, response and suggestion documents move from JSON to JSONB

JSONB can be indexed and compared; the values are the same documents. SQLite stores
JSON as text either way, so this revision does nothing there.

Revision ID: 2dc006381611
Revises: dc70b5d40df7
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

from annota.alembic.helpers import is_postgresql
from annota.server.schema.repairs import refuse_nul_documents

revision = "2dc006381611"
down_revision = "dc70b5d40df7"
branch_labels = None
depends_on = None
release = "2.0"
data_loss = None

COLUMNS = [("records", "fields"), ("records", "metadata"), ("responses", "values"),
           ("suggestions", "value")]


def _convert(to: str) -> None:
    if not is_postgresql(op):
        return
    if to == "jsonb" and not op.get_context().as_sql:
        refuse_nul_documents(op.get_bind())  # one clear error, not the cast's
    new_type = JSONB() if to == "jsonb" else sa.JSON()
    for table, column in COLUMNS:
        op.alter_column(
            table, column, type_=new_type, postgresql_using=f'"{column}"::{to}'
        )


def upgrade() -> None:
    _convert("jsonb")


def downgrade() -> None:
    _convert("json")
