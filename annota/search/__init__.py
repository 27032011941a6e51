"""Search: one engine interface over Elasticsearch, OpenSearch and the embedded SQLite
engine, and the reindex task."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from annota.config import SearchSettings
    from annota.search.engine import SearchEngine


def connect(settings: SearchSettings) -> SearchEngine:
    """The engine for ``settings`` (its client imported only now), checked to answer and
    to be the kind configured."""
    if settings.engine == "sqlite":
        from annota.search.sqlite.engine import SqliteEngine as Engine
    elif settings.engine == "opensearch":
        from annota.search.opensearch import OpenSearchEngine as Engine
    else:
        from annota.search.elasticsearch import ElasticsearchEngine as Engine
    engine = Engine(settings)
    engine.info()
    return engine
