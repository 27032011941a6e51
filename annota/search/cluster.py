"""What Elasticsearch and OpenSearch share: annota's queries compiled to their query DSL
(``dsl.py``) and answered by one search request, and the reindex's reads (versions by
``search_after`` on the ``id`` keyword, from doc values). What differs between the two
(client, call style, kNN clause) is each subclass's."""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Iterator
from typing import Any

from annota.search import dsl
from annota.search.engine import Finding, SearchEngine
from annota.search.query import Hit, SearchQuery, SearchResult, Sort

_SOURCE = {"excludes": ["vectors"]}  # a hit carries its record, not its embeddings
_DISK = "cluster.routing.allocation.disk."
_BLOCKS = ("index.blocks.read_only_allow_delete", "index.blocks.read_only",
           "index.blocks.write")
_UNITS = {"b": 1, "kb": 1 << 10, "mb": 1 << 20, "gb": 1 << 30, "tb": 1 << 40, "pb": 1 << 50}


class ClusterEngine(SearchEngine):
    bulk_helper: Any  # the client's own streaming_bulk

    @abstractmethod
    def _call(self, what: str) -> Any:
        """A context manager turning the client's errors into annota's."""

    @abstractmethod
    def bulk(self, operations: list[dict]) -> dict:
        """One _bulk request; ``SearchEngineOverloadedError`` when all of it is refused (429)."""

    @abstractmethod
    def search(self, index: str, query: dict, *, size: int = 10, sort: list | None = None,
               search_after: list | None = None, source: Any = True,
               docvalues: list[str] | None = None) -> list[dict]: ...

    @abstractmethod
    def run_search(self, index: str, body: dict) -> dict:
        """One search request, its whole response; ``body`` in the REST API's terms
        (``query``, ``knn``, ``from``, ``size``, ``sort``, ``aggs``, ``_source``,
        ``track_total_hits``)."""

    @abstractmethod
    def similarity_body(self, field: str, vector: list[float], k: int,
                        filters: list[dict]) -> dict:
        """The request body of the ``k`` nearest documents to ``vector`` in vector
        ``field`` among those matching ``filters`` (filtered before the top k is taken)."""

    def stream_bulk(self, actions: Iterator[dict], *, chunk_docs: int,
                    chunk_bytes: int) -> Iterator[tuple[bool, dict]]:
        with self._call("index documents"):
            yield from self.bulk_helper(self.client, actions, chunk_size=chunk_docs,
                                        max_chunk_bytes=chunk_bytes, raise_on_error=False,
                                        raise_on_exception=False, max_retries=0)

    # -- preflight ----------------------------------------------------------------------
    def findings(self) -> list[Finding]:
        with self._call("report its health"):
            health = self.client.cluster.health()
        status = health.get("status")
        out = [Finding("search-health", f"cluster {status}, "
                       f"{health.get('number_of_nodes')} node(s), "
                       f"{health.get('unassigned_shards')} unassigned shard(s)",
                       None if status in ("green", "yellow") else
                       "a red cluster has primary shards unassigned: bring their nodes "
                       "back (GET _cluster/allocation/explain says why) before upgrading")]
        out.append(self._disk())
        with self._call("report index blocks"):
            blocks = self.client.indices.get_settings(
                index=f"{self.prefix}.*", name="index.blocks.*", flat_settings=True,
                expand_wildcards="all")
        blocked = sorted(name for name, body in blocks.items()
                         if any(str(body.get("settings", {}).get(b)).lower() == "true"
                                for b in _BLOCKS))
        if not blocked:
            out.append(Finding("search-read-only", f"annota's {len(blocks)} indices take "
                               "writes"))
            return out
        out.append(Finding(
            "search-read-only", f"{len(blocked)} of annota's {len(blocks)} indices refuse "
            f"writes: {', '.join(blocked[:5])}",
            "free disk space on the cluster, then lift the block: PUT <index>/_settings "
            '{"index.blocks.read_only_allow_delete": null} (a reindex would fail on them)'))
        return out

    def _disk(self) -> Finding:
        """Each node's disk against the cluster's high and flood-stage watermarks."""
        with self._call("report its disk settings"):
            given = self.client.cluster.get_settings(include_defaults=True, flat_settings=True)
            fs = self.client.nodes.stats(metric="fs")
        merged = {**given.get("defaults", {}), **given.get("persistent", {}),
                  **given.get("transient", {})}
        if str(merged.get(_DISK + "threshold_enabled", "true")).lower() != "true":
            return Finding("search-disk", "disk watermarks are disabled on this cluster")
        crossed, seen = [], []
        for node in fs.get("nodes", {}).values():
            total = node["fs"]["total"]
            size, free = total.get("total_in_bytes", 0), total.get("available_in_bytes", 0)
            if not size:
                continue
            seen.append(f"{node.get('name')} {100 * (size - free) / size:.0f}% used")
            for level in ("high", "flood_stage"):
                limit = merged.get(f"{_DISK}watermark.{level}")
                if limit is not None and _crossed(str(limit), size, free):
                    crossed.append(f"{node.get('name')} is past the {level} watermark "
                                   f"({limit})")
                    break
        return Finding("search-disk", "; ".join(crossed or seen) or "no node reported disk",
                       None if not crossed else
                       "free disk on those nodes or raise cluster.routing.allocation.disk."
                       "watermark.*: past the high watermark new indices are not allocated "
                       "(a reindex would hang), past the flood stage indices turn read-only")

    # -- annota's queries ---------------------------------------------------------------
    def find(self, alias: str, query: SearchQuery, metadata_types: dict[str, str]
             ) -> SearchResult:
        sorts = query.sort or ((Sort(by="relevance", order="desc"),) if query.text else ())
        response = self.run_search(alias, {
            "query": dsl.bool_query(query), "from": query.offset, "size": query.limit,
            "sort": dsl.sort_clauses(sorts, metadata_types), "track_total_hits": True,
            "_source": _SOURCE})
        hits = response["hits"]
        return SearchResult(total=_total(hits), hits=tuple(
            Hit(id=h["_id"], score=h.get("_score"), source=h["_source"])
            for h in hits["hits"]))

    def nearest(self, alias: str, field: str, vector: list[float], k: int,
                filters: tuple[Any, ...]) -> list[Hit]:
        body = self.similarity_body(field, vector, k, dsl.filter_clauses(filters))
        response = self.run_search(alias, {**body, "_source": _SOURCE})
        # both engines score cosine c as (1 + c) / 2
        return [Hit(id=h["_id"], score=2.0 * h["_score"] - 1.0, source=h["_source"])
                for h in response["hits"]["hits"]]

    def metrics(self, alias: str, filters: tuple[Any, ...], property_name: str,
                kind: str) -> tuple[int, dict[str, Any]]:
        total, aggs = self._aggregated(alias, filters,
                                       dsl.metrics_aggregation(kind, property_name))
        if kind == "terms":
            buckets = aggs.get("values", {}).get("buckets", [])
            return total, {"values": {str(b["key"]): b["doc_count"] for b in buckets}}
        return total, {n: aggs.get(n, {}).get("value") for n in ("min", "max")}

    def progress(self, alias: str, filters: tuple[Any, ...], min_submitted: int
                 ) -> tuple[int, int, dict[str, dict[str, int]]]:
        total, aggs = self._aggregated(alias, filters, dsl.progress_aggregation(min_submitted))
        users = {str(bucket["key"]): {s["key"]: s["doc_count"]
                                      for s in bucket["statuses"]["buckets"]}
                 for bucket in aggs.get("responses", {}).get("users", {}).get("buckets", [])}
        return total, aggs.get("completed", {}).get("doc_count", 0), users

    def _aggregated(self, alias: str, filters: tuple[Any, ...], aggs: dict[str, Any]
                    ) -> tuple[int, dict[str, Any]]:
        response = self.run_search(alias, {
            "query": {"bool": {"filter": dsl.filter_clauses(filters)}}, "size": 0,
            "track_total_hits": True, "aggs": aggs})
        return _total(response["hits"]), response.get("aggregations", {})

    # -- the reindex's reads ------------------------------------------------------------
    def versions_of(self, index: str, ids: list[str]) -> dict[str, str | None]:
        found: dict[str, str | None] = {}
        for start in range(0, len(ids), 10000):
            chunk = ids[start:start + 10000]
            hits = self.search(index, {"ids": {"values": chunk}}, size=len(chunk),
                               sort=[{"id": "asc"}], source=False,
                               docvalues=["updated_at.exact"])  # the sort carries the id
            found.update(_id_and_version(h) for h in hits)
        return found

    def iter_versions(self, index: str, page: int = 10000
                      ) -> Iterator[tuple[str, str | None]]:
        """By search_after on the ``id`` keyword, from doc values only (no ``_source``)."""
        after = None
        while True:
            hits = self.search(index, {"match_all": {}}, size=page, sort=[{"id": "asc"}],
                               search_after=after, source=False,
                               docvalues=["updated_at.exact"])
            yield from (_id_and_version(h) for h in hits)
            if len(hits) < page:
                return
            after = hits[-1]["sort"]

    def sources(self, index: str, size: int = 1000) -> dict[str, dict]:
        return {hit["_id"]: hit["_source"]
                for hit in self.search(index, {"match_all": {}}, size=size)}


def _crossed(limit: str, size: int, free: int) -> bool:
    """Whether a disk of ``size`` bytes with ``free`` left is past a watermark given as a
    percentage (``85%``), a ratio (``0.85``) or the free space it wants (``500mb``)."""
    text = limit.strip().lower()
    try:
        if text.endswith("%"):
            return (size - free) / size * 100 >= float(text[:-1])
        return (size - free) / size >= float(text)
    except ValueError:
        pass
    number = text.rstrip("bkmgtp")
    unit = text[len(number):] or "b"
    try:
        return free <= float(number) * _UNITS[unit]
    except (ValueError, KeyError):
        return False  # a form this does not know: not called crossed


def _id_and_version(hit: dict) -> tuple[str, str | None]:
    """A hit sorted by ``id`` with the doc value ``updated_at.exact``: (id, version)."""
    return hit["sort"][0], (hit.get("fields", {}).get("updated_at.exact") or [None])[0]


def _total(hits: dict[str, Any]) -> int:
    total = hits.get("total", 0)
    return total["value"] if isinstance(total, dict) else int(total)
