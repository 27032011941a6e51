"""The JSON functions of each dialect, as SQL fragments, so that a query which builds JSON
in the database (the search documents) is written once.

SQLite keeps a JSON value's subtype only through function calls, so every fragment that
yields JSON there is a function call (``json(...)``); a member is read with ``->``, which
returns it as the stored text (numbers keep every digit). PostgreSQL works in ``jsonb``.
Timestamps render as Python's ``datetime.isoformat()`` does (no fraction when it is zero),
UUIDs as ``str(uuid)``, numbers with every digit they have.
"""

from __future__ import annotations


class SQLiteJSON:
    def object(self, *pairs: tuple[str, str]) -> str:
        return "json_object(" + ", ".join(f"'{k}', {v}" for k, v in pairs) + ")"

    def array_of(self, value: str, source: str) -> str:
        """The JSON array of ``value`` over the rows of ``source`` (``FROM ... WHERE ...``)."""
        return f"json((SELECT json_group_array({value}) {source}))"

    def object_of(self, key: str, value: str, source: str) -> str:
        return f"json((SELECT json_group_object({key}, {value}) {source}))"

    def members(self, document: str, alias: str) -> str:
        """A table of the members of ``document`` (none unless it is an object): ``key``."""
        return f"json_each(CASE WHEN json_type({document}) = 'object' THEN {document} END) {alias}"

    def member(self, document: str, alias: str) -> str:
        return f"({document} -> {alias}.fullkey)"

    def inner_value(self, document: str, alias: str) -> str:
        """The member's ``value`` when the member is an object, else the member itself."""
        m = self.member(document, alias)
        return f"json(CASE WHEN {alias}.type = 'object' THEN {m} -> '$.value' ELSE {m} END)"

    def value(self, column: str) -> str:
        """A column as JSON: JSON text as it is; a number exactly (a JSON column stores a
        bare number as REAL, and SQLite prints REALs with only 15 digits)."""
        return (f"json(CASE typeof({column}) WHEN 'real' THEN printf('%!.17g', {column}) "
                f"WHEN 'null' THEN 'null' ELSE {column} END)")

    def object_or_empty(self, column: str) -> str:
        return f"json(CASE WHEN json_type({column}) = 'object' THEN {column} ELSE '{{}}' END)"

    def uuid(self, column: str) -> str:
        # stored as 32 hex digits
        return (f"lower(substr({column}, 1, 8) || '-' || substr({column}, 9, 4) || '-' || "
                f"substr({column}, 13, 4) || '-' || substr({column}, 17, 4) || '-' || "
                f"substr({column}, 21))")

    def timestamp(self, column: str) -> str:
        # stored as 'YYYY-MM-DD HH:MM:SS.ffffff'
        return (f"CASE WHEN substr({column}, 20) = '.000000' "
                f"THEN replace(substr({column}, 1, 19), ' ', 'T') "
                f"ELSE replace({column}, ' ', 'T') END")

    def text(self, json_value: str) -> str:
        return json_value


class PostgreSQLJSON:
    def object(self, *pairs: tuple[str, str]) -> str:
        return "jsonb_build_object(" + ", ".join(f"'{k}', {v}" for k, v in pairs) + ")"

    def array_of(self, value: str, source: str) -> str:
        return f"coalesce((SELECT jsonb_agg({value}) {source}), '[]'::jsonb)"

    def object_of(self, key: str, value: str, source: str) -> str:
        return f"coalesce((SELECT jsonb_object_agg({key}, {value}) {source}), '{{}}'::jsonb)"

    def members(self, document: str, alias: str) -> str:
        return (f"jsonb_each(CASE WHEN jsonb_typeof({document}) = 'object' THEN {document} "
                f"ELSE '{{}}'::jsonb END) {alias}")

    def member(self, document: str, alias: str) -> str:
        return f"{alias}.value"

    def inner_value(self, document: str, alias: str) -> str:
        return (f"CASE WHEN jsonb_typeof({alias}.value) = 'object' THEN {alias}.value -> 'value' "
                f"ELSE {alias}.value END")

    def value(self, column: str) -> str:
        return f"to_jsonb({column})"

    def object_or_empty(self, column: str) -> str:
        return (f"CASE WHEN jsonb_typeof({column}) = 'object' THEN {column} "
                "ELSE '{}'::jsonb END")

    def uuid(self, column: str) -> str:
        return f"({column})::text"

    def timestamp(self, column: str) -> str:
        return (f"regexp_replace(to_char({column}, 'YYYY-MM-DD\"T\"HH24:MI:SS.US'), "
                "'\\.000000$', '')")

    def text(self, json_value: str) -> str:
        return f"({json_value})::text"
