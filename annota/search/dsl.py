"""annota's queries (``query.py``) in the query DSL Elasticsearch and OpenSearch share.

What the two differ in (the kNN clause) is the engine's ``similarity_body``; everything
else is written once here. Text goes through ``simple_query_string`` with only phrases enabled, so
a user's ``+``, ``-``, ``*``, ``(`` or ``~`` is text, never query syntax.
"""

from __future__ import annotations

from typing import Any

from annota.search.query import (
    MetadataFilter,
    ResponseStatusFilter,
    ResponseValueFilter,
    SearchQuery,
    Sort,
    SuggestionFilter,
    TimeFilter,
    utc_text,
)


def text_clause(query: SearchQuery) -> dict[str, Any]:
    if query.text is None:
        return {"match_all": {}}
    fields = [f"fields.{name}" for name in query.text.fields] if query.text.fields \
        else ["fields.*"]
    return {"simple_query_string": {"query": query.text.q, "fields": fields,
                                    "default_operator": "and", "flags": "PHRASE"}}


def filter_clauses(filters: tuple[Any, ...]) -> list[dict[str, Any]]:
    return [_filter(item) for item in filters]


def bool_query(query: SearchQuery) -> dict[str, Any]:
    return {"bool": {"must": [text_clause(query)], "filter": filter_clauses(query.filters)}}


def _nested_responses(*clauses: dict[str, Any]) -> dict[str, Any]:
    inner = {"bool": {"filter": list(clauses)}} if clauses else {"match_all": {}}
    return {"nested": {"path": "responses", "query": inner}}


def _of_user(item: ResponseStatusFilter | ResponseValueFilter) -> list[dict[str, Any]]:
    """The clause keeping one user's responses (none: anyone's)."""
    return [{"term": {"responses.user_id": str(item.user_id)}}] if item.user_id else []


def _bounds(ge: Any, le: Any, convert=lambda v: v) -> dict[str, Any]:  # noqa: ANN001
    bounds = {}
    if ge is not None:
        bounds["gte"] = convert(ge)
    if le is not None:
        bounds["lte"] = convert(le)
    return bounds


def _filter(item: Any) -> dict[str, Any]:
    if isinstance(item, MetadataFilter):
        field = f"metadata.{item.property}"
        if item.values is not None:
            return {"terms": {field: list(item.values)}}
        names = {"ge": "gte", "gt": "gt", "le": "lte", "lt": "lt"}
        return {"range": {field: {names[k]: v for k, v in item.bounds.items()}}}
    if isinstance(item, ResponseStatusFilter):
        user = _of_user(item)
        answered = [s for s in item.statuses if s != "pending"]
        either = []
        if answered:
            either.append(_nested_responses(*user,
                                            {"terms": {"responses.status": answered}}))
        if "pending" in item.statuses:
            either.append({"bool": {"must_not": [_nested_responses(*user)]}})
        return {"bool": {"should": either, "minimum_should_match": 1}}
    if isinstance(item, ResponseValueFilter):
        return _nested_responses(
            *_of_user(item), {"terms": {f"responses.values.{item.question}": list(item.values)}})
    if isinstance(item, SuggestionFilter):
        field = f"suggestions.{item.question}"
        clauses: list[dict[str, Any]] = []
        if item.score is None and item.values is None and item.agents is None:
            clauses.append({"bool": {"minimum_should_match": 1, "should": [
                {"exists": {"field": f"{field}.{part}"}} for part in ("value", "score",
                                                                       "agent")]}})
        if item.values is not None:
            clauses.append({"terms": {f"{field}.value": list(item.values)}})
        if item.score is not None:
            clauses.append({"range": {f"{field}.score": _bounds(item.score.ge,
                                                                item.score.le)}})
        if item.agents is not None:
            clauses.append({"terms": {f"{field}.agent": list(item.agents)}})
        return {"bool": {"filter": clauses}}
    if isinstance(item, TimeFilter):
        return {"range": {item.type: _bounds(item.ge, item.le, utc_text)}}
    raise TypeError(f"no such filter: {item!r}")


def sort_clauses(sorts: tuple[Sort, ...], metadata_types: dict[str, str]
                 ) -> list[dict[str, Any]]:
    """The sort, then the record id; a record without the key comes last either way."""
    out: list[dict[str, Any]] = []
    for sort in sorts:
        if sort.by == "relevance":
            out.append({"_score": {"order": sort.order}})
            continue
        spec: dict[str, Any] = {"order": sort.order, "missing": "_last"}
        if sort.by.startswith("metadata."):
            kind = metadata_types.get(sort.by.split(".", 1)[1], "terms")
            spec["unmapped_type"] = {"terms": "keyword", "integer": "long"}.get(kind, "float")
        elif sort.by.startswith("suggestions."):
            spec["unmapped_type"] = "float"
        out.append({sort.by: spec})
    out.append({"id": {"order": "asc"}})
    return out


def metrics_aggregation(kind: str, property_name: str) -> dict[str, Any]:
    field = f"metadata.{property_name}"
    if kind == "terms":
        return {"values": {"terms": {"field": field, "size": 10_000}}}
    return {"min": {"min": {"field": field}}, "max": {"max": {"field": field}}}


def progress_aggregation(min_submitted: int) -> dict[str, Any]:
    """Completed records (as many submitted responses as the dataset's minimum, which is
    how a record's status is derived), and per user their responses by status (a user
    answers a record once, so responses count records)."""
    return {
        "completed": {"filter": {"range": {"submitted": {"gte": min_submitted}}}},
        "responses": {"nested": {"path": "responses"}, "aggs": {
            "users": {"terms": {"field": "responses.user_id", "size": 10_000}, "aggs": {
                "statuses": {"terms": {"field": "responses.status", "size": 10}}}}}},
    }
