"""Request bodies of the HTTP API: pydantic models, validated before any handler runs.

Text anywhere in a request may not hold a NUL character and numbers must be finite: the
databases refuse both, and a refusal there would be a 500 after part of the work.
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Iterator
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    Field,
    StrictFloat,
    StrictInt,
    StrictStr,
    field_validator,
    model_validator,
)

from annota.errors import InvalidInputError
from annota.search.query import Filter, MetadataFilter, SearchQuery


def unstorable(value: Any, path: tuple = ()) -> Iterator[tuple[tuple, str]]:
    """Each (location, problem) in ``value`` that no database stores: NUL in text, NaN and
    infinities (JSON allows them only as Python's extension, but the request parser
    accepts it)."""
    if isinstance(value, str):
        if "\x00" in value:
            yield path, "text may not contain a NUL character"
    elif isinstance(value, float):
        if not math.isfinite(value):
            yield path, "numbers must be finite"
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from unstorable(key, path)
            yield from unstorable(item, (*path, key))
    elif isinstance(value, list):  # located at the list, as the dataset's checks locate
        for item in value:
            yield from unstorable(item, path)


def storable(value: Any) -> Any:
    """``value``, unless it holds something no database stores (``unstorable``)."""
    for _, problem in unstorable(value):
        raise ValueError(problem)
    return value


Name = Annotated[str, Field(min_length=1, max_length=200, pattern=r"\S"),
                 AfterValidator(storable)]
Document = Annotated[dict[str, Any], AfterValidator(storable)]
Term = Annotated[StrictStr | StrictInt | StrictFloat, AfterValidator(storable)]
Bound = Annotated[float, Field(allow_inf_nan=False)]


class Body(BaseModel):
    model_config = {"extra": "forbid"}  # a misspelt key is an error, not ignored


class WorkspaceIn(Body):
    name: Name


class DatasetIn(Body):
    workspace_id: uuid.UUID
    name: Name
    guidelines: Annotated[str | None, AfterValidator(storable)] = None
    fields: list[Document] = Field(min_length=1, max_length=500)
    questions: list[Document] = Field(default_factory=list, max_length=500)
    metadata_properties: list[Document] = Field(default_factory=list, max_length=500)
    vector_settings: list[Document] = Field(default_factory=list, max_length=50)
    min_submitted: int = Field(default=1, ge=1, le=1000)


class RecordsIn(Body):
    records: list[dict[str, Any]] = Field(min_length=1, max_length=10_000)

    @model_validator(mode="after")
    def storable_records(self) -> RecordsIn:
        """What no database stores, each at its location in the record (not the record's
        alone: a client fixes the value the answer names)."""
        problems = [{"loc": ["records", i, *path], "msg": problem}
                    for i, record in enumerate(self.records)
                    for path, problem in unstorable(record)]
        if problems:
            raise InvalidInputError(f"{len(problems)} value(s) no database can store",
                                    problems)
        return self


class SearchIn(SearchQuery):
    """annota's query model (``annota.search.query``); ``text`` may be the query's text
    alone, and ``terms``/``ranges`` are metadata filters written the first way the API
    took them."""

    terms: dict[str, list[Term]] = Field(default_factory=dict)
    ranges: dict[str, dict[Literal["gte", "gt", "lte", "lt"], Bound]] = Field(
        default_factory=dict)

    @field_validator("text", mode="before")
    @classmethod
    def _text_alone(cls, value: Any) -> Any:
        return {"q": value} if isinstance(value, str) else value

    @model_validator(mode="after")
    def _storable(self) -> SearchIn:
        storable(self.model_dump(mode="json", include={"text", "filters", "sort"}))
        return self

    def query(self) -> SearchQuery:
        names = {"gte": "ge", "gt": "gt", "lte": "le", "lt": "lt"}
        legacy = [MetadataFilter(property=k, values=tuple(v)) for k, v in self.terms.items()]
        legacy += [MetadataFilter(property=k, **{names[b]: x for b, x in bounds.items()})
                   for k, bounds in self.ranges.items()]
        fields = {k: getattr(self, k) for k in SearchQuery.model_fields}
        return SearchQuery(**{**fields, "filters": (*self.filters, *legacy)})


class MetricsIn(Body):
    filters: tuple[Filter, ...] = Field(default=(), max_length=100)


class BackfillRunIn(Body):
    dataset_id: uuid.UUID | None = None
    limit: int | None = Field(default=None, ge=1, le=1_000_000)
    all: bool = False
    force: bool = False
    batch_size: int = Field(default=1000, ge=1, le=100_000)

    @model_validator(mode="after")
    def one_selection(self) -> BackfillRunIn:
        if sum(map(bool, (self.dataset_id, self.limit, self.all))) != 1:
            raise ValueError("give exactly one of dataset_id, limit, all")
        return self


class BackfillCancelIn(Body):
    name: Name | None = None
    dataset_id: uuid.UUID | None = None


class BackfillActionIn(Body):
    """The dashboard's backfill actions: one dataset, the first ``limit``, or all."""

    name: str = Field(min_length=1, max_length=200)
    dataset_id: uuid.UUID | None = None
    limit: int | None = Field(default=None, ge=1, le=1_000_000)
