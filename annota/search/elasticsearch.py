"""Elasticsearch 8 and 9, through the official client (8.x, which speaks to both)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from elasticsearch import ApiError, Elasticsearch, UnsupportedProductError
from elasticsearch import ConnectionError as ClientConnectionError
from elasticsearch.helpers import streaming_bulk

from annota.errors import WrongSearchEngineError
from annota.search.cluster import ClusterEngine
from annota.search.engine import EngineInfo, Versioned, too_many_requests

SUPPORTED_MAJORS = ("8", "9")


class ElasticsearchEngine(ClusterEngine):
    bulk_helper = staticmethod(streaming_bulk)
    kind, label = "elasticsearch", "Elasticsearch"

    def _client(self) -> Elasticsearch:
        s = self.settings
        url, headers = self.endpoint()
        return Elasticsearch(
            hosts=[url],
            headers=headers,
            api_key=s.api_key.get_secret_value() if s.api_key else None,
            ca_certs=str(s.ca_path) if s.ca_path else None,
            verify_certs=s.verify_certs,
            request_timeout=120,
            max_retries=2,
            retry_on_timeout=True,
        )

    @contextmanager
    def _call(self, what: str) -> Iterator[None]:
        try:
            yield
        except UnsupportedProductError:
            raise WrongSearchEngineError(
                f"the server at {self.settings.masked_url} is not Elasticsearch (OpenSearch?); "
                "set ANNOTA_SEARCH_ENGINE=opensearch"
            ) from None
        except ClientConnectionError as exc:
            raise self.unreachable(exc) from None
        except ApiError as exc:
            if exc.meta.status == 429:
                raise too_many_requests() from None
            raise self.refused(what, exc.meta.status, exc.body) from None

    def info(self) -> EngineInfo:
        # the nodes API, not GET /: minimal distributions may not serve the root endpoint
        with self._call("report its version"):
            nodes = self.client.nodes.info(node_id="_local", filter_path="nodes.*.version")
        version = next(iter(nodes["nodes"].values()))["version"]
        if version.split(".")[0] not in SUPPORTED_MAJORS:
            raise WrongSearchEngineError(
                f"Elasticsearch {version} at {self.settings.masked_url} is not supported; "
                "annota needs Elasticsearch 8 or 9"
            )
        return EngineInfo(self.kind, version)

    def vector_field(self, dimensions: int) -> dict[str, Any]:
        # hnsw over the floats themselves: the default since 8.14 quantizes them to int8,
        # which moves scores by several hundredths and reorders near neighbours
        return {"type": "dense_vector", "dims": dimensions, "index": True,
                "similarity": "cosine", "index_options": {"type": "hnsw"}}

    def index_settings(self, *, vectors: bool) -> dict[str, Any]:
        return {}

    def create_index(self, name: str, settings: dict, mappings: dict,
                     aliases: list[str] = ()) -> None:
        with self._call(f"create index {name}"):
            self.client.indices.create(index=name, settings=settings, mappings=mappings,
                                       aliases={a: {"is_write_index": True} for a in aliases})

    def delete_index(self, name: str) -> None:
        with self._call(f"delete index {name}"):
            self.client.options(ignore_status=404).indices.delete(index=name)

    def put_settings(self, name: str, settings: dict) -> None:
        with self._call(f"update the settings of {name}"):
            self.client.indices.put_settings(index=name, settings=settings)

    def put_meta(self, name: str, meta: dict) -> None:
        with self._call(f"update the mapping of {name}"):
            self.client.indices.put_mapping(index=name, meta=meta)

    def refresh(self, name: str) -> None:
        with self._call(f"refresh {name}"):
            self.client.indices.refresh(index=name)

    def count(self, name: str) -> int:
        with self._call(f"count {name}"):
            return self.client.count(index=name)["count"]

    def bulk(self, operations: list[dict]) -> dict:
        with self._call("index documents"):
            return self.client.bulk(operations=operations).body

    def indices(self, pattern: str) -> dict[str, list[str]]:
        with self._call(f"list indices {pattern}"):
            # closed indices too: one that is closed still holds its alias, and must not be
            # taken for missing (a second index would be made behind the same alias)
            found = self.client.indices.get_alias(index=pattern, expand_wildcards="open,closed")
        return {name: sorted(entry.get("aliases", {})) for name, entry in found.body.items()}

    def update_aliases(self, actions: list[dict]) -> None:
        with self._call("switch aliases"):
            done = self.client.indices.update_aliases(actions=actions).body
        self.check_aliases_switched(done)

    def create_document(self, index: str, doc_id: str, body: dict) -> Versioned | None:
        with self._call(f"create document {doc_id} in {index}"):
            found = self.client.options(ignore_status=409).create(
                index=index, id=doc_id, document=body, refresh=True)
        return None if found.meta.status == 409 else (found["_seq_no"], found["_primary_term"])

    def get_document(self, index: str, doc_id: str) -> tuple[dict, Versioned] | None:
        with self._call(f"read document {doc_id} of {index}"):
            found = self.client.options(ignore_status=404).get(index=index, id=doc_id)
        if not found.body.get("found"):
            return None
        return found["_source"], (found["_seq_no"], found["_primary_term"])

    def replace_document(self, index: str, doc_id: str, body: dict,
                         version: Versioned) -> Versioned | None:
        with self._call(f"update document {doc_id} of {index}"):
            done = self.client.options(ignore_status=(404, 409)).index(
                index=index, id=doc_id, document=body, if_seq_no=version[0],
                if_primary_term=version[1], refresh=True)
        return None if done.meta.status in (404, 409) else (done["_seq_no"],
                                                            done["_primary_term"])

    def delete_document(self, index: str, doc_id: str, version: Versioned) -> None:
        with self._call(f"delete document {doc_id} of {index}"):
            self.client.options(ignore_status=(404, 409)).delete(
                index=index, id=doc_id, if_seq_no=version[0], if_primary_term=version[1],
                refresh=True)

    def mapping_meta(self, name: str) -> dict:
        with self._call(f"read the mapping of {name}"):
            found = self.client.indices.get_mapping(index=name)
        return {index: entry["mappings"].get("_meta", {}) for index, entry in found.body.items()}

    def run_search(self, index: str, body: dict) -> dict:
        names = {"from": "from_", "_source": "source"}
        with self._call(f"search {index}"):
            return dict(self.client.search(
                index=index, **{names.get(k, k): v for k, v in body.items()}))

    def similarity_body(self, field: str, vector: list[float], k: int,
                        filters: list[dict]) -> dict:
        return {"knn": {"field": f"vectors.{field}", "query_vector": vector, "k": k,
                        "num_candidates": max(100, 10 * k), "filter": filters},
                "size": k}

    def search(self, index: str, query: dict, *, size: int = 10, sort: list | None = None,
               search_after: list | None = None, source: Any = True,
               docvalues: list[str] | None = None) -> list[dict]:
        extra: dict[str, Any] = {"docvalue_fields": docvalues} if docvalues else {}
        if docvalues and source is False:
            extra["stored_fields"] = "_none_"  # not even _id: the sort values carry the id
        with self._call(f"search {index}"):
            response = self.client.search(index=index, query=query, size=size, sort=sort,
                                          search_after=search_after, source=source,
                                          track_total_hits=False, **extra)
        return response["hits"]["hits"]
