"""The engine interface: what annota needs from a search engine, and index naming.

One alias per dataset (``<prefix>.records.<dataset id>``) points at a concrete index
(``<alias>.<UTC timestamp>``). Three engines implement it: Elasticsearch and
OpenSearch (``cluster.py``, with what differs in ``elasticsearch.py`` and ``opensearch.py``)
and the embedded engine (``sqlite/``). Reindexing, leases, status and cleanup are written
once, over this interface (``reindex.py``, ``lease.py``, ``maintenance.py``).
"""

from __future__ import annotations

import base64
from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any
from urllib.parse import unquote

from annota.config import SearchSettings
from annota.errors import (
    SearchEngineError,
    SearchEngineOverloadedError,
    SearchEngineUnreachableError,
)
from annota.search.errors import describe_error, scrub
from annota.search.query import Hit, SearchQuery, SearchResult
from annota.server.db.health import Finding  # an engine's preflight checks answer in it
from annota.urls import split_userinfo

Versioned = tuple[int, int]  # a document's (sequence number, primary term)


@dataclass(frozen=True)
class EngineInfo:
    kind: str  # elasticsearch | opensearch | sqlite
    version: str


def alias_name(prefix: str, dataset_id: object) -> str:
    return f"{prefix}.records.{dataset_id}"


def new_index_name(prefix: str, dataset_id: object) -> str:
    stamp = datetime.now(timezone.utc).strftime("%Y%m%d%H%M%S%f")
    return f"{alias_name(prefix, dataset_id)}.{stamp}"


def index_pattern(prefix: str) -> str:
    return f"{prefix}.records.*"


def dataset_of_index(prefix: str, index: str) -> str | None:
    """The dataset id in an annota index name, or None for someone else's index."""
    head = f"{prefix}.records."
    if not index.startswith(head):
        return None
    return index[len(head):].split(".", 1)[0]


class SearchEngine(ABC):
    kind: str
    label: str  # how messages name the product

    def __init__(self, settings: SearchSettings) -> None:
        self.settings = settings
        self.client = self._client()

    @property
    def prefix(self) -> str:
        return self.settings.index_prefix

    def endpoint(self) -> tuple[str, dict[str, str]]:
        """The URL without its user info, and the basic-auth header (UTF-8, so a password
        may hold any character) from the user info or the username and password settings.
        Written once here: the two clients would each encode credentials their own way."""
        s = self.settings
        scheme, _, rest = s.url.partition("://")
        user, password, after = split_userinfo(rest)
        if s.username:
            user, password = s.username, s.password.get_secret_value() if s.password else ""
        elif user is not None:
            user, password = unquote(user), unquote(password or "")
        if user is None:
            return f"{scheme}://{after}", {}
        token = base64.b64encode(f"{user}:{password}".encode()).decode("ascii")
        return f"{scheme}://{after}", {"authorization": f"Basic {token}"}

    # -- what differs between the engines ---------------------------------------------
    @abstractmethod
    def _client(self) -> Any: ...

    @abstractmethod
    def info(self) -> EngineInfo:
        """Version, after checking the server answers and is of this engine's kind."""

    @abstractmethod
    def vector_field(self, dimensions: int) -> dict[str, Any]:
        """The mapping of one vector field."""

    @abstractmethod
    def index_settings(self, *, vectors: bool) -> dict[str, Any]:
        """Extra index settings an index with vectors needs."""

    @abstractmethod
    def create_index(self, name: str, settings: dict, mappings: dict,
                     aliases: list[str] = ()) -> None: ...

    @abstractmethod
    def delete_index(self, name: str) -> None: ...

    @abstractmethod
    def put_settings(self, name: str, settings: dict) -> None: ...

    @abstractmethod
    def put_meta(self, name: str, meta: dict) -> None:
        """Replace the mapping's ``_meta``."""

    @abstractmethod
    def refresh(self, name: str) -> None: ...

    @abstractmethod
    def count(self, name: str) -> int: ...

    @abstractmethod
    def stream_bulk(self, actions: Iterator[dict], *, chunk_docs: int,
                    chunk_bytes: int) -> Iterator[tuple[bool, dict]]:
        """Index or delete documents: (ok, item) per action, in the shape of the
        clients' ``streaming_bulk`` (``{op: {"_id", "status", "error"}}``), nothing retried
        and nothing raised for a refused document; an unreachable engine raises."""

    @abstractmethod
    def indices(self, pattern: str) -> dict[str, list[str]]:
        """{index name: [its aliases]} for the indices matching ``pattern``."""

    @abstractmethod
    def update_aliases(self, actions: list[dict]) -> None:
        """Apply alias actions atomically."""

    @abstractmethod
    def mapping_meta(self, name: str) -> dict:
        """{concrete index: its mapping's ``_meta``} for an index or alias."""

    # -- annota's queries (``query.py``), each engine compiling them its own way ------
    @abstractmethod
    def find(self, alias: str, query: SearchQuery, metadata_types: dict[str, str]
             ) -> SearchResult:
        """The records matching ``query`` (not a similarity search), a page and the total;
        hits carry their document without its vectors."""

    @abstractmethod
    def nearest(self, alias: str, field: str, vector: list[float], k: int,
                filters: tuple[Any, ...]) -> list[Hit]:
        """The ``k`` documents nearest to ``vector`` in vector ``field`` among those
        matching ``filters`` (filtered before the top k is taken), most similar first;
        each hit's score is its cosine similarity to ``vector``."""

    @abstractmethod
    def metrics(self, alias: str, filters: tuple[Any, ...], property_name: str,
                kind: str) -> tuple[int, dict[str, Any]]:
        """(how many documents match ``filters``, the property's metrics over them):
        ``{"values": {value: count}}`` for terms, ``{"min", "max"}`` for numbers."""

    @abstractmethod
    def progress(self, alias: str, filters: tuple[Any, ...], min_submitted: int
                 ) -> tuple[int, int, dict[str, dict[str, int]]]:
        """(documents matching ``filters``, those completed: ``submitted`` at least
        ``min_submitted``, {user: {status: responses}})."""

    # -- reading back what a reindex compares ------------------------------------------
    @abstractmethod
    def versions_of(self, index: str, ids: list[str]) -> dict[str, str | None]:
        """{id: version} of the documents of ``index`` among ``ids`` (those it has)."""

    @abstractmethod
    def iter_versions(self, index: str, page: int = 10000
                      ) -> Iterator[tuple[str, str | None]]:
        """Every document of ``index`` as (id, its ``updated_at``: the record's version),
        in id order."""

    @abstractmethod
    def sources(self, index: str, size: int = 1000) -> dict[str, dict]:
        """{id: source} of up to ``size`` documents of ``index`` (the leases)."""

    def knn_search(self, index: str, field: str, vector: list[float], k: int) -> list[Hit]:
        return self.nearest(index, field, vector, k, ())

    # single documents with optimistic concurrency (sequence number, primary term): the
    # reindex lease is one such document
    @abstractmethod
    def create_document(self, index: str, doc_id: str, body: dict) -> Versioned | None:
        """Create it, refreshed; None when it exists already."""

    @abstractmethod
    def get_document(self, index: str, doc_id: str) -> tuple[dict, Versioned] | None:
        """Its source and version; None when it (or the index) does not exist."""

    @abstractmethod
    def replace_document(self, index: str, doc_id: str, body: dict,
                         version: Versioned) -> Versioned | None:
        """Replace it if it is still at ``version``; None when it is not (or is gone)."""

    @abstractmethod
    def delete_document(self, index: str, doc_id: str, version: Versioned) -> None:
        """Delete it if it is still at ``version``."""

    def vectors_supported(self) -> bool:
        """Whether vector fields can be indexed here (OpenSearch: its k-NN plugin)."""
        return True

    def findings(self) -> list[Finding]:
        """What an upgrade needs of the engine beyond answering: its health, its disk,
        indices it can still write. The embedded engine has none of these to check."""
        return []

    # -- written once ----------------------------------------------------------------
    def unreachable(self, exc: BaseException) -> SearchEngineUnreachableError:
        return SearchEngineUnreachableError(
            f"cannot reach {self.label} at {self.settings.masked_url}: "
            f"{scrub(self.settings, exc)}")

    def refused(self, what: str, status: Any, body: Any) -> SearchEngineError:
        return SearchEngineError(f"{self.label} could not {what}: {describe_error(status, body)}")

    def check_aliases_switched(self, response: dict) -> None:
        """An HTTP 200 is not enough: the engine must acknowledge, with no action failed."""
        if not response.get("acknowledged") or response.get("errors"):
            raise self.refused("switch aliases", 200, response)

    def alias_indices(self, alias: str) -> list[str]:
        return [name for name, aliases in self.indices(f"{alias}*").items() if alias in aliases]


def too_many_requests() -> SearchEngineOverloadedError:
    return SearchEngineOverloadedError(
        "the search engine is overloaded (HTTP 429); try again shortly")
