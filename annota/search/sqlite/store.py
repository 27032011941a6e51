"""The embedded engine's file: a catalog of indices and aliases, and per index its tables.

One SQLite file, apart from the database: the database's writers and the index's never
wait on one another's write lock (a writer indexes inside its own database transaction),
a reindex's DDL never touches the schema ``check`` compares, and deleting the file only
costs a reindex. Per index ``x<id>``:

- ``_docs``: one narrow row per document, what filters and sorts read: its id, version,
  times in milliseconds as the cluster engines keep dates, ``submitted``, its responses
  as `` user:status `` tokens, and one column per metadata property (``m0``, ``m1``...)
  holding a single value (a list of values lives in ``_meta``, its property in
  ``_multi``), and the write sequence that the in-memory columns (``columns.py``)
  catch up from;
- ``_src``: the document's source without vectors, read for the hits of a page only;
- ``_text``: FTS5 over the dataset's text fields, one column each (``c0``, ``c1``...);
- ``_meta`` (lists of metadata values), ``_resp``, ``_answer``, ``_sugg``: one row per
  value, indexed for the filters and for progress;
- ``_vec`` and ``_gone``: vectors as float32 and the documents deleted, with the write
  sequence that the in-memory vector matrices catch up from (``_gone`` is pruned every
  ``PRUNE_EVERY`` writes; a matrix older than the prune is rebuilt whole).

A plain index (the reindex leases) keeps versioned JSON documents in ``kv``.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import orjson

TOKENIZE = "unicode61 remove_diacritics 0"  # the text tables' tokenizer, and its mirrors'
CATALOG = """
CREATE TABLE IF NOT EXISTS indices (
    id INTEGER PRIMARY KEY AUTOINCREMENT, name TEXT NOT NULL UNIQUE, layout TEXT NOT NULL,
    meta TEXT NOT NULL, settings TEXT NOT NULL, seq INTEGER NOT NULL DEFAULT 0,
    gone_floor INTEGER NOT NULL DEFAULT 0);
CREATE TABLE IF NOT EXISTS aliases (
    alias TEXT NOT NULL, index_id INTEGER NOT NULL, is_write INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (alias, index_id));
CREATE TABLE IF NOT EXISTS kv (
    index_id INTEGER NOT NULL, doc_id TEXT NOT NULL, body TEXT NOT NULL,
    seq INTEGER NOT NULL, PRIMARY KEY (index_id, doc_id));
"""

_TABLES = ("docs", "src", "multi", "text", "meta", "resp", "answer", "sugg", "vec", "gone")


def layout_of(mappings: dict[str, Any]) -> dict[str, Any]:
    """What an index keeps, read from the mapping annota gives every engine: its text
    fields, typed metadata, typed answers and suggestions, and vectors with dimensions."""
    props = mappings.get("properties", {})

    def kinds(section: dict[str, Any]) -> dict[str, str]:
        return {name: spec.get("type", "object") if spec.get("enabled", True) else "none"
                for name, spec in section.get("properties", {}).items()}

    suggestions = {name: kinds(spec).get("value", "none")
                   for name, spec in props.get("suggestions", {}).get("properties", {}).items()}
    return {
        "kind": "records",
        "text": [n for n, k in kinds(props.get("fields", {})).items() if k == "text"],
        "metadata": kinds(props.get("metadata", {})),
        "answers": kinds(props.get("responses", {}).get("properties", {}).get("values", {})),
        "suggestions": suggestions,
        "vectors": {name: spec["dims"] for name, spec in
                    props.get("vectors", {}).get("properties", {}).items()},
    }


def create_tables(cursor: sqlite3.Cursor, t: str, layout: dict[str, Any]) -> None:
    columns = ", ".join(f"c{i}" for i in range(len(layout["text"])))
    metadata = "".join(f", m{i}" for i in range(len(layout["metadata"])))
    statements = [
        f"CREATE TABLE {t}_docs (rid INTEGER PRIMARY KEY, id TEXT NOT NULL UNIQUE, "
        "version TEXT, inserted_ms INTEGER, updated_ms INTEGER, submitted INTEGER, "
        f"resp TEXT NOT NULL, seq INTEGER NOT NULL{metadata})",
        f"CREATE INDEX {t}_docs_seq ON {t}_docs (seq)",
        f"CREATE TABLE {t}_src (rid INTEGER PRIMARY KEY, source BLOB NOT NULL)",
        f"CREATE TABLE {t}_multi (name TEXT PRIMARY KEY)",
        f"CREATE TABLE {t}_meta (rid INTEGER NOT NULL, name TEXT NOT NULL, value)",
        f"CREATE INDEX {t}_meta_value ON {t}_meta (name, value, rid)",
        f"CREATE INDEX {t}_meta_rid ON {t}_meta (rid, name, value)",
        f"CREATE TABLE {t}_resp (rid INTEGER NOT NULL, user_id TEXT NOT NULL, "
        "status TEXT NOT NULL)",
        f"CREATE INDEX {t}_resp_user ON {t}_resp (user_id, status, rid)",
        f"CREATE INDEX {t}_resp_status ON {t}_resp (status, rid)",
        f"CREATE INDEX {t}_resp_rid ON {t}_resp (rid, user_id, status)",
        f"CREATE TABLE {t}_answer (rid INTEGER NOT NULL, user_id TEXT NOT NULL, "
        "question TEXT NOT NULL, value)",
        f"CREATE INDEX {t}_answer_value ON {t}_answer (question, value, rid)",
        f"CREATE INDEX {t}_answer_rid ON {t}_answer (rid)",
        f"CREATE TABLE {t}_sugg (rid INTEGER NOT NULL, question TEXT NOT NULL, value, "
        "score REAL, agent TEXT)",
        f"CREATE INDEX {t}_sugg_value ON {t}_sugg (question, value, rid)",
        f"CREATE INDEX {t}_sugg_rid ON {t}_sugg (rid, question, score)",
        f"CREATE TABLE {t}_vec (rid INTEGER NOT NULL, name TEXT NOT NULL, "
        "vector BLOB NOT NULL, seq INTEGER NOT NULL, PRIMARY KEY (name, rid))",
        f"CREATE INDEX {t}_vec_seq ON {t}_vec (name, seq)",
        f"CREATE TABLE {t}_gone (rid INTEGER NOT NULL, seq INTEGER NOT NULL)",
        f"CREATE INDEX {t}_gone_seq ON {t}_gone (seq)",
    ]
    if columns:
        statements.append(f"CREATE VIRTUAL TABLE {t}_text USING fts5({columns}, "
                          f"tokenize = '{TOKENIZE}')")
    for statement in statements:
        cursor.execute(statement)


def drop_tables(cursor: sqlite3.Cursor, t: str) -> None:
    for table in _TABLES:
        cursor.execute(f"DROP TABLE IF EXISTS {t}_{table}")


def table_prefix(index_id: int) -> str:
    return f"x{int(index_id)}"


class Store:
    """Connections to the file, one per thread, in WAL mode (readers never wait for the
    writer); ``read()`` and ``write()`` are transactions (a read sees one snapshot)."""

    def __init__(self, path: Path, busy_seconds: float = 30.0) -> None:
        self.path = path
        self.busy_seconds = busy_seconds
        self._local = threading.local()
        self._all: list[sqlite3.Connection] = []
        self._lock = threading.Lock()

    def connection(self) -> sqlite3.Connection:
        connection = getattr(self._local, "connection", None)
        if connection is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            connection = sqlite3.connect(self.path, timeout=self.busy_seconds,
                                         isolation_level=None, check_same_thread=False)
            try:
                connection.execute("PRAGMA journal_mode = WAL")
                connection.execute("PRAGMA synchronous = NORMAL")
                connection.execute("PRAGMA temp_store = MEMORY")
                connection.execute("PRAGMA cache_size = -65536")  # 64 MiB
                connection.executescript(CATALOG)
            except BaseException:
                connection.close()
                raise
            self._local.connection = connection
            with self._lock:
                self._all.append(connection)
        return connection

    def extension(self, load: Callable[[sqlite3.Connection], bool]) -> bool:
        """Whether ``load`` put its extension into this thread's connection (tried once)."""
        connection = self.connection()
        if getattr(self._local, "extension", None) is None:
            self._local.extension = load(connection)
        return self._local.extension

    @contextmanager
    def read(self):  # noqa: ANN201 - a cursor in one read transaction (one snapshot)
        connection = self.connection()
        cursor = connection.cursor()
        cursor.execute("BEGIN")
        try:
            yield cursor
        finally:
            cursor.execute("COMMIT")

    @contextmanager
    def write(self):  # noqa: ANN201 - a cursor in one write transaction, all or nothing
        connection = self.connection()
        cursor = connection.cursor()
        cursor.execute("BEGIN IMMEDIATE")
        try:
            yield cursor
        except BaseException:
            cursor.execute("ROLLBACK")
            raise
        cursor.execute("COMMIT")

    def close(self) -> None:
        with self._lock:
            for connection in self._all:
                connection.close()
            self._all.clear()
        self._local = threading.local()


def dumps(value: Any) -> str:
    return orjson.dumps(value).decode()
