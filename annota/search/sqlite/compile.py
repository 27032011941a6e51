"""annota's queries (``query.py``) in SQL over an index's tables (``store.py``).

Each filter is a condition on the document row ``d``; values are bound, never spliced.
Values are converted as they were indexed (``ingest.py``), so a filter means here what it
means on the cluster engines: a float bound compares with the float32 a document keeps,
a time with its milliseconds. Text goes to FTS5 as quoted strings only, so that a user's
``AND``, ``*``, ``-`` or ``:`` is text, never query syntax.
"""

from __future__ import annotations

import re
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
    utc_text,
)
from annota.search.sqlite.ingest import CONVERT, millis

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


def marks(values: list[Any]) -> str:
    """One bound parameter per value."""
    return ", ".join("?" * len(values))


def filters(t: str, layout: dict[str, Any], items: tuple[Any, ...]) -> Compiled:
    out = Compiled()
    for item in items:
        _filter(out, t, layout, item)
    return out


def converted(kind: str | None, values: tuple[Any, ...]) -> list[Any]:
    """Filter values as a field of ``kind`` keeps them; one it cannot hold is left out."""
    convert = CONVERT.get(kind or "")
    out = []
    for value in values:
        try:
            out.append(convert(value) if convert else value)
        except (TypeError, ValueError, OverflowError):
            continue  # a value this field cannot hold matches nothing
    return out


def column(layout: dict[str, Any], name: str) -> str | None:
    """The docs column holding a metadata property's single value."""
    names = list(layout["metadata"])
    return f"d.m{names.index(name)}" if name in names else None


def _filter(out: Compiled, t: str, layout: dict[str, Any], item: Any) -> None:
    if isinstance(item, MetadataFilter):
        kind, where = layout["metadata"].get(item.property), column(layout, item.property)
        if where is None:
            out.add("0")  # a property the index does not have matches nothing
            return
        if item.values is not None:
            values = converted(kind, item.values)
            test, params = f"IN ({marks(values)})", values
        else:
            test = " AND value ".join(f"{_OPS[k]} ?" for k in item.bounds)
            params = list(item.bounds.values())
        one = f"{where} {test}".replace(" AND value ", f" AND {where} ")
        if item.property not in layout.get("multi", ()):
            out.add(one, *params)
            return
        out.add(f"({one} OR d.rid IN (SELECT rid FROM {t}_meta WHERE name = ? AND value "
                f"{test}))", *params, item.property, *params)
    elif isinstance(item, ResponseStatusFilter):
        # d.resp is " user:status user:status ... " (a lone space: no response)
        user = str(item.user_id) if item.user_id else None
        either, params = [], []
        for status in item.statuses:
            if status == "pending":
                either.append("instr(d.resp, ?) = 0" if user else "d.resp = ' '")
                params += [f" {user}:"] if user else []
            else:
                either.append("instr(d.resp, ?) > 0")
                params.append(f" {user}:{status} " if user else f":{status} ")
        out.add("(" + " OR ".join(either) + ")", *params)
    elif isinstance(item, ResponseValueFilter):
        values = converted(layout["answers"].get(item.question), item.values)
        user = " AND user_id = ?" if item.user_id else ""
        out.add(f"d.rid IN (SELECT rid FROM {t}_answer WHERE question = ? AND value IN "
                f"({marks(values)}){user})", item.question, *values,
                *([str(item.user_id)] if item.user_id else []))
    elif isinstance(item, SuggestionFilter):
        _suggestion(out, t, layout, item)
    elif isinstance(item, TimeFilter):
        when = "d.inserted_ms" if item.type == "inserted_at" else "d.updated_ms"
        for op, bound in (("ge", item.ge), ("le", item.le)):
            if bound is not None:
                out.add(f"{when} {_OPS[op]} ?", millis(utc_text(bound)))
    else:
        raise TypeError(f"no such filter: {item!r}")


def _suggestion(out: Compiled, t: str, layout: dict[str, Any], item: SuggestionFilter
                ) -> None:
    of = f"SELECT rid FROM {t}_sugg WHERE question = ?"
    if item.score is None and item.values is None and item.agents is None:
        out.add(f"d.rid IN ({of})", item.question)
    if item.values is not None:
        values = converted(layout["suggestions"].get(item.question), item.values)
        out.add(f"d.rid IN ({of} AND value IN ({marks(values)}))", item.question, *values)
    if item.score is not None:
        bounds = [(op, float(b)) for op, b in (("ge", item.score.ge), ("le", item.score.le))
                  if b is not None]
        out.add(f"d.rid IN ({of} AND " + " AND ".join(f"score {_OPS[op]} ?" for op, _ in bounds)
                + ")", item.question, *(b for _, b in bounds))
    if item.agents is not None:
        out.add(f"d.rid IN ({of} AND agent IN ({marks(list(item.agents))}))", item.question,
                *item.agents)


def phrases(text: TextQuery) -> list[str]:
    """The text's terms and quoted phrases, in order (one with no letter or digit, which
    the tokenizer would drop whole, left out)."""
    out = []
    for phrase, term in _PHRASES.findall(text.q):
        words = phrase if phrase else term
        if any(ch.isalnum() for ch in words):  # the tokenizer keeps letters and digits
            out.append(words)
    return out


def text_columns(layout: dict[str, Any], text: TextQuery) -> list[int]:
    """The FTS5 columns (``c<i>``) of the fields ``text`` searches, each once."""
    names = text.fields or tuple(layout["text"])
    return sorted({layout["text"].index(n) for n in names if n in layout["text"]})


def match(layout: dict[str, Any], text: TextQuery) -> str | None:
    """The FTS5 expression of ``text``: every term (or quoted phrase) in one of the
    fields; None when nothing in it can match (no such field, or no word at all)."""
    columns, parts = text_columns(layout, text), phrases(text)
    if not columns or not parts:
        return None
    quoted = ('"' + words.replace('"', '""') + '"' for words in parts)
    return ("{" + " ".join(f"c{i}" for i in columns) + "} : (" + " AND ".join(quoted)
            + ")")


def order(t: str, layout: dict[str, Any], sorts: tuple[Sort, ...], relevance: bool
          ) -> tuple[str, list[Any]]:
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
            name = sort.by.split(".", 1)[1]
            key = column(layout, name) or "NULL"
            if name in layout.get("multi", ()):
                key = (f"coalesce({key}, (SELECT {pick}(value) FROM {t}_meta m WHERE "
                       "m.rid = d.rid AND m.name = ?))")
                params.append(name)
        else:  # suggestions.<question>.score
            key = (f"(SELECT {pick}(score) FROM {t}_sugg g WHERE g.rid = d.rid AND "
                   "g.question = ?)")
            params.append(sort.by.split(".", 1)[1].removesuffix(".score"))
        parts.append(f"{key} {direction} NULLS LAST")
    parts.append("d.id ASC")
    return ", ".join(parts), params


def sorts_of(query: SearchQuery) -> tuple[Sort, ...]:
    return query.sort or ((Sort(by="relevance", order="desc"),) if query.text else ())


