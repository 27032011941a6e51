"""Which tables an archive holds and how their rows are read and written.

Tables are reflected from the database at hand, so an archive of any release describes
itself. Each row is read with the dataset it belongs to (its own ``dataset_id``, or its
parent's one foreign key away), which is what scopes an export and gives per-dataset
digests. Reads happen inside one snapshot; writes go through the fastest bulk path of the
target (``COPY`` on PostgreSQL, ``executemany`` on SQLite).
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from annota.server.archive.values import AnyUuid, Codec, kind_of, sql_type, uuid_text

# operational state that belongs to a deployment, not to its data: the target's own
# migrations write the first three, backfills and reindexes the last two
OPERATIONAL = ("alembic_version", "async_migrations", "revision_checksums", "backfill_jobs",
               "index_changes")
CREDENTIALS = {"users": ("api_key", "password_hash")}
READ_BATCH = 2000


@dataclass(frozen=True)
class TableSpec:
    name: str
    columns: tuple[str, ...]
    kinds: tuple[str, ...]
    key: tuple[str, ...]  # primary key: rows are archived in its order
    dataset_path: tuple[str, ...] = ()  # ("dataset_id",) | ("id",) | (fk, parent) | ()

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "columns": list(self.columns), "kinds": list(self.kinds),
                "key": list(self.key)}

    def index(self, column: str) -> int:
        return self.columns.index(column)

    @property
    def codec(self) -> Codec:
        return _codec(self.name, self.columns, self.kinds)


@functools.lru_cache(maxsize=256)
def _codec(name: str, columns: tuple[str, ...], kinds: tuple[str, ...]) -> Codec:
    return Codec(name, columns, kinds)


def reflect(connection: sa.Connection) -> list[TableSpec]:
    """The data tables of a database, parents before children."""
    metadata = sa.MetaData()
    metadata.reflect(connection)
    specs = []
    for table in metadata.sorted_tables:
        if table.name in OPERATIONAL:
            continue
        columns = tuple(c.name for c in table.columns)
        specs.append(TableSpec(
            table.name, columns, tuple(kind_of(c.type) for c in table.columns),
            tuple(c.name for c in table.primary_key.columns) or columns,
            _dataset_path(table)))
    return specs


def _dataset_path(table: sa.Table) -> tuple[str, ...]:
    if table.name == "datasets":
        return ("id",)
    if "dataset_id" in table.c:
        return ("dataset_id",)
    for fk in sorted(table.foreign_keys, key=lambda f: f.parent.name):
        if "dataset_id" in fk.column.table.c and not fk.parent.nullable:
            return (fk.parent.name, fk.column.table.name)
    return ()


def logical_table(spec: TableSpec, metadata: sa.MetaData | None = None) -> sa.Table:
    """The table with each column typed by its kind (read and written the same way on
    every dialect)."""
    return sa.Table(spec.name, metadata or sa.MetaData(),
                    *(sa.Column(c, sql_type(k), primary_key=c in spec.key)
                      for c, k in zip(spec.columns, spec.kinds, strict=True)))


@dataclass
class Scope:
    """What an export holds: the whole instance, or some datasets and what they need."""

    dataset_ids: list[str] | None = None  # None: the whole instance
    credentials: bool = True

    @property
    def whole(self) -> bool:
        return self.dataset_ids is None


def _dataset_expr(spec: TableSpec, table: sa.Table, metadata: sa.MetaData
                  ) -> tuple[Any, Any]:
    """(the row's dataset id, the FROM clause that yields it)."""
    if not spec.dataset_path:
        return None, table
    if len(spec.dataset_path) == 1:
        return table.c[spec.dataset_path[0]], table
    fk, parent_name = spec.dataset_path
    parent = sa.Table(parent_name, metadata, sa.Column("id", AnyUuid()),
                      sa.Column("dataset_id", AnyUuid()), extend_existing=True)
    parent = parent.alias(f"parent_{parent_name}")
    return parent.c.dataset_id, table.outerjoin(parent, parent.c.id == table.c[fk])


def _scope_filter(spec: TableSpec, table: sa.Table, dataset: Any, scope: Scope,
                  metadata: sa.MetaData) -> Any:
    if scope.whole:
        return None
    ids = list(scope.dataset_ids or [])
    if dataset is not None:
        return dataset.in_(ids)
    datasets = sa.table("datasets", sa.column("id", AnyUuid()),
                        sa.column("workspace_id", AnyUuid()))
    workspaces = sa.select(datasets.c.workspace_id).where(datasets.c.id.in_(ids))
    records = sa.table("records", sa.column("id", AnyUuid()),
                       sa.column("dataset_id", AnyUuid()))
    responses = sa.table("responses", sa.column("record_id", AnyUuid()),
                         sa.column("user_id", AnyUuid()))
    users = (sa.select(responses.c.user_id).join(records, records.c.id == responses.c.record_id)
             .where(records.c.dataset_id.in_(ids)))
    if spec.name == "workspaces":
        return table.c.id.in_(workspaces)
    if spec.name == "users":
        return table.c.id.in_(users)
    if spec.name == "workspaces_users":
        return sa.and_(table.c.workspace_id.in_(workspaces), table.c.user_id.in_(users))
    return sa.false()  # a table that belongs to no dataset: not in a dataset's archive


def _selected(connection: sa.Connection, spec: TableSpec, scope: Scope
              ) -> tuple[list[Any], Any, Any]:
    """(the row's columns, its dataset id, and the query's FROM/WHERE/ORDER) of a read."""
    metadata = sa.MetaData()
    table = logical_table(spec, metadata)
    dataset, from_ = _dataset_expr(spec, table, metadata)
    blank = set() if scope.credentials and scope.whole else set(CREDENTIALS.get(spec.name, ()))
    is_pg = connection.dialect.name == "postgresql"
    columns = []
    for name, kind in zip(spec.columns, spec.kinds, strict=True):
        column = table.c[name]
        if name in blank:
            columns.append(sa.null().label(name))
        elif kind == "json" and is_pg:
            columns.append(sa.cast(column, sa.Text).label(name))
        elif kind == "uuid":  # as text: no UUID object made per value
            columns.append(_uuid_as_text(column, is_pg).label(name))
        else:
            columns.append(column)
    owner = _uuid_as_text(dataset, is_pg) if dataset is not None else sa.null()

    def shape(query: Any) -> Any:
        query = query.select_from(from_).order_by(*(table.c[k] for k in spec.key))
        where = _scope_filter(spec, table, dataset, scope, metadata)
        return query if where is None else query.where(where)

    return columns, owner, shape


def read_rows(connection: sa.Connection, spec: TableSpec, scope: Scope
              ) -> Iterator[tuple[str | None, list[Any]]]:
    """(dataset id, the row's Python values) in key order, streamed; UUIDs as text."""
    columns, owner, shape = _selected(connection, spec, scope)
    query = shape(sa.select(*columns, owner.label("_dataset")))
    result = connection.execute(query.execution_options(yield_per=READ_BATCH))
    uuids = [i for i, k in enumerate(spec.kinds) if k == "uuid"]
    for row in result:
        values = list(row)
        dataset_id = values.pop()
        for i in uuids:
            if values[i] is not None:
                values[i] = uuid_text(values[i])
        yield (None if dataset_id is None else uuid_text(dataset_id)), values


# JSON text never holds a raw control character, so with these as CSV's delimiter and quote
# a line is one field, byte for byte, in COPY's either direction
CSV_LINES = "(FORMAT csv, DELIMITER E'\\x1f', QUOTE E'\\x1e')"


def read_lines(connection: sa.Connection, spec: TableSpec, scope: Scope) -> Iterator[bytes]:
    """PostgreSQL only: the archive's lines, each ending in a newline, built by the server
    (``json_build_array``) and streamed by ``COPY ... TO STDOUT``: no row is fetched
    value by value. The same values as ``read_rows``, numbers in PostgreSQL's shortest form
    (``100`` for Python's ``100.0``, one double)."""
    columns, owner, shape = _selected(connection, spec, scope)
    values = []
    for column, kind in zip(columns, spec.kinds, strict=True):
        if kind == "timestamp":  # annota's are without a zone, in UTC
            column = sa.func.to_char(column, 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')
        values.append(column)
    query = shape(sa.select(sa.cast(sa.func.json_build_array(*values, owner), sa.Text)))
    sql = query.compile(dialect=connection.dialect, compile_kwargs={"literal_binds": True})
    raw = connection.connection.dbapi_connection
    with raw.cursor() as cursor, cursor.copy(f"COPY ({sql}) TO STDOUT {CSV_LINES}") as copy:
        for row in copy:  # one line per row (libpq hands COPY's rows over one by one)
            yield bytes(row)


def _uuid_as_text(column: Any, is_pg: bool) -> Any:
    return sa.cast(column, sa.Text) if is_pg else sa.type_coerce(column, sa.Text)


def write_rows(connection: sa.Connection, spec: TableSpec, rows: Iterable[list[Any]],
               batch: int = 1000) -> int:
    """Insert Python values (in ``spec``'s column order); the count written."""
    if connection.dialect.name == "postgresql":
        return _copy(connection, spec, rows)
    insert = logical_table(spec).insert()
    written, chunk = 0, []
    for row in rows:
        chunk.append(dict(zip(spec.columns, row, strict=True)))
        if len(chunk) >= batch:
            connection.execute(insert, chunk)
            written, chunk = written + len(chunk), []
    if chunk:
        connection.execute(insert, chunk)
        written += len(chunk)
    return written


def _copy(connection: sa.Connection, spec: TableSpec, rows: Iterable[list[Any]]) -> int:
    raw = connection.connection.dbapi_connection
    names = ", ".join(f'"{c}"' for c in spec.columns)
    written = 0
    with raw.cursor() as cursor, cursor.copy(
            f'COPY "{spec.name}" ({names}) FROM STDIN') as copy:
        for row in rows:
            copy.write_row(row)
            written += 1
    return written


def count_rows(connection: sa.Connection, names: Iterable[str]) -> dict[str, int]:
    return {name: connection.execute(sa.text(f'SELECT count(*) FROM "{name}"')).scalar_one()
            for name in names}


def has_data(url) -> bool:  # noqa: ANN001 - DatabaseURL
    """Whether any data table of the database holds a row (operational tables aside)."""
    from annota.server import db

    database = db.open_database(url)
    try:
        with db.connect(db.read_only(database), url) as connection:
            return any(count_rows(connection, [s.name for s in reflect(connection)]).values())
    finally:
        database.dispose()
