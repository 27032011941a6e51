"""The annotation data model at this code's head revision.

Migrations are the source of truth for the schema; a test compares this module with the
migrated database so the two cannot drift. Constraint names follow ``NAMING_CONVENTION``,
which is what lets SQLite batch migrations find and alter them.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timezone
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from annota.server.db.dialects import document_type

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_N_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

# documents that are queried (JSONB on PostgreSQL since release 2.0)
Document = document_type()


def utcnow() -> datetime:
    return datetime.now(timezone.utc).replace(tzinfo=None)


class Base(DeclarativeBase):
    metadata = sa.MetaData(naming_convention=NAMING_CONVENTION)


class TimestampMixin:
    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    inserted_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


def _dataset_fk() -> Mapped[uuid.UUID]:
    return mapped_column(sa.ForeignKey("datasets.id", ondelete="CASCADE"), index=True)


class User(TimestampMixin, Base):
    __tablename__ = "users"

    first_name: Mapped[str] = mapped_column(sa.String)
    last_name: Mapped[str | None] = mapped_column(sa.String)
    username: Mapped[str] = mapped_column(sa.String, unique=True)
    role: Mapped[str] = mapped_column(sa.String)  # owner | admin | annotator
    api_key: Mapped[str] = mapped_column(sa.Text, unique=True)
    password_hash: Mapped[str] = mapped_column(sa.Text)


class Workspace(TimestampMixin, Base):
    __tablename__ = "workspaces"

    name: Mapped[str] = mapped_column(sa.String, unique=True)
    datasets: Mapped[list[Dataset]] = relationship(back_populates="workspace")


class WorkspaceUser(TimestampMixin, Base):
    __tablename__ = "workspaces_users"
    __table_args__ = (sa.UniqueConstraint("workspace_id", "user_id"),)

    workspace_id: Mapped[uuid.UUID] = mapped_column(
        sa.ForeignKey("workspaces.id", ondelete="CASCADE"), index=True
    )
    user_id: Mapped[uuid.UUID] = mapped_column(
        sa.ForeignKey("users.id", ondelete="CASCADE"), index=True
    )


class Dataset(TimestampMixin, Base):
    __tablename__ = "datasets"
    __table_args__ = (sa.UniqueConstraint("name", "workspace_id"),)

    name: Mapped[str] = mapped_column(sa.String)
    guidelines: Mapped[str | None] = mapped_column(sa.Text)
    status: Mapped[str] = mapped_column(sa.String, default="draft")  # draft | ready
    distribution: Mapped[dict[str, Any]] = mapped_column(
        sa.JSON, default=lambda: {"strategy": "overlap", "min_submitted": 1}
    )
    allow_extra_metadata: Mapped[bool] = mapped_column(server_default=sa.true())
    last_activity_at: Mapped[datetime] = mapped_column(default=utcnow)
    # derived: records whose status is completed (annota.server.domain.record_status)
    completed_records: Mapped[int | None] = mapped_column(sa.BigInteger, default=0)
    workspace_id: Mapped[uuid.UUID] = mapped_column(
        sa.ForeignKey("workspaces.id", ondelete="CASCADE"), index=True
    )
    workspace: Mapped[Workspace] = relationship(back_populates="datasets")


class Field(TimestampMixin, Base):
    __tablename__ = "fields"
    __table_args__ = (sa.UniqueConstraint("name", "dataset_id"),)

    name: Mapped[str] = mapped_column(sa.String)
    title: Mapped[str] = mapped_column(sa.Text)
    required: Mapped[bool] = mapped_column(default=False)
    settings: Mapped[dict[str, Any]] = mapped_column(sa.JSON)
    dataset_id: Mapped[uuid.UUID] = _dataset_fk()


class Question(TimestampMixin, Base):
    __tablename__ = "questions"
    __table_args__ = (sa.UniqueConstraint("name", "dataset_id"),)

    name: Mapped[str] = mapped_column(sa.String)
    title: Mapped[str] = mapped_column(sa.Text)
    description: Mapped[str | None] = mapped_column(sa.Text)
    required: Mapped[bool] = mapped_column(default=True)
    settings: Mapped[dict[str, Any]] = mapped_column(sa.JSON)
    dataset_id: Mapped[uuid.UUID] = _dataset_fk()


class MetadataProperty(TimestampMixin, Base):
    __tablename__ = "metadata_properties"
    __table_args__ = (sa.UniqueConstraint("name", "dataset_id"),)

    name: Mapped[str] = mapped_column(sa.String)
    title: Mapped[str] = mapped_column(sa.Text)
    settings: Mapped[dict[str, Any]] = mapped_column(sa.JSON)  # {"type": "terms", ...}
    allowed_roles: Mapped[list[str]] = mapped_column(sa.JSON, default=list)
    dataset_id: Mapped[uuid.UUID] = _dataset_fk()


class VectorSettings(TimestampMixin, Base):
    __tablename__ = "vector_settings"
    __table_args__ = (sa.UniqueConstraint("name", "dataset_id"),)

    name: Mapped[str] = mapped_column(sa.String)
    title: Mapped[str] = mapped_column(sa.Text)
    dimensions: Mapped[int] = mapped_column()
    dataset_id: Mapped[uuid.UUID] = _dataset_fk()


class Record(TimestampMixin, Base):
    __tablename__ = "records"
    __table_args__ = (
        sa.Index("ix_records_dataset_id_inserted_at", "dataset_id", "inserted_at"),
        sa.Index("ix_records_dataset_id_external_id", "dataset_id", "external_id"),
        sa.Index("ix_records_dataset_id_status", "dataset_id", "status"),
        sa.Index("ix_records_dataset_id_id", "dataset_id", "id"),
    )

    fields: Mapped[dict[str, Any]] = mapped_column(Document)
    metadata_: Mapped[dict[str, Any] | None] = mapped_column("metadata", Document)
    external_id: Mapped[str | None] = mapped_column(sa.String)
    # derived (record-status backfill; kept current by annota.server.domain.derived)
    status: Mapped[str] = mapped_column(sa.String, server_default="pending")
    # indexed by ix_records_dataset_id_id (its first column), since 2.3 alone
    dataset_id: Mapped[uuid.UUID] = mapped_column(
        sa.ForeignKey("datasets.id", ondelete="CASCADE"))
    responses: Mapped[list[Response]] = relationship(passive_deletes=True)


class Response(TimestampMixin, Base):
    __tablename__ = "responses"
    __table_args__ = (
        sa.UniqueConstraint("record_id", "user_id"),
        # built by an async migration (CREATE INDEX CONCURRENTLY on PostgreSQL)
        sa.Index("ix_responses_record_id_status", "record_id", "status"),
    )

    values: Mapped[dict[str, Any] | None] = mapped_column(Document)
    status: Mapped[str] = mapped_column(sa.String)  # draft | submitted | discarded
    record_id: Mapped[uuid.UUID] = mapped_column(
        sa.ForeignKey("records.id", ondelete="CASCADE"), index=True
    )
    user_id: Mapped[uuid.UUID | None] = mapped_column(
        sa.ForeignKey("users.id", ondelete="SET NULL"), index=True
    )


class Suggestion(TimestampMixin, Base):
    __tablename__ = "suggestions"
    __table_args__ = (sa.UniqueConstraint("record_id", "question_id"),)

    value: Mapped[Any] = mapped_column(Document)
    score: Mapped[float | None] = mapped_column()
    agent: Mapped[str | None] = mapped_column(sa.String)
    type: Mapped[str | None] = mapped_column(sa.String)  # model | human
    record_id: Mapped[uuid.UUID] = mapped_column(
        sa.ForeignKey("records.id", ondelete="CASCADE"), index=True
    )
    question_id: Mapped[uuid.UUID] = mapped_column(
        sa.ForeignKey("questions.id", ondelete="CASCADE"), index=True
    )


class Vector(TimestampMixin, Base):
    __tablename__ = "vectors"
    __table_args__ = (sa.UniqueConstraint("record_id", "vector_settings_id"),)

    value: Mapped[list[float]] = mapped_column(sa.JSON)
    record_id: Mapped[uuid.UUID] = mapped_column(
        sa.ForeignKey("records.id", ondelete="CASCADE"), index=True
    )
    vector_settings_id: Mapped[uuid.UUID] = mapped_column(
        sa.ForeignKey("vector_settings.id", ondelete="CASCADE"), index=True
    )


class RecordAgreement(TimestampMixin, Base):
    """Annotator agreement on one record and question (agreement backfill, derived)."""

    __tablename__ = "record_agreements"
    __table_args__ = (sa.UniqueConstraint("record_id", "question_id"),)

    record_id: Mapped[uuid.UUID] = mapped_column(
        sa.ForeignKey("records.id", ondelete="CASCADE"), index=True
    )
    question_id: Mapped[uuid.UUID] = mapped_column(
        sa.ForeignKey("questions.id", ondelete="CASCADE"), index=True
    )
    responses: Mapped[int] = mapped_column()
    value_counts: Mapped[dict[str, int]] = mapped_column(sa.JSON)
    percent_agreement: Mapped[float | None] = mapped_column(index=True)


class QuestionAgreement(TimestampMixin, Base):
    """Krippendorff's alpha (nominal) of one question over its dataset's records."""

    __tablename__ = "question_agreements"

    question_id: Mapped[uuid.UUID] = mapped_column(
        sa.ForeignKey("questions.id", ondelete="CASCADE"), unique=True
    )
    units: Mapped[int] = mapped_column()  # records with at least two responses
    alpha: Mapped[float | None] = mapped_column()
    stale: Mapped[bool] = mapped_column(server_default=sa.false())


class BackfillJob(TimestampMixin, Base):
    """One backfill applied to one dataset."""

    __tablename__ = "backfill_jobs"
    __table_args__ = (sa.UniqueConstraint("name", "dataset_id"),)

    name: Mapped[str] = mapped_column(sa.String)
    version: Mapped[int] = mapped_column()
    dataset_id: Mapped[uuid.UUID] = mapped_column(
        sa.ForeignKey("datasets.id", ondelete="CASCADE"), index=True
    )
    status: Mapped[str] = mapped_column(sa.String, index=True)
    cursor: Mapped[str | None] = mapped_column(sa.String)
    processed: Mapped[int] = mapped_column(server_default="0")
    total: Mapped[int | None] = mapped_column()
    attempts: Mapped[int] = mapped_column(server_default="0")
    last_error: Mapped[str | None] = mapped_column(sa.Text)
    worker: Mapped[str | None] = mapped_column(sa.String)
    heartbeat_at: Mapped[datetime | None] = mapped_column()
    queued_at: Mapped[datetime | None] = mapped_column()
    started_at: Mapped[datetime | None] = mapped_column()
    finished_at: Mapped[datetime | None] = mapped_column()


class AsyncMigrationRow(Base):
    """Heavy SQL run outside a migration's transaction (see ``schema/async_migrations.py``)."""

    __tablename__ = "async_migrations"

    name: Mapped[str] = mapped_column(sa.String, primary_key=True)
    revision: Mapped[str] = mapped_column(sa.String)
    status: Mapped[str] = mapped_column(sa.String)
    sql: Mapped[str] = mapped_column(sa.Text)
    rollback_sql: Mapped[str] = mapped_column(sa.Text)
    index_name: Mapped[str | None] = mapped_column(sa.String)
    attempts: Mapped[int] = mapped_column(server_default="0")
    error: Mapped[str | None] = mapped_column(sa.Text)
    scheduled_at: Mapped[datetime | None] = mapped_column()
    started_at: Mapped[datetime | None] = mapped_column()
    finished_at: Mapped[datetime | None] = mapped_column()
    inserted_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class RevisionChecksum(Base):
    """The SHA-256 of each applied revision file, recorded when it was applied (see
    ``schema/checksums.py``)."""

    __tablename__ = "revision_checksums"

    revision: Mapped[str] = mapped_column(sa.String, primary_key=True)
    checksum: Mapped[str] = mapped_column(sa.String)
    applied_at: Mapped[datetime] = mapped_column()


class IndexChange(Base):
    """A record a writer changed (or deleted) since the dataset's reindex cleared its rows;
    ``token`` is new at each write (see ``domain/index_changes.py``). Operational."""

    __tablename__ = "index_changes"

    dataset_id: Mapped[uuid.UUID] = mapped_column(
        sa.ForeignKey("datasets.id", ondelete="CASCADE"), primary_key=True)
    record_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    token: Mapped[uuid.UUID] = mapped_column()
