"""Column shapes shared by the revision files.

Revisions are frozen history: change nothing here that an existing revision uses.
"""

from __future__ import annotations

import sqlalchemy as sa

from annota.server.db import Dialect, dialect_named


def id_column() -> sa.Column:
    return sa.Column("id", sa.Uuid(), nullable=False)


def timestamps() -> list[sa.Column]:
    return [
        sa.Column("inserted_at", sa.DateTime(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
    ]


def create_dataset_settings_table(op, table: str, *columns: sa.Column) -> None:  # noqa: ANN001
    """A table of per-dataset settings (fields, questions, metadata properties, vector
    settings): a name unique within the dataset, a title, and ``columns``."""
    op.create_table(
        table,
        id_column(),
        sa.Column("name", sa.String(), nullable=False),
        sa.Column("title", sa.Text(), nullable=False),
        *columns,
        sa.Column("dataset_id", sa.Uuid(), nullable=False),
        *timestamps(),
        sa.PrimaryKeyConstraint("id", name=f"pk_{table}"),
        sa.ForeignKeyConstraint(
            ["dataset_id"], ["datasets.id"], ondelete="CASCADE",
            name=f"fk_{table}_dataset_id_datasets",
        ),
        sa.UniqueConstraint("name", "dataset_id", name=f"uq_{table}_name_dataset_id"),
    )
    op.create_index(f"ix_{table}_dataset_id", table, ["dataset_id"])


def dialect(op) -> Dialect:  # noqa: ANN001 - alembic's op proxy
    # the migration context knows its dialect in online and offline (--sql) mode alike
    return dialect_named(op.get_context().dialect.name)


def is_postgresql(op) -> bool:  # noqa: ANN001
    """Release 2.0 moved documents to JSONB, which only PostgreSQL has (a frozen revision
    asks this; new code asks the dialect object)."""
    return dialect(op).name == "postgresql"


def register_backfill_jobs(op, name: str, version: int) -> None:  # noqa: ANN001
    """One PENDING job of backfill ``name`` per existing dataset, in the migration's own
    transaction, so no legacy dataset silently misses the derived data."""
    new_id, now = dialect(op).new_uuid_sql(), dialect(op).utc_now_sql()
    op.execute(
        "INSERT INTO backfill_jobs (id, name, version, dataset_id, status, processed, attempts, "
        f"inserted_at, updated_at) SELECT {new_id}, '{name}', {version}, id, 'PENDING', 0, 0, "
        f"{now}, {now} FROM datasets"
    )


def forget_backfill_jobs(op, name: str) -> None:  # noqa: ANN001
    op.execute(f"DELETE FROM backfill_jobs WHERE name = '{name}'")
