"""OpenSearch 2.x, through opensearch-py. Vectors need the k-NN plugin."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from opensearchpy import OpenSearch
from opensearchpy.exceptions import ConflictError, NotFoundError, TransportError
from opensearchpy.exceptions import ConnectionError as ClientConnectionError
from opensearchpy.helpers import streaming_bulk

from annota.errors import (
    SearchEngineError,
    SearchEngineUnreachableError,
    WrongSearchEngineError,
)
from annota.search.cluster import ClusterEngine
from annota.search.engine import EngineInfo, Versioned, too_many_requests


class OpenSearchEngine(ClusterEngine):
    bulk_helper = staticmethod(streaming_bulk)
    kind, label = "opensearch", "OpenSearch"

    def _client(self) -> OpenSearch:
        s = self.settings  # an API key with OpenSearch is refused by the settings
        url, headers = self.endpoint()
        return OpenSearch(
            hosts=[url],
            headers=headers,
            ca_certs=str(s.ca_path) if s.ca_path else None,
            verify_certs=s.verify_certs,
            ssl_show_warn=s.verify_certs,
            timeout=120,
            max_retries=2,
            retry_on_timeout=True,
        )

    @contextmanager
    def _call(self, what: str) -> Iterator[None]:
        try:
            yield
        except ClientConnectionError as exc:
            raise self.unreachable(exc) from None
        except TransportError as exc:
            if exc.status_code == 429:
                raise too_many_requests() from None
            raise self.refused(what, exc.status_code, exc.info) from None

    def info(self) -> EngineInfo:
        wrong = WrongSearchEngineError(
            f"the server at {self.settings.masked_url} is not OpenSearch (Elasticsearch?); "
            "set ANNOTA_SEARCH_ENGINE=elasticsearch"
        )
        try:
            with self._call("report its version"):
                version = self.client.info()["version"]
        except SearchEngineError as exc:
            if isinstance(exc, SearchEngineUnreachableError):
                raise
            raise wrong from None  # Elasticsearch may refuse GET / outright
        if version.get("distribution") != "opensearch":
            raise wrong
        return EngineInfo(self.kind, version["number"])

    def vectors_supported(self) -> bool:
        with self._call("list its plugins"):
            plugins = self.client.cat.plugins(format="json")
        return any(p.get("component") == "opensearch-knn" for p in plugins)

    def vector_field(self, dimensions: int) -> dict[str, Any]:
        return {"type": "knn_vector", "dimension": dimensions,
                "method": {"name": "hnsw", "engine": "lucene", "space_type": "cosinesimil"}}

    def index_settings(self, *, vectors: bool) -> dict[str, Any]:
        return {"index.knn": True} if vectors else {}

    def create_index(self, name: str, settings: dict, mappings: dict,
                     aliases: list[str] = ()) -> None:
        body = {"settings": settings, "mappings": mappings,
                "aliases": {a: {"is_write_index": True} for a in aliases}}
        with self._call(f"create index {name}"):
            self.client.indices.create(index=name, body=body)

    def delete_index(self, name: str) -> None:
        try:
            with self._call(f"delete index {name}"):
                self.client.indices.delete(index=name)
        except SearchEngineError:
            if self._exists(name):
                raise

    def _exists(self, name: str) -> bool:
        try:
            return bool(self.client.indices.exists(index=name))
        except NotFoundError:
            return False

    def put_settings(self, name: str, settings: dict) -> None:
        with self._call(f"update the settings of {name}"):
            self.client.indices.put_settings(index=name, body=settings)

    def put_meta(self, name: str, meta: dict) -> None:
        with self._call(f"update the mapping of {name}"):
            self.client.indices.put_mapping(index=name, body={"_meta": meta})

    def refresh(self, name: str) -> None:
        with self._call(f"refresh {name}"):
            self.client.indices.refresh(index=name)

    def count(self, name: str) -> int:
        with self._call(f"count {name}"):
            return self.client.count(index=name)["count"]

    def bulk(self, operations: list[dict]) -> dict:
        with self._call("index documents"):
            return self.client.bulk(body=operations)

    def indices(self, pattern: str) -> dict[str, list[str]]:
        with self._call(f"list indices {pattern}"):
            # closed indices too: one that is closed still holds its alias, and must not be
            # taken for missing (a second index would be made behind the same alias)
            found = self.client.indices.get_alias(index=pattern, expand_wildcards="open,closed")
        return {name: sorted(entry.get("aliases", {})) for name, entry in found.items()}

    def update_aliases(self, actions: list[dict]) -> None:
        with self._call("switch aliases"):
            done = self.client.indices.update_aliases(body={"actions": actions})
        self.check_aliases_switched(done)

    def create_document(self, index: str, doc_id: str, body: dict) -> Versioned | None:
        try:
            done = self.client.create(index=index, id=doc_id, body=body, refresh=True)
        except ConflictError:
            return None
        except ClientConnectionError as exc:
            raise self.unreachable(exc) from None
        return done["_seq_no"], done["_primary_term"]

    def get_document(self, index: str, doc_id: str) -> tuple[dict, Versioned] | None:
        try:
            found = self.client.get(index=index, id=doc_id)
        except NotFoundError:
            return None
        except ClientConnectionError as exc:
            raise self.unreachable(exc) from None
        return found["_source"], (found["_seq_no"], found["_primary_term"])

    def replace_document(self, index: str, doc_id: str, body: dict,
                         version: Versioned) -> Versioned | None:
        try:
            done = self.client.index(index=index, id=doc_id, body=body, refresh=True,
                                     if_seq_no=version[0], if_primary_term=version[1])
        except (ConflictError, NotFoundError):
            return None
        except ClientConnectionError as exc:
            raise self.unreachable(exc) from None
        return done["_seq_no"], done["_primary_term"]

    def delete_document(self, index: str, doc_id: str, version: Versioned) -> None:
        try:
            self.client.delete(index=index, id=doc_id, refresh=True, if_seq_no=version[0],
                               if_primary_term=version[1])
        except (ConflictError, NotFoundError):
            pass
        except ClientConnectionError as exc:
            raise self.unreachable(exc) from None

    def mapping_meta(self, name: str) -> dict:
        with self._call(f"read the mapping of {name}"):
            found = self.client.indices.get_mapping(index=name)
        return {index: entry["mappings"].get("_meta", {}) for index, entry in found.items()}

    def run_search(self, index: str, body: dict) -> dict:
        with self._call(f"search {index}"):
            return dict(self.client.search(index=index, body=body))

    def similarity_body(self, field: str, vector: list[float], k: int,
                        filters: list[dict]) -> dict:
        # the Lucene engine explores as many candidates as k: ask for as many as
        # Elasticsearch's num_candidates, keep the k best
        knn: dict[str, Any] = {"vector": vector, "k": max(100, 10 * k)}
        if filters:  # the Lucene engine filters while it searches: k come back if k match
            knn["filter"] = {"bool": {"filter": filters}}
        return {"query": {"knn": {f"vectors.{field}": knn}}, "size": k}

    def search(self, index: str, query: dict, *, size: int = 10, sort: list | None = None,
               search_after: list | None = None, source: Any = True,
               docvalues: list[str] | None = None) -> list[dict]:
        body: dict[str, Any] = {"query": query, "size": size, "_source": source,
                                "track_total_hits": False}
        if docvalues:
            body["docvalue_fields"] = docvalues
            if source is False:
                body["stored_fields"] = "_none_"  # the sort values carry the id
        if sort:
            body["sort"] = sort
        if search_after:
            body["search_after"] = search_after
        with self._call(f"search {index}"):
            return self.client.search(index=index, body=body)["hits"]["hits"]
