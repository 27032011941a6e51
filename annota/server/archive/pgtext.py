"""Values as PostgreSQL prints them, computed in Python: what lets ``copy`` check a
PostgreSQL side with SQL alone (``rowdigest.py``) against rows read anywhere else.

``jsonb_text`` is ``jsonb``'s output for a JSON document: keys ordered by their length in
bytes and then by their bytes (the last of duplicate keys kept), ``", "`` and ``": "``
between items, strings escaped as ``escape_json`` does (which is what ``json``'s
``encode_basestring`` does too), and each number as ``numeric`` prints the literal it was
read from (``1e-7`` as ``0.0000001``, ``1.50`` kept, no negative zero).
"""

from __future__ import annotations

import json
from decimal import Decimal
from json.encoder import encode_basestring as quote

import orjson

_SHORT = 128  # documents up to this length are remembered (labels repeat in responses)
_MEMO_SIZE = 4096


class _Number(str):
    """A JSON number, already as ``numeric`` prints it."""


def _numeric_text(literal: str) -> str:
    """A JSON number's literal as PostgreSQL's ``numeric_out`` prints it after
    ``numeric_in``: the literal's own digits and scale, the exponent worked in."""
    text = format(Decimal(literal), "f") if ("e" in literal or "E" in literal) else literal
    if text[0] == "-" and not text.strip("-0."):
        text = text[1:]  # numeric has no negative zero
    return text


def _numeric(literal: str) -> _Number:
    return _Number(_numeric_text(literal))


def _byte_length(name: str) -> int:
    return len(name.encode("utf-8", "surrogatepass"))


def _keys(document: dict) -> list[str]:
    """``jsonb``'s order: by length in bytes, then by bytes (UTF-8's byte order is its
    code points' order, which ``sorted`` gives)."""
    if len(document) == 2:
        a, b = document
        if a.isascii() and b.isascii():
            return [a, b] if (len(a), a) < (len(b), b) else [b, a]
    keys = sorted(document)
    keys.sort(key=len if "".join(keys).isascii() else _byte_length)  # a stable sort
    return keys


class _HasFloat(Exception):
    """A float whose literal is not known: the document is read again, by ``json``."""


_CONSTANTS = {True: "true", False: "false", None: "null"}


def _render(value: object, floats: bool = False) -> str:
    """``floats``: each float was read from orjson's own text of it (checked before)."""
    kind = type(value)
    if kind is str:
        return quote(value)
    if kind is dict:
        if len(value) == 1:
            for key, item in value.items():
                return "{" + quote(key) + ": " + _render(item, floats) + "}"
        return "{" + ", ".join([quote(k) + ": " + _render(value[k], floats)
                                for k in _keys(value)]) + "}"
    if kind is int:
        return str(value)
    if kind is float:
        if floats:
            return _numeric_text(orjson.dumps(value).decode())
        raise _HasFloat
    if kind is list:
        return "[" + ", ".join([_render(v, floats) for v in value]) + "]"
    if kind is _Number:
        return value
    return _CONSTANTS[value]  # True, False, None


def _orjsons_own(text: str, value: object) -> bool:
    """Whether ``text`` is what orjson writes for ``value`` but for json's spaces after
    commas and colons: then each float's literal is orjson's text of it."""
    return text.replace(", ", ",").replace(": ", ":").encode() == orjson.dumps(value)


def _jsonb_text(text: str) -> str:
    # a float's literal counts (1.50 is not 1.5 to numeric): orjson's read of a document
    # is used when it has no float, or when its floats are written as orjson writes them
    try:  # orjson reads strings and integers exactly (up to 64 bits), and fast
        value = orjson.loads(text)
    except orjson.JSONDecodeError:
        value = None  # an integer past 64 bits, NaN, or not JSON
    else:
        dotted = "." in text
        if dotted and _orjsons_own(text, value):
            return _render(value, floats=True)
        try:
            return _render(value)
        except _HasFloat:
            if not dotted and _orjsons_own(text, value):  # 1e-07 without a point
                return _render(value, floats=True)
    try:  # json hands each float's literal over
        return _render(_DECODER.decode(text))
    except ValueError:
        return quote(text)  # not JSON: PostgreSQL refuses it before anything compares


_DECODER = json.JSONDecoder(parse_float=_numeric, parse_constant=_Number)
_memo: dict[str, str] = {}


def jsonb_text(text: str) -> str:
    """``text::jsonb::text`` in PostgreSQL, for the JSON document ``text``."""
    if len(text) > _SHORT:
        return _jsonb_text(text)
    found = _memo.get(text)
    if found is None:
        if len(_memo) >= _MEMO_SIZE:
            _memo.clear()
        found = _memo[text] = _jsonb_text(text)
    return found
