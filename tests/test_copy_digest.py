"""``copy``'s digest: Python's reading of SQLite's values as PostgreSQL prints them, checked
against PostgreSQL itself on generated documents and rows."""

from __future__ import annotations

import json

import orjson
import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from annota.server.archive import rowdigest
from annota.server.archive.pgtext import jsonb_text
from annota.server.archive.tables import TableSpec
from annota.urls import DatabaseURL

# text PostgreSQL's jsonb holds: no NUL, no lone surrogate
TEXT = st.text(st.characters(exclude_categories=("Cs",), exclude_characters="\x00"),
               max_size=12)
KEYS = st.one_of(TEXT, st.sampled_from(["a", "b", "aa", "ab", "é", "ß", "日本", "A", "_"]))
DIGITS = st.text("0123456789", min_size=1, max_size=20)


@st.composite
def literals(draw: st.DrawFn) -> str:
    """A JSON number as any writer may have spelled it."""
    sign = draw(st.sampled_from(["", "-"]))
    whole = draw(st.one_of(st.just("0"), DIGITS.map(lambda d: d.lstrip("0") or "0")))
    fraction = draw(st.one_of(st.just(""), DIGITS.map(lambda d: "." + d)))
    exponent = draw(st.one_of(st.just(""), st.tuples(
        st.sampled_from("eE"), st.sampled_from(["", "+", "-"]),
        st.integers(0, 40)).map(lambda t: f"{t[0]}{t[1]}{t[2]}")))
    return sign + whole + fraction + exponent


def _floats_as_python_writes() -> st.SearchStrategy[str]:
    return st.floats(allow_nan=False, allow_infinity=False).map(repr)


@st.composite
def documents(draw: st.DrawFn, depth: int = 0) -> str:
    """The text of a JSON document, spaced as json.dumps or orjson write it."""
    spacing = draw(st.sampled_from([(", ", ": "), (",", ":")]))
    scalar = st.one_of(
        TEXT.map(lambda t: json.dumps(t, ensure_ascii=draw(st.booleans()))),
        literals(), _floats_as_python_writes(), st.integers().map(str),
        st.sampled_from(["true", "false", "null"]))
    if depth >= 3:
        return draw(scalar)
    kind = draw(st.sampled_from(["scalar", "object", "array"]))
    if kind == "scalar":
        return draw(scalar)
    items = draw(st.lists(documents(depth + 1), max_size=4))
    if kind == "array":
        return "[" + spacing[0].join(items) + "]"
    keys = draw(st.lists(KEYS, min_size=len(items), max_size=len(items)))  # duplicates too
    return "{" + spacing[0].join(json.dumps(k, ensure_ascii=False) + spacing[1] + v
                                 for k, v in zip(keys, items, strict=True)) + "}"


@pytest.fixture
def pg(postgres_url: str):
    engine = sa.create_engine(DatabaseURL.parse(postgres_url).sqlalchemy_url)
    with engine.connect() as connection:
        yield connection
    engine.dispose()


@settings(max_examples=300, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(text=documents())
def test_jsonb_text_is_what_postgresql_prints(pg: sa.Connection, text: str) -> None:
    try:
        expected = pg.exec_driver_sql("SELECT %s::jsonb::text", (text,)).scalar_one()
    except sa.exc.DataError:  # a number past numeric's range: PostgreSQL refuses it
        pg.rollback()
        return
    assert jsonb_text(text) == expected


def test_jsonb_text_edges(pg: sa.Connection) -> None:
    cases = ['{"b": 1, "aa": 2, "a": 3}', '{"a": 1, "a": 2}', "[-0.0, -0, 1.50, 1e-7]",
             "[1.0E+2, -0e5, 0.000, -0.000e3, 1e16, 123456789012345678901234567890]",
             '"\\u00e9\\ud83d\\ude00\\n\\u001f\\u007f"', '{"é": 1, "z": 2, "日": 3}',
             " [ 1 , 2 ] ", "[100.0, 0.1, 5e-324, 1.7976931348623157e+308]",
             orjson.dumps({"x": [0.1, 1e-7, 2.5e300]}).decode()]
    for text in cases:
        assert jsonb_text(text) == pg.exec_driver_sql(
            "SELECT %s::jsonb::text", (text,)).scalar_one(), text


KINDS = {"uuid": "uuid", "timestamp": "timestamp", "float": "float8", "int": "bigint",
         "bool": "boolean", "text": "text", "json": "jsonb"}


@st.composite
def sqlite_values(draw: st.DrawFn, kind: str) -> object:
    """A value as SQLite holds it for a column of ``kind`` (as annota writes, or not)."""
    if draw(st.integers(0, 9)) == 0:
        return None
    if kind == "uuid":
        raw = draw(st.uuids())
        return draw(st.sampled_from([raw.hex, raw.hex.upper(), str(raw)]))
    if kind == "timestamp":
        moment = draw(st.datetimes())
        return draw(st.sampled_from([moment.isoformat(sep=" ", timespec="microseconds"),
                                     moment.isoformat(sep=" "), moment.isoformat()]))
    if kind == "float":
        return draw(st.floats(allow_nan=False, allow_infinity=False))
    if kind == "int":
        return draw(st.integers(-(2**63), 2**63 - 1))
    if kind == "bool":
        return draw(st.sampled_from([0, 1]))
    if kind == "text":
        return draw(TEXT)
    return draw(documents())


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(data=st.data())
def test_a_rows_digest_is_postgresqls(pg: sa.Connection, data: st.DataObject) -> None:
    """The same rows, written by COPY from SQLite's values, sum to the same digest on the
    server as computed here from those values."""
    kinds = list(KINDS)
    rows = data.draw(st.lists(st.tuples(*(sqlite_values(k) for k in kinds)), max_size=20))
    spec = TableSpec("digest_rows", tuple(f"c_{k}" for k in kinds), tuple(kinds), ())
    jsonb = frozenset({("digest_rows", "c_json")})
    columns = ", ".join(f"c_{k} {KINDS[k]}" for k in kinds)
    pg.rollback()  # the table is made inside each example's own transaction
    pg.exec_driver_sql(f"CREATE TABLE digest_rows ({columns})")
    ours = rowdigest.Tally()
    sums = ours.table("digest_rows")
    if rows:
        text, digests = rowdigest.row_batches(spec, jsonb)(rows)
        rowdigest.count_batch(sums, digests)
        raw = pg.connection.dbapi_connection
        with raw.cursor() as cursor, cursor.copy("COPY digest_rows FROM STDIN") as copy:
            copy.write(text)
    theirs = rowdigest.figures(pg, [spec], jsonb)
    assert ours.figures().tables == theirs.tables
    pg.rollback()


def test_a_row_postgresql_refuses_fails_the_copy_and_keeps_nothing(tmp_path, postgres_url):
    """SQLite holds a NUL in a suggestion's text, far into a table loaded without its
    indexes: the worker's COPY fails, the command says so in one line and exits non-zero,
    nothing stays in the target, and a rerun after the fix copies everything."""
    import uuid
    from datetime import datetime

    from annota.server.archive.tables import has_data
    from annota.server.schema.migrate import migrate
    from tests.archive_tools import settings_for
    from tests.conftest import Annota, make_env

    source = f"sqlite:///{tmp_path / 'source.db'}"
    migrate(settings_for(tmp_path, source), "head")
    engine = sa.create_engine(DatabaseURL.parse(source).sqlalchemy_url)
    stamp = datetime(2025, 1, 1)
    dataset, workspace, question = uuid.uuid4().hex, uuid.uuid4().hex, uuid.uuid4().hex
    records = [uuid.uuid4().hex for _ in range(6000)]
    with engine.begin() as c:
        c.exec_driver_sql("INSERT INTO workspaces (id, name, inserted_at, updated_at) "
                          "VALUES (?, 'w', ?, ?)", (workspace, stamp, stamp))
        c.exec_driver_sql(
            "INSERT INTO datasets (id, name, status, workspace_id, distribution, "
            "allow_extra_metadata, completed_records, last_activity_at, inserted_at, "
            "updated_at) VALUES (?, 'd', 'ready', ?, '{}', 1, 0, ?, ?, ?)",
            (dataset, workspace, stamp, stamp, stamp))
        c.exec_driver_sql(
            "INSERT INTO questions (id, name, title, required, settings, dataset_id, "
            "inserted_at, updated_at) VALUES (?, 'q', 'Q', 1, '{\"type\": \"text\"}', ?, ?, ?)",
            (question, dataset, stamp, stamp))
        c.exec_driver_sql(
            "INSERT INTO records (id, fields, external_id, status, dataset_id, inserted_at, "
            "updated_at) VALUES (?, '{\"t\": \"x\"}', ?, 'pending', ?, ?, ?)",
            [(r, f"r{i}", dataset, stamp, stamp) for i, r in enumerate(records)])
        c.exec_driver_sql(
            "INSERT INTO suggestions (id, value, agent, record_id, question_id, inserted_at, "
            "updated_at) VALUES (?, '\"a\"', ?, ?, ?, ?, ?)",
            [(uuid.uuid4().hex, "bad\x00agent" if i == 5500 else "m", r, question, stamp,
              stamp) for i, r in enumerate(records)])
    cli = Annota(make_env(tmp_path, source))
    done = cli.run("server", "database", "copy", "--to", postgres_url, "--yes", timeout=300)
    assert done.returncode == 25, done.stderr  # CopyFailedError
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in done.stderr, done.stderr
    assert "COPY suggestions" in lines[0] and "nothing was kept" in lines[0]
    assert not has_data(DatabaseURL.parse(postgres_url))
    with engine.begin() as c:
        c.exec_driver_sql("UPDATE suggestions SET agent = 'm' WHERE agent LIKE 'bad%'")
    engine.dispose()
    again = cli.run("server", "database", "copy", "--to", postgres_url, "--yes", timeout=300)
    assert again.returncode == 0, again.stderr
    pg = sa.create_engine(DatabaseURL.parse(postgres_url).sqlalchemy_url)
    with pg.connect() as c:
        assert c.exec_driver_sql("SELECT count(*) FROM suggestions").scalar() == 6000
        # the indexes dropped for the load are back
        assert c.exec_driver_sql("SELECT count(*) FROM pg_indexes WHERE tablename = "
                                 "'suggestions'").scalar() >= 2
    pg.dispose()
