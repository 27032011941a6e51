"""annota's queries (``query.py``) in SQL over an index's tables (``store.py``).

Each filter is a condition on the document row ``d``; values are bound, never spliced.
Values are converted as they were indexed (``ingest.py``), so a filter means here what it
means on the cluster engines: a float bound compares with the float32 a document keeps,
a time with its milliseconds. Text goes to FTS5 as quoted strings only, so that a user's
``AND``, ``*``, ``-`` or ``:`` is text, never query syntax.
"""

from __future__ import annotations

import re
from datetime import datetime, timezone
from typing import Any

from annota.search.query import (
    MetadataFilter,
    ResponseStatusFilter,
    ResponseValueFilter,
    SearchQuery,
    Sort,
    SuggestionFilter,
    TextQuery,
    TimeFilter,
)
from annota.search.sqlite.ingest import CONVERT, float32, millis

_OPS = {"ge": ">=", "gt": ">", "le": "<=", "lt": "<"}
_PHRASES = re.compile(r'"([^"]*)"?|(\S+)')  # "a phrase" (to its end if unclosed) or a term


class Compiled:
    """SQL pieces with their parameters, in order."""

    def __init__(self) -> None:
        self.where: list[str] = []
        self.params: list[Any] = []

    def add(self, sql: str, *params: Any) -> None:
        self.where.append(sql)
        self.params.extend(params)

    @property
    def clause(self) -> str:
        return " AND ".join(self.where) if self.where else "1"


def _marks(values: list[Any]) -> str:
    return ", ".join("?" * len(values))


def filters(t: str, layout: dict[str, Any], items: tuple[Any, ...]) -> Compiled:
    out = Compiled()
    for item in items:
        _filter(out, t, layout, item)
    return out


def _converted(kind: str | None, values: tuple[Any, ...]) -> list[Any]:
    convert = CONVERT.get(kind or "")
    out = []
    for value in values:
        try:
            out.append(convert(value) if convert else value)
        except (TypeError, ValueError, OverflowError):
            continue  # a value this field cannot hold matches nothing
    return out


def _filter(out: Compiled, t: str, layout: dict[str, Any], item: Any) -> None:
    if isinstance(item, MetadataFilter):
        kind = layout["metadata"].get(item.property)
        if item.values is not None:
            values = _converted(kind, item.values)
            out.add(f"d.rid IN (SELECT rid FROM {t}_meta WHERE name = ? AND value IN "
                    f"({_marks(values)}))", item.property, *values)
            return
        bounds = " AND ".join(f"value {_OPS[k]} ?" for k in item.bounds)
        out.add(f"d.rid IN (SELECT rid FROM {t}_meta WHERE name = ? AND {bounds})",
                item.property, *item.bounds.values())
    elif isinstance(item, ResponseStatusFilter):
        user = "user_id = ? AND " if item.user_id else ""
        users = [str(item.user_id)] if item.user_id else []
        answered = [s for s in item.statuses if s != "pending"]
        either, params = [], []
        if answered:
            either.append(f"EXISTS (SELECT 1 FROM {t}_resp r WHERE {user}r.rid = d.rid AND "
                          f"status IN ({_marks(answered)}))")
            params += [*users, *answered]
        if "pending" in item.statuses:
            either.append(f"NOT EXISTS (SELECT 1 FROM {t}_resp r WHERE {user}r.rid = d.rid)")
            params += users
        out.add("(" + " OR ".join(either) + ")", *params)
    elif isinstance(item, ResponseValueFilter):
        values = _converted(layout["answers"].get(item.question), item.values)
        user = " AND user_id = ?" if item.user_id else ""
        out.add(f"d.rid IN (SELECT rid FROM {t}_answer WHERE question = ? AND value IN "
                f"({_marks(values)}){user})", item.question, *values,
                *([str(item.user_id)] if item.user_id else []))
    elif isinstance(item, SuggestionFilter):
        _suggestion(out, t, layout, item)
    elif isinstance(item, TimeFilter):
        column = "d.inserted_ms" if item.type == "inserted_at" else "d.updated_ms"
        for op, bound in (("ge", item.ge), ("le", item.le)):
            if bound is not None:
                out.add(f"{column} {_OPS[op]} ?", millis(_utc(bound)))
    else:
        raise TypeError(f"no such filter: {item!r}")


def _suggestion(out: Compiled, t: str, layout: dict[str, Any], item: SuggestionFilter
                ) -> None:
    of = f"SELECT rid FROM {t}_sugg WHERE question = ?"
    if item.score is None and item.values is None and item.agents is None:
        out.add(f"d.rid IN ({of})", item.question)
    if item.values is not None:
        values = _converted(layout["suggestions"].get(item.question), item.values)
        out.add(f"d.rid IN ({of} AND value IN ({_marks(values)}))", item.question, *values)
    if item.score is not None:
        bounds = [(op, float(b)) for op, b in (("ge", item.score.ge), ("le", item.score.le))
                  if b is not None]
        out.add(f"d.rid IN ({of} AND " + " AND ".join(f"score {_OPS[op]} ?" for op, _ in bounds)
                + ")", item.question, *(b for _, b in bounds))
    if item.agents is not None:
        out.add(f"d.rid IN ({of} AND agent IN ({_marks(list(item.agents))}))", item.question,
                *item.agents)


def _utc(value: datetime) -> str:
    if value.tzinfo is not None:
        value = value.astimezone(timezone.utc).replace(tzinfo=None)
    return value.isoformat(timespec="microseconds")


def match(layout: dict[str, Any], text: TextQuery) -> str | None:
    """The FTS5 expression of ``text``: every term (or quoted phrase) in one of the
    fields; None when nothing in it can match (no such field, or no word at all)."""
    names = text.fields or tuple(layout["text"])
    columns = [f"c{layout['text'].index(n)}" for n in names if n in layout["text"]]
    parts = []
    for phrase, term in _PHRASES.findall(text.q):
        words = phrase if phrase else term
        if any(ch.isalnum() for ch in words):  # the tokenizer keeps letters and digits
            parts.append('"' + words.replace('"', '""') + '"')
    if not columns or not parts:
        return None
    return "{" + " ".join(columns) + "} : (" + " AND ".join(parts) + ")"


def order(t: str, sorts: tuple[Sort, ...], relevance: bool) -> tuple[str, list[Any]]:
    """ORDER BY: each sort (a document without the key last, whatever the direction),
    then the id, as the cluster engines' sorts end."""
    parts, params = [], []
    for sort in sorts:
        direction = sort.order.upper()
        pick = "MIN" if sort.order == "asc" else "MAX"  # as the clusters sort many values
        if sort.by == "relevance":
            parts.append(f"s.score {direction}" if relevance else "1")
            continue
        if sort.by in ("inserted_at", "updated_at"):
            key = f"d.{sort.by.removesuffix('_at')}_ms"
        elif sort.by.startswith("metadata."):
            key = f"(SELECT {pick}(value) FROM {t}_meta m WHERE m.rid = d.rid AND m.name = ?)"
            params.append(sort.by.split(".", 1)[1])
        else:  # suggestions.<question>.score
            key = (f"(SELECT {pick}(score) FROM {t}_sugg g WHERE g.rid = d.rid AND "
                   "g.question = ?)")
            params.append(sort.by.split(".", 1)[1].removesuffix(".score"))
        parts.append(f"{key} {direction} NULLS LAST")
    parts.append("d.id ASC")
    return ", ".join(parts), params


def sorts_of(query: SearchQuery) -> tuple[Sort, ...]:
    return query.sort or ((Sort(by="relevance", order="desc"),) if query.text else ())


__all__ = ["Compiled", "filters", "float32", "match", "order", "sorts_of"]
