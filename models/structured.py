"""Defensive parsing of JSON that a model wrote, checked against the schema it was asked for.

A grammar makes small models' output parse, but it does not enforce everything a schema can
say (numeric bounds, for one), and backends without grammars give no guarantee at all. So
every structured reply goes through here: the first JSON object is extracted, validated,
and a failure comes back as a reason string for the caller to count as a rejection.
"""
from __future__ import annotations

import json
from typing import Any

from jsonschema import Draft202012Validator

# Limits for JSON that a model or a server wrote. Real replies nest a handful of levels; a
# reply of "[[[[..." thousands deep makes CPython's decoder raise RecursionError (not a
# ValueError, so every `except ValueError` let it through) and any recursive walk over the
# result (jsonschema, json.dumps) would blow up later. Both limits turn that into an ordinary
# JSONDecodeError, i.e. a counted rejection.
MAX_JSON_DEPTH = 100
MAX_JSON_CHARS = 8_000_000


class JSONTooComplex(json.JSONDecodeError):
    """JSON nested deeper than MAX_JSON_DEPTH or longer than MAX_JSON_CHARS; a ValueError."""


def json_depth(obj: Any) -> int:
    """Nesting depth of a decoded value, computed without recursion (a scalar is 0)."""
    depth, stack = 0, [(obj, 1)]
    while stack:
        o, d = stack.pop()
        if isinstance(o, dict):
            o = list(o.values())
        if isinstance(o, list):
            depth = max(depth, d)
            stack.extend((v, d + 1) for v in o if isinstance(v, (dict, list)))
    return depth


def raw_decode_bounded(text: str, max_depth: int = MAX_JSON_DEPTH,
                       max_chars: int = MAX_JSON_CHARS) -> tuple[Any, int]:
    """`json.JSONDecoder().raw_decode(text)` that raises JSONTooComplex (a ValueError) instead of
    RecursionError, and for values deeper than max_depth or texts longer than max_chars."""
    if len(text) > max_chars:
        raise JSONTooComplex(f"JSON text of {len(text)} chars exceeds the limit of {max_chars}", text[:0], 0)
    try:
        obj, end = json.JSONDecoder().raw_decode(text)
    except RecursionError:
        raise JSONTooComplex("JSON nested too deeply to decode", text[:0], 0) from None
    if json_depth(obj) > max_depth:
        raise JSONTooComplex(f"JSON nested deeper than {max_depth} levels", text[:0], 0)
    return obj, end


def loads_bounded(text: str | bytes, max_depth: int = MAX_JSON_DEPTH, max_chars: int = MAX_JSON_CHARS) -> Any:
    """`json.loads` with the same limits as raw_decode_bounded (whole text must be one value)."""
    if isinstance(text, (bytes, bytearray)):
        text = bytes(text).decode("utf-8")  # UnicodeDecodeError is a ValueError too
    obj, end = raw_decode_bounded(text.lstrip(), max_depth, max_chars)
    if text.lstrip()[end:].strip():
        raise json.JSONDecodeError("Extra data", text, end)
    return obj


def extract_json(text: str) -> tuple[Any | None, str | None]:
    if not isinstance(text, str):
        return None, f"expected text, got {type(text).__name__}"
    start = text.find("{")
    if start < 0:
        return None, "no JSON object in the output"
    try:
        obj, _ = raw_decode_bounded(text[start:])
    except ValueError as e:
        return None, f"invalid JSON: {e.msg} at char {e.pos}"
    return obj, None


def parse_json(text: str, schema: dict[str, Any] | None = None) -> tuple[Any | None, str | None]:
    """Return (object, None) when the text holds a schema-valid JSON object, else (None, reason)."""
    obj, err = extract_json(text)
    if err is not None or schema is None:
        return obj, err
    errors = sorted(Draft202012Validator(schema).iter_errors(obj), key=lambda e: list(e.path))
    if errors:
        e = errors[0]
        where = "/".join(str(p) for p in e.path) or "<root>"
        return None, f"schema violation at {where}: {e.message[:200]}"
    return obj, None
