"""Input checked against a dataset's settings before anything is written.

Every problem is collected with its location (``("records", 3, "metadata", "length")``), so
a client sees all of them at once; ``InvalidInputError`` carries them and the HTTP API
answers 422 with each one. Nothing here writes.
"""

from __future__ import annotations

import contextlib
import math
import re
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa

from annota.errors import InvalidInputError
from annota.server.domain import models as m

QUESTION_TYPES = ("label_selection", "multi_label_selection", "rating", "text", "ranking",
                  "span")
METADATA_TYPES = ("terms", "integer", "float")
FIELD_TYPES = ("text", "image", "chat", "custom")
RESPONSE_STATUSES = ("draft", "submitted", "discarded")
SUGGESTION_TYPES = ("model", "human")
RECORD_KEYS = {"fields", "metadata", "external_id", "responses", "suggestions", "vectors"}
# names become search-document keys: no dots (they would nest), no control characters
NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_\-]{0,199}")
MAX_DIMENSIONS = 4096  # the largest dense vector Elasticsearch and OpenSearch both index
Loc = tuple[str | int, ...]


class Problems:
    """Problems found so far; ``check()`` raises them all as one ``InvalidInputError``."""

    def __init__(self) -> None:
        self.items: list[dict[str, Any]] = []

    def add(self, loc: Loc, msg: str) -> None:
        self.items.append({"loc": list(loc), "msg": msg})

    def check(self) -> None:
        if self.items:
            first = self.items[0]
            where = ".".join(str(p) for p in first["loc"])
            more = f" (and {len(self.items) - 1} more)" if len(self.items) > 1 else ""
            raise InvalidInputError(f"{where}: {first['msg']}{more}", problems=self.items)


def _number(value: Any) -> bool:
    return (isinstance(value, (int, float)) and not isinstance(value, bool)
            and math.isfinite(value))


# -- dataset settings --------------------------------------------------------------------

def check_dataset_settings(fields: list[dict], questions: list[dict], metadata: list[dict],
                           vectors: list[dict]) -> None:
    problems = Problems()
    for kind, items, types in (("fields", fields, FIELD_TYPES),
                               ("questions", questions, QUESTION_TYPES),
                               ("metadata_properties", metadata, METADATA_TYPES),
                               ("vector_settings", vectors, None)):
        seen: set[str] = set()
        for i, item in enumerate(items):
            name = item.get("name")
            if not isinstance(name, str) or not NAME.fullmatch(name):
                problems.add((kind, i, "name"), "a name of letters, digits, '_' and '-' "
                             "(at most 200, not starting with '-') is required")
            elif name in seen:
                problems.add((kind, i, "name"), f"{name!r} is given twice")
            else:
                seen.add(name)
            if types is not None and item.get("type") not in types:
                problems.add((kind, i, "type"), f"must be one of {', '.join(types)}")
            if kind == "questions":
                _check_question_settings(problems, ("questions", i), item)
            if kind == "vector_settings":
                dims = item.get("dimensions")
                if not (isinstance(dims, int) and not isinstance(dims, bool)
                        and 1 <= dims <= MAX_DIMENSIONS):
                    problems.add((kind, i, "dimensions"),
                                 f"must be a whole number from 1 to {MAX_DIMENSIONS}")
    if not fields:
        problems.add(("fields",), "a dataset needs at least one field")
    problems.check()


def _check_question_settings(problems: Problems, loc: Loc, question: dict) -> None:
    kind = question.get("type")
    if kind in ("label_selection", "multi_label_selection", "ranking"):
        options = question.get("options")
        if (not isinstance(options, list) or not options
                or not all(isinstance(o, str) and o for o in options)
                or len(set(options)) != len(options)):
            problems.add((*loc, "options"), "a list of distinct, non-empty strings is required")
    if kind == "rating":
        values = question.get("values", list(range(1, 11)))
        if (not isinstance(values, list) or not values
                or not all(isinstance(v, int) and not isinstance(v, bool) for v in values)
                or len(set(values)) != len(values)):
            problems.add((*loc, "values"), "a list of distinct whole numbers is required")


# -- records -------------------------------------------------------------------------------

@dataclass(frozen=True)
class DatasetSettings:
    """What a dataset accepts, read once per request."""

    fields: dict[str, tuple[str, bool]]  # name -> (type, required)
    questions: dict[str, tuple[uuid.UUID, dict]]  # name -> (id, settings)
    metadata: dict[str, str]  # name -> type
    vectors: dict[str, tuple[uuid.UUID, int]]  # name -> (id, dimensions)
    users: set[uuid.UUID] = field(default_factory=set)

    @classmethod
    def load(cls, connection: sa.Connection, dataset_id: uuid.UUID,
             user_ids: Iterable[uuid.UUID] = ()) -> DatasetSettings:
        def rows(model: Any, *columns: Any) -> list[Any]:
            return connection.execute(sa.select(model.name, *columns)
                                      .where(model.dataset_id == dataset_id)).all()

        wanted = set(user_ids)
        users = set(connection.execute(sa.select(m.User.id).where(m.User.id.in_(wanted)))
                    .scalars()) if wanted else set()
        return cls(
            fields={r.name: ((r.settings or {}).get("type", "text"), bool(r.required))
                    for r in rows(m.Field, m.Field.settings, m.Field.required)},
            questions={r.name: (r.id, r.settings or {})
                       for r in rows(m.Question, m.Question.id, m.Question.settings)},
            metadata={r.name: (r.settings or {}).get("type", "terms")
                      for r in rows(m.MetadataProperty, m.MetadataProperty.settings)},
            vectors={r.name: (r.id, r.dimensions)
                     for r in rows(m.VectorSettings, m.VectorSettings.id,
                                   m.VectorSettings.dimensions)},
            users=users,
        )


def user_ids_in(records: list[Any]) -> set[uuid.UUID]:
    found = set()
    for record in records:
        for response in (record.get("responses") or []) if isinstance(record, dict) else []:
            with contextlib.suppress(ValueError, AttributeError):
                found.add(uuid.UUID(str(response.get("user_id"))))
    return found


def check_records(settings: DatasetSettings, records: list[Any]) -> None:
    """Every problem of every record, raised together; nothing is written by this."""
    problems = Problems()
    external_ids: dict[str, int] = {}
    for i, record in enumerate(records):
        loc: Loc = ("records", i)
        if not isinstance(record, dict):
            problems.add(loc, "a record is an object")
            continue
        for key in sorted(set(record) - RECORD_KEYS):
            problems.add((*loc, key), "unknown key")
        _check_fields(problems, settings, loc, record.get("fields"))
        _check_metadata(problems, settings, loc, record.get("metadata"))
        external_id = record.get("external_id")
        if external_id is not None:
            if not isinstance(external_id, str) or not external_id.strip():
                problems.add((*loc, "external_id"), "a non-empty string, or null")
            elif external_id in external_ids:
                problems.add((*loc, "external_id"),
                             f"also given to record {external_ids[external_id]}")
            else:
                external_ids[external_id] = i
        _check_responses(problems, settings, loc, record.get("responses"))
        _check_suggestions(problems, settings, loc, record.get("suggestions"))
        _check_vectors(problems, settings, loc, record.get("vectors"))
    problems.check()


def _check_fields(problems: Problems, settings: DatasetSettings, loc: Loc, fields: Any) -> None:
    if not isinstance(fields, dict) or not fields:
        problems.add((*loc, "fields"), "a non-empty object is required")
        return
    for name in fields:
        if name not in settings.fields:
            problems.add((*loc, "fields", name), "the dataset has no such field")
    for name, (kind, required) in settings.fields.items():
        value = fields.get(name)
        if value is None:
            if required:
                problems.add((*loc, "fields", name), "this field is required")
        elif kind in ("text", "image") and not isinstance(value, str):
            problems.add((*loc, "fields", name), f"a {kind} field takes a string")
        elif kind == "chat" and not isinstance(value, list):
            problems.add((*loc, "fields", name), "a chat field takes a list of messages")


def _check_metadata(problems: Problems, settings: DatasetSettings, loc: Loc,
                    metadata: Any) -> None:
    if metadata is None:
        return
    if not isinstance(metadata, dict):
        problems.add((*loc, "metadata"), "an object, or null")
        return
    for name, value in metadata.items():
        kind = settings.metadata.get(name)
        where = (*loc, "metadata", name)
        if kind is None or value is None:
            continue  # undeclared metadata is kept as given (stored, not searchable)
        elif kind == "terms" and not (isinstance(value, str) or (
                isinstance(value, list) and all(isinstance(v, str) for v in value))):
            problems.add(where, "a terms property takes a string or a list of strings")
        elif kind == "integer" and not (_number(value) and float(value).is_integer()
                                        and abs(value) < 2**63):
            problems.add(where, "an integer property takes a whole number")
        elif kind == "float" and not (_number(value) and abs(value) < 3.4e38):
            problems.add(where, "a float property takes a finite number")


def check_value(question: dict, value: Any) -> str | None:
    """What is wrong with ``value`` as an answer to ``question``, or None."""
    kind = question.get("type")
    options = question.get("options")  # questions of old releases may not list them
    if kind == "label_selection":
        if options is None:
            return None if isinstance(value, (str, int)) else "a label"
        return None if value in options else f"one of {options}"
    if kind in ("multi_label_selection", "ranking"):
        ok = isinstance(value, list) and all(
            isinstance(v, str) and (options is None or v in options) for v in value)
        return None if ok and len(set(value)) == len(value) else (
            f"a list of distinct labels{f' from {options}' if options else ''}")
    if kind == "rating":
        values = question.get("values", list(range(1, 11)))
        ok = isinstance(value, int) and not isinstance(value, bool) and value in values
        return None if ok else f"one of {values}"
    if kind == "text":
        return None if isinstance(value, str) else "a string"
    if kind == "span":
        return None if isinstance(value, list) else "a list of spans"
    return None


def _check_responses(problems: Problems, settings: DatasetSettings, loc: Loc,
                     responses: Any) -> None:
    if responses is None:
        return
    if not isinstance(responses, list):
        problems.add((*loc, "responses"), "a list")
        return
    users: set[uuid.UUID] = set()
    for j, response in enumerate(responses):
        where = (*loc, "responses", j)
        if not isinstance(response, dict):
            problems.add(where, "a response is an object")
            continue
        try:
            user = uuid.UUID(str(response.get("user_id")))
        except ValueError:
            problems.add((*where, "user_id"), "a user id (UUID) is required")
        else:
            if user not in settings.users:
                problems.add((*where, "user_id"), "no such user")
            elif user in users:
                problems.add((*where, "user_id"), "one response per user and record")
            users.add(user)
        if response.get("status", "submitted") not in RESPONSE_STATUSES:
            problems.add((*where, "status"), f"one of {', '.join(RESPONSE_STATUSES)}")
        values = response.get("values") or {}
        if not isinstance(values, dict):
            problems.add((*where, "values"), "an object of question: {value}")
            continue
        for question, answer in values.items():
            if question not in settings.questions:
                problems.add((*where, "values", question), "the dataset has no such question")
            elif not isinstance(answer, dict) or "value" not in answer:
                problems.add((*where, "values", question), 'an object {"value": ...}')
            elif (wrong := check_value(settings.questions[question][1], answer["value"])):
                problems.add((*where, "values", question, "value"), wrong)


def _check_suggestions(problems: Problems, settings: DatasetSettings, loc: Loc,
                       suggestions: Any) -> None:
    if suggestions is None:
        return
    if not isinstance(suggestions, list):
        problems.add((*loc, "suggestions"), "a list")
        return
    questions: set[str] = set()
    for j, suggestion in enumerate(suggestions):
        where = (*loc, "suggestions", j)
        if not isinstance(suggestion, dict):
            problems.add(where, "a suggestion is an object")
            continue
        question = suggestion.get("question")
        if question not in settings.questions:
            problems.add((*where, "question"), "the dataset has no such question")
        elif question in questions:
            problems.add((*where, "question"), "one suggestion per question and record")
        elif "value" not in suggestion:
            problems.add((*where, "value"), "a value is required")
        elif (wrong := check_value(settings.questions[question][1], suggestion["value"])):
            problems.add((*where, "value"), wrong)
        if isinstance(question, str):
            questions.add(question)
        score = suggestion.get("score")
        if score is not None and not (_number(score) and 0 <= score <= 1):
            problems.add((*where, "score"), "a number from 0 to 1, or null")
        agent = suggestion.get("agent")
        if agent is not None and not isinstance(agent, str):
            problems.add((*where, "agent"), "a string, or null")
        if suggestion.get("type", "model") not in SUGGESTION_TYPES:
            problems.add((*where, "type"), f"one of {', '.join(SUGGESTION_TYPES)}")


def _check_vectors(problems: Problems, settings: DatasetSettings, loc: Loc,
                   vectors: Any) -> None:
    if vectors is None:
        return
    if not isinstance(vectors, dict):
        problems.add((*loc, "vectors"), "an object of vector setting: [numbers]")
        return
    for name, value in vectors.items():
        where = (*loc, "vectors", name)
        if name not in settings.vectors:
            problems.add(where, "the dataset has no such vector setting")
            continue
        dims = settings.vectors[name][1]
        if (not isinstance(value, list) or len(value) != dims
                or not all(_number(v) and abs(v) < 3.4e38 for v in value)):
            problems.add(where, f"a list of {dims} finite numbers")


# -- search ----------------------------------------------------------------------------------

def metadata_problem(kind: str | None, values: list | None = None,
                     bounds: dict | None = None) -> tuple[str, str] | None:
    """What is wrong with matching a metadata property of ``kind`` (None: the dataset has
    no such property) by ``values`` or by ``bounds``: (the part at fault: ``property``,
    ``values`` or ``bounds``; why), or None."""
    if kind is None:
        return "property", "the dataset has no such metadata property"
    if values is not None:
        if kind != "terms" and not all(_number(v) for v in values):
            return "values", f"a {kind} property is matched by numbers"
        if kind == "integer" and not all(float(v).is_integer() for v in values):
            return "values", "an integer property is matched by whole numbers"
    if bounds is not None:
        if kind == "terms":
            return "bounds", "ranges apply to integer and float properties"
        if not all(math.isfinite(v) for v in bounds.values()):
            return "bounds", "bounds are finite numbers"
    return None


def check_search(settings: DatasetSettings, terms: dict[str, list], ranges: dict[str, dict]
                 ) -> None:
    """Search input the engine would refuse, refused here first."""
    problems = Problems()
    for where, name, found in (
            *(("terms", n, metadata_problem(settings.metadata.get(n), values=v))
              for n, v in terms.items()),
            *(("ranges", n, metadata_problem(settings.metadata.get(n), bounds=b))
              for n, b in ranges.items())):
        if found:
            problems.add((where, name), found[1])
    problems.check()
