"""Data that blocks an upgrade, found and repaired on request.

PostgreSQL's ``json`` (releases 1.x) stores text as written, so a document may hold the
escape ``\\u0000``; ``jsonb`` (2.0 on) refuses it. The 2.0 revision checks first and names
each document; ``annota server database fix-json-nul`` removes the escapes, after consent.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from annota.errors import MigrationError

# (table, JSON column, the column naming the record the document belongs to)
DOCUMENTS = (("records", "fields", "id"), ("records", "metadata", "id"),
             ("responses", "values", "record_id"), ("suggestions", "value", "record_id"))
# \u0000 not itself escaped (preceded by an even number of backslashes, kept as \1)
NUL = r"(?<!\\)((?:\\\\)*)\\u0000"
FIX = "annota server database fix-json-nul"


@dataclass(frozen=True)
class NulDocument:
    table: str
    column: str
    row_id: str
    record_id: str

    def __str__(self) -> str:
        return f"{self.table}.{self.column} of record {self.record_id}"


def find_nul_documents(connection: Any, limit: int = 1000) -> list[NulDocument]:
    """The documents (PostgreSQL ``json`` columns) that hold an unescaped ``\\u0000``."""
    import sqlalchemy as sa

    found: list[NulDocument] = []
    for table, column, record in DOCUMENTS:
        rows = connection.execute(sa.text(
            f'SELECT id, {record} FROM {table} WHERE "{column}"::text ~ :nul LIMIT :n'),
            {"nul": NUL, "n": limit}).all()
        found += [NulDocument(table, column, str(r[0]), str(r[1])) for r in rows]
    return found


def refuse_nul_documents(connection: Any) -> None:
    """Called by the 2.0 revision before its ``jsonb`` cast: one clear error, naming the
    documents and the command that fixes them, instead of the cast's."""
    found = find_nul_documents(connection, limit=20)
    if found:
        shown = ", ".join(str(d) for d in found[:5]) + (", ..." if len(found) > 5 else "")
        raise MigrationError(
            f"{len(found)}{'+' if len(found) == 20 else ''} JSON documents hold \\u0000, "
            f"which PostgreSQL's jsonb cannot store ({shown}); run `{FIX}` to remove it "
            "from them, then migrate again")


def strip_nul(connection: Any) -> int:
    """Remove every unescaped ``\\u0000`` from the documents; returns how many changed."""
    import sqlalchemy as sa

    changed = 0
    for table, column, _ in DOCUMENTS:
        changed += connection.execute(sa.text(
            f'UPDATE {table} SET "{column}" = '
            f'regexp_replace("{column}"::text, :nul, :keep, \'g\')::json '
            f'WHERE "{column}"::text ~ :nul'), {"nul": NUL, "keep": r"\1"}).rowcount
    return changed
