"""annota's search queries: one model, which each engine compiles (``dsl.py`` for
Elasticsearch and OpenSearch).

A query is text, filters (all must hold), a sort, a page (``offset``/``limit``, with the
total) and, optionally, a similarity search; metrics and progress take the same filters.
The meaning of every filter is fixed here, so that every engine returns the same records:

- ``metadata``: the record's metadata property is one of ``values``, or within the
  bounds ``ge``/``gt``/``le``/``lt``;
- ``response_status``: a response of ``user_id`` (of any user when it is absent) has one
  of ``statuses``; ``pending`` means no response (of that user; of anyone);
- ``response_value``: a response (of ``user_id``, or any) answered ``question`` with one
  of ``values`` (for a multi-label question: with any of them);
- ``suggestion``: the suggestion for ``question`` has one of ``values``, a score within
  ``score``, and one of ``agents`` (each optional);
- ``inserted_at`` / ``updated_at``: the record's time within ``ge``/``le``.

Sorts always end by record id, so equal keys come back in one order on every engine, and a
record without the sort key comes last whatever the direction. Validation against the
dataset (a property, question, field or vector it lacks) reports every problem with its
location, as the API's 422 does.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timezone
from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field, StrictFloat, StrictInt, StrictStr, model_validator

from annota.server.domain.validation import DatasetSettings, Problems, metadata_problem

VALUE_QUESTIONS = ("label_selection", "multi_label_selection", "rating")
MAX_WINDOW = 10_000  # offset + limit: what every engine pages through without a cursor

Value = StrictStr | StrictInt | StrictFloat
Number = Annotated[float, Field(allow_inf_nan=False)]


class _Model(BaseModel):
    model_config = {"extra": "forbid", "frozen": True}


class _Bounded(_Model):
    """A range: ``ge``, ``le`` or both (each subclass types them)."""

    @model_validator(mode="after")
    def _some_bound(self) -> _Bounded:
        if self.ge is None and self.le is None:
            raise ValueError("give ge, le or both")
        return self


class _Bounds(_Bounded):
    ge: Number | None = None
    le: Number | None = None


class TextQuery(_Model):
    q: str = Field(min_length=1, max_length=10_000)
    fields: tuple[str, ...] | None = None  # None: every text field


class MetadataFilter(_Model):
    type: Literal["metadata"] = "metadata"
    property: str
    values: tuple[Value, ...] | None = Field(default=None, min_length=1, max_length=1000)
    ge: Number | None = None
    gt: Number | None = None
    le: Number | None = None
    lt: Number | None = None

    @property
    def bounds(self) -> dict[str, float]:
        """The bounds given, at most one lower and one upper: of ``ge`` and ``gt`` (``le``
        and ``lt``) both given, the one that holds less (engines take one of each)."""
        out = {}
        for inclusive, strict, tighter in (("ge", "gt", max), ("le", "lt", min)):
            a, b = getattr(self, inclusive), getattr(self, strict)
            if a is not None and b is not None:
                out.update({strict: b} if tighter(a, b) == b else {inclusive: a})
            elif a is not None or b is not None:
                out.update({inclusive: a} if a is not None else {strict: b})
        return out

    @model_validator(mode="after")
    def _values_or_bounds(self) -> MetadataFilter:
        if (self.values is None) == (not self.bounds):
            raise ValueError("give values, or bounds (ge, gt, le, lt), not both")
        return self


class ResponseStatusFilter(_Model):
    type: Literal["response_status"] = "response_status"
    user_id: uuid.UUID | None = None  # None: any user
    statuses: tuple[Literal["pending", "draft", "submitted", "discarded"], ...] = Field(
        min_length=1)


class ResponseValueFilter(_Model):
    type: Literal["response_value"] = "response_value"
    question: str
    values: tuple[Value, ...] = Field(min_length=1, max_length=1000)
    user_id: uuid.UUID | None = None


class SuggestionFilter(_Model):
    type: Literal["suggestion"] = "suggestion"
    question: str
    values: tuple[Value, ...] | None = Field(default=None, min_length=1, max_length=1000)
    score: _Bounds | None = None
    agents: tuple[str, ...] | None = Field(default=None, min_length=1, max_length=1000)


class TimeFilter(_Bounded):
    type: Literal["inserted_at", "updated_at"]
    ge: datetime | None = None
    le: datetime | None = None


Filter = Annotated[MetadataFilter | ResponseStatusFilter | ResponseValueFilter
                   | SuggestionFilter | TimeFilter, Field(discriminator="type")]


class Sort(_Model):
    # metadata.<property> | inserted_at | updated_at | suggestions.<question>.score | relevance
    by: str
    order: Literal["asc", "desc"] = "asc"


class Similarity(_Model):
    vector: str  # the vector setting's name
    value: tuple[Number, ...] | None = None
    record_id: uuid.UUID | None = None  # or: like this record's vector
    order: Literal["most", "least"] = "most"
    k: int = Field(default=10, ge=1, le=1000)
    threshold: Number | None = None  # cosine similarity: at least (most) or at most (least)

    @model_validator(mode="after")
    def _one_of(self) -> Similarity:
        if (self.value is None) == (self.record_id is None):
            raise ValueError("give value or record_id, one of them")
        return self


class SearchQuery(_Model):
    text: TextQuery | None = None
    filters: tuple[Filter, ...] = Field(default=(), max_length=100)
    sort: tuple[Sort, ...] = Field(default=(), max_length=10)
    offset: int = Field(default=0, ge=0, le=MAX_WINDOW)
    limit: int = Field(default=20, ge=0, le=1000)
    similarity: Similarity | None = None

    @model_validator(mode="after")
    def _window(self) -> SearchQuery:
        if self.offset + self.limit > MAX_WINDOW:
            raise ValueError(f"offset + limit is at most {MAX_WINDOW}")
        if self.similarity is not None and (self.text is not None or self.sort):
            raise ValueError("a similarity search is ordered by similarity: no text or sort")
        return self


def utc_text(value: datetime) -> str:
    """A time bound as the documents carry their times: UTC, ISO 8601 (a naive time is
    UTC), to the microsecond."""
    if value.tzinfo is not None:
        value = value.astimezone(timezone.utc).replace(tzinfo=None)
    return value.isoformat(timespec="microseconds") + "Z"


class Hit(_Model):
    id: str
    score: float | None
    source: dict[str, Any]


class SearchResult(_Model):
    total: int
    hits: tuple[Hit, ...]


def check_query(query: SearchQuery, settings: DatasetSettings,
                root: tuple[str | int, ...] = ()) -> None:
    """Everything the dataset cannot answer, each with its location, as one error."""
    problems = Problems()
    text_fields = {n for n, (kind, _) in settings.fields.items() if kind == "text"}
    if query.text and query.text.fields:
        for i, name in enumerate(query.text.fields):
            if name not in text_fields:
                problems.add((*root, "text", "fields", i), "the dataset has no such text field")
    for i, item in enumerate(query.filters):
        _check_filter(item, settings, problems, (*root, "filters", i))
    for i, sort in enumerate(query.sort):
        problem = _sort_problem(sort, query, settings)
        if problem:
            problems.add((*root, "sort", i, "by"), problem)
    if query.similarity is not None:
        _check_similarity(query.similarity, settings, problems, (*root, "similarity"))
    problems.check()


def _sort_problem(sort: Sort, query: SearchQuery, settings: DatasetSettings) -> str | None:
    kind, _, name = sort.by.partition(".")
    if sort.by == "relevance":
        return None if query.text is not None else "relevance needs a text query"
    if sort.by in ("inserted_at", "updated_at"):
        return None
    if kind == "metadata" and name in settings.metadata:
        return None
    if kind == "suggestions" and name.endswith(".score") \
            and name.removesuffix(".score") in settings.questions:
        return None
    return ("sort by metadata.<property>, inserted_at, updated_at, "
            "suggestions.<question>.score or relevance (of the dataset's)")


def _check_filter(item: Any, settings: DatasetSettings, problems: Problems,
                  where: tuple[str | int, ...]) -> None:
    if isinstance(item, MetadataFilter):
        found = metadata_problem(settings.metadata.get(item.property), values=item.values,
                                 bounds=None if item.values is not None else item.bounds)
        if found:
            part, why = found
            # a bound's problem is told at the first bound given
            problems.add((*where, next(iter(item.bounds)) if part == "bounds" else part),
                         why)
    elif isinstance(item, (ResponseValueFilter, SuggestionFilter)):
        question = settings.questions.get(item.question)
        kind = question[1].get("type") if question else None
        if question is None:
            problems.add((*where, "question"), "the dataset has no such question")
        elif item.values is not None and kind not in VALUE_QUESTIONS:
            problems.add((*where, "values"), f"answers to a {kind} question are not "
                         "matched by value (label, multi-label and rating questions are)")


def _check_similarity(item: Similarity, settings: DatasetSettings, problems: Problems,
                      where: tuple[str | int, ...]) -> None:
    vector = settings.vectors.get(item.vector)
    if vector is None:
        problems.add((*where, "vector"), "the dataset has no such vector setting")
    elif item.value is not None and len(item.value) != vector[1]:
        problems.add((*where, "value"), f"the vector has {vector[1]} dimensions")
    elif item.value is not None and not any(item.value):
        problems.add((*where, "value"), "a zero vector has no direction")

