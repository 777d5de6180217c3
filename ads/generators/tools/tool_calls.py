"""An offline executor: schema-consistent mock responses, and the session memory that lets a
later call's arguments be grounded in an earlier call's output.

Nothing is called over a network. A response is built from the endpoint's output schema, with
values drawn from `random.Random(seed, endpoint, arguments)`: the same call always returns the
same response, a different argument a different one. Where an output field has the same name
as an argument (a search for "Paris" returns `city: "Paris"`), the argument is echoed, so a
response never contradicts the request. Arguments are checked against the endpoint's parameter
schema first; a bad call gets an `error` response (and `ok=False`), as a real API would answer.
"""
from __future__ import annotations

import json
import random
import string
from dataclasses import dataclass, field
from typing import Any

from jsonschema import Draft202012Validator

from ads.generators.tools.graph import field_matches
from ads.generators.tools.schema import Endpoint, field_key

_NAMES = ["Aurora", "Maple", "Cobalt", "Juniper", "Harbor", "Summit", "Willow", "Orion", "Sierra", "Atlas",
          "Nova", "Cedar", "Lumen", "Vega", "Ember", "Delta"]
_NOUNS = ["Market", "Studio", "Express", "Labs", "Center", "Works", "Hub", "House", "Point", "Line"]
_CITIES = ["Paris", "Lisbon", "Toronto", "Nairobi", "Osaka", "Buenos Aires", "Berlin", "Austin", "Seoul", "Oslo"]


def _id_value(name: str, rng: random.Random) -> str:
    prefix = "".join(c for c in name if c.isalpha())[:3].upper() or "ID"
    return f"{prefix}{rng.randint(10000, 99999)}"


def mock_string(name: str, rng: random.Random) -> str:
    k = field_key(name)
    if k.endswith("id") or k.endswith("uuid") or k in ("key", "slug", "cursor", "token", "accessionnumber"):
        return _id_value(name, rng)
    if "date" in k or k.endswith("time") or k in ("created", "updated", "lastrefreshed"):
        return f"2025-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}"
    if "url" in k or "link" in k or "image" in k or "photo" in k:
        return f"https://example.com/{k[:12]}/{rng.randint(100, 999)}"
    if "email" in k:
        return f"{rng.choice(_NAMES).lower()}@example.com"
    if k in ("symbol", "ticker") or k.endswith("code") or k.endswith("iso"):
        return "".join(rng.choice(string.ascii_uppercase) for _ in range(3))
    if "city" in k or "location" in k or "region" in k or k in ("q", "query", "place"):
        return rng.choice(_CITIES)
    if "name" in k or "title" in k:
        return f"{rng.choice(_NAMES)} {rng.choice(_NOUNS)}"
    if "status" in k:
        return rng.choice(["ok", "active", "completed"])
    return f"{rng.choice(_NAMES).lower()}-{name.lower()[:16]}-{rng.randint(1, 99)}"


def mock_value(name: str, schema: dict[str, Any], rng: random.Random, echo: dict[str, Any], depth: int = 0) -> Any:
    if "enum" in schema and schema["enum"]:
        return rng.choice(schema["enum"])
    t = schema.get("type", "string")
    k = field_key(name)
    if k in echo and t != "object" and t != "array":
        v = echo[k]
        if (t == "string" and isinstance(v, str)) or (t in ("integer", "number") and isinstance(v, (int, float))
                                                      and not isinstance(v, bool)):
            return int(v) if t == "integer" else v
    if t == "object":
        return {p: mock_value(p, s if isinstance(s, dict) else {}, rng, echo, depth + 1)
                for p, s in (schema.get("properties") or {}).items()}
    if t == "array":
        n = 2 if depth < 2 else 1
        return [mock_value(name.rstrip("s") or name, schema.get("items") or {"type": "string"}, rng, echo, depth + 1)
                for _ in range(n)]
    if t == "integer":
        return rng.randint(1, 500)
    if t == "number":  # an id or a count typed "number" in a template still holds a whole number
        if k.endswith("id") or k.endswith("count") or k.startswith("num"):
            return rng.randint(1, 99999)
        return round(rng.uniform(1, 500), 2)
    if t == "boolean":
        return rng.random() < 0.5
    return mock_string(name, rng)


@dataclass
class ExecResult:
    output: dict[str, Any]
    ok: bool
    error: str | None = None


class OfflineExecutor:
    def __init__(self, seed: int = 0):
        self.seed = seed
        self._validators: dict[str, Draft202012Validator] = {}
        self.calls = 0
        self.errors = 0

    def check_args(self, ep: Endpoint, args: Any) -> str | None:
        v = self._validators.get(ep.id)
        if v is None:
            v = self._validators[ep.id] = Draft202012Validator(ep.arguments_schema())
        errs = sorted(v.iter_errors(args), key=lambda e: list(e.path))
        if errs:
            where = "/".join(str(p) for p in errs[0].path) or "<arguments>"
            return f"{where}: {errs[0].message[:160]}"
        return None

    def execute(self, ep: Endpoint, args: dict[str, Any]) -> ExecResult:
        self.calls += 1
        err = self.check_args(ep, args)
        if err is not None:
            self.errors += 1
            return ExecResult({"error": f"invalid arguments for {ep.id}: {err}"}, ok=False, error=err)
        rng = random.Random(f"{self.seed}:{ep.id}:{json.dumps(args, sort_keys=True, default=str)}")
        echo = {field_key(k): v for k, v in args.items()}
        schema = ep.output_schema if ep.output_schema.get("type") == "object" else \
            {"type": "object", "properties": {"results": ep.output_schema}}
        out = mock_value("response", schema, rng, echo)
        return ExecResult(out if isinstance(out, dict) else {"results": out}, ok=True)


def flatten(value: Any, prefix: str = "") -> list[tuple[str, str, Any]]:
    """(path, leaf field name, value) for every scalar leaf of a response."""
    out: list[tuple[str, str, Any]] = []
    if isinstance(value, dict):
        for k, v in value.items():
            out += flatten(v, f"{prefix}.{k}" if prefix else str(k))
    elif isinstance(value, list):
        for i, v in enumerate(value[:5]):
            out += flatten(v, f"{prefix}[{i}]")
    elif value is not None and not isinstance(value, bool):
        name = prefix.rsplit(".", 1)[-1].split("[")[0]
        out.append((prefix, name, value))
    return out


@dataclass
class Grounding:
    value: Any
    step: int
    field: str
    path: str


@dataclass
class SessionMemory:
    """Values seen in this conversation's tool outputs, for grounding later arguments."""

    entries: list[tuple[int, str, str, Any]] = field(default_factory=list)  # (step, path, field, value)

    def add(self, step: int, output: dict[str, Any]) -> None:
        for path, name, value in flatten(output):
            self.entries.append((step, path, name, value))

    def candidates(self, param: str, ptype: str = "string") -> list[Grounding]:
        """Earlier output values that can fill `param`, most recent step first, no repeats."""
        seen, out = set(), []
        for step, path, name, value in sorted(self.entries, key=lambda e: -e[0]):
            if not (field_key(name) == field_key(param) or field_matches(name, param)):
                continue
            if ptype in ("integer", "number") and not isinstance(value, (int, float)):
                continue
            if ptype == "string" and not isinstance(value, str):
                value = str(value)
            key = json.dumps(value, sort_keys=True, default=str)
            if key not in seen:
                seen.add(key)
                out.append(Grounding(value, step, name, path))
        return out

    def fields(self) -> list[str]:
        return sorted({name for _, _, name, _ in self.entries})
