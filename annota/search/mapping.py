"""A dataset's index mapping, following its settings.

``fields`` as text, ``responses`` (nested: one per user, with status and values per
question), ``suggestions`` per question (value, score, agent), ``metadata`` with each
property's declared type, ``vectors`` per vector setting. The mapping carries
``MAPPING_VERSION`` and a fingerprint of the settings in ``_meta``, so ``status`` can tell
when an index no longer matches the code or the dataset.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from annota import __version__
from annota.server.domain import models as m
from annota.server.domain.datasets import dataset_row

MAPPING_VERSION = 3  # 2: updated_at.exact; 3: vectors not quantized, submitted

QUESTION_VALUE = {
    "label_selection": {"type": "keyword"},
    "multi_label_selection": {"type": "keyword"},
    "rating": {"type": "integer"},
    "text": {"type": "text"},
}
METADATA_VALUE = {"terms": {"type": "keyword"}, "integer": {"type": "long"},
                  "float": {"type": "float"}}
UNINDEXED = {"type": "object", "enabled": False}  # kept in _source, not searchable


@dataclass(frozen=True)
class DatasetSchema:
    """What a dataset's documents look like, read from its settings."""

    id: uuid.UUID
    name: str
    fields: dict[str, str]  # name -> field type
    questions: dict[uuid.UUID, tuple[str, str]]  # id -> (name, question type)
    metadata: dict[str, str]  # name -> metadata type
    vectors: dict[uuid.UUID, tuple[str, int]]  # vector settings id -> (name, dimensions)

    @property
    def question_types(self) -> dict[str, str]:
        return dict(self.questions.values())

    @property
    def fingerprint(self) -> str:
        described = {
            "fields": sorted(self.fields.items()),
            "questions": sorted(self.questions.values()),
            "metadata": sorted(self.metadata.items()),
            "vectors": sorted(self.vectors.values()),
        }
        return hashlib.sha1(json.dumps(described).encode()).hexdigest()[:16]


def load_schema(connection: sa.Connection, dataset_id: uuid.UUID | str) -> DatasetSchema:
    dataset = dataset_row(connection, dataset_id)

    def settings_of(model: type) -> list[sa.Row]:
        return connection.execute(
            sa.select(model.id, model.name, model.settings).where(model.dataset_id == dataset.id)
        ).all()

    vectors = connection.execute(
        sa.select(m.VectorSettings.id, m.VectorSettings.name, m.VectorSettings.dimensions)
        .where(m.VectorSettings.dataset_id == dataset.id)
    ).all()
    return DatasetSchema(
        id=dataset.id,
        name=dataset.name,
        fields={r.name: r.settings.get("type", "text") for r in settings_of(m.Field)},
        questions={r.id: (r.name, r.settings.get("type", "")) for r in settings_of(m.Question)},
        metadata={r.name: r.settings.get("type", "terms")
                  for r in settings_of(m.MetadataProperty)},
        vectors={r.id: (r.name, r.dimensions) for r in vectors},
    )


def index_meta(schema: DatasetSchema, **extra: Any) -> dict[str, Any]:
    return {"annota": {"mapping_version": MAPPING_VERSION, "dataset_id": str(schema.id),
                       "settings_fingerprint": schema.fingerprint, "version": __version__,
                       **extra}}


def dataset_mapping(engine, schema: DatasetSchema, meta: dict) -> dict[str, Any]:  # noqa: ANN001
    questions = schema.question_types
    return {
        "_meta": meta,
        "dynamic": "strict",
        "properties": {
            "id": {"type": "keyword"},
            "dataset_id": {"type": "keyword"},
            "external_id": {"type": "keyword"},
            "inserted_at": {"type": "date"},
            # .exact: the version as the document carries it, read from doc values (fast)
            # when a reindex compares the index with the database
            "updated_at": {"type": "date", "fields": {"exact": {"type": "keyword"}}},
            "fields": {"dynamic": False, "properties": {
                name: {"type": "text"} if kind == "text" else UNINDEXED
                for name, kind in schema.fields.items()
            }},
            "metadata": {"dynamic": False, "properties": {
                name: METADATA_VALUE.get(kind, {"type": "keyword"})
                for name, kind in schema.metadata.items()
            }},
            "responses": {"type": "nested", "properties": {
                "user_id": {"type": "keyword"},
                "status": {"type": "keyword"},
                "updated_at": {"type": "date"},
                "values": {"properties": {
                    name: QUESTION_VALUE.get(kind, UNINDEXED) for name, kind in questions.items()
                }},
            }},
            "submitted": {"type": "integer"},  # submitted responses
            "suggestions": {"properties": {
                name: {"properties": {
                    "value": QUESTION_VALUE.get(kind, UNINDEXED),
                    "score": {"type": "float"},
                    "agent": {"type": "keyword"},
                }}
                for name, kind in questions.items()
            }},
            "vectors": {"properties": {
                name: engine.vector_field(dims) for name, dims in schema.vectors.values()
            }},
        },
    }
