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


def extract_json(text: str) -> tuple[Any | None, str | None]:
    if not isinstance(text, str):
        return None, f"expected text, got {type(text).__name__}"
    start = text.find("{")
    if start < 0:
        return None, "no JSON object in the output"
    try:
        obj, _ = json.JSONDecoder().raw_decode(text[start:])
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
