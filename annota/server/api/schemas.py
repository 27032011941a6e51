"""Request bodies of the HTTP API: pydantic models, validated before any handler runs."""

from __future__ import annotations

import uuid
from typing import Any

from pydantic import BaseModel, Field, model_validator


class WorkspaceIn(BaseModel):
    name: str = Field(min_length=1, max_length=200)


class DatasetIn(BaseModel):
    workspace_id: uuid.UUID
    name: str = Field(min_length=1, max_length=200)
    guidelines: str | None = None
    fields: list[dict[str, Any]] = Field(min_length=1)
    questions: list[dict[str, Any]] = Field(default_factory=list)
    metadata_properties: list[dict[str, Any]] = Field(default_factory=list)
    vector_settings: list[dict[str, Any]] = Field(default_factory=list)
    min_submitted: int = Field(default=1, ge=1)


class RecordsIn(BaseModel):
    records: list[dict[str, Any]] = Field(min_length=1, max_length=10_000)


class SearchIn(BaseModel):
    text: str | None = None
    terms: dict[str, list[Any]] = Field(default_factory=dict)
    ranges: dict[str, dict[str, float]] = Field(default_factory=dict)
    limit: int = Field(default=20, ge=1, le=1000)


class BackfillRunIn(BaseModel):
    dataset_id: uuid.UUID | None = None
    limit: int | None = Field(default=None, ge=1)
    all: bool = False
    force: bool = False
    batch_size: int = Field(default=1000, ge=1, le=100_000)

    @model_validator(mode="after")
    def one_selection(self) -> BackfillRunIn:
        if sum(map(bool, (self.dataset_id, self.limit, self.all))) != 1:
            raise ValueError("give exactly one of dataset_id, limit, all")
        return self


class BackfillCancelIn(BaseModel):
    name: str | None = None
    dataset_id: uuid.UUID | None = None
