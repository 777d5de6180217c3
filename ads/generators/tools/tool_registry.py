"""The normalization boundary: ingested endpoints in, one deduplicated, typed tool registry out.

The same ToolBench endpoint appears in many query files (and in the tool file) with slightly
different text; the registry keeps one record per `tool::endpoint` id, merging what each copy
knows (a parameter only one copy lists, an output template only one copy has). Endpoints that
carry no output schema get one synthesized from the id-like parameters their sibling endpoints
take (`task_id`, `symbol`, ...): a mock executor must return *something* schema-shaped, and
this is the shape that lets a later call be grounded in an earlier one. Which schemas were
synthesized is recorded (`output_source`), never hidden.
"""
from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Iterable

from ads.generators.tools.ingest import IngestResult
from ads.generators.tools.schema import Endpoint, Example, Param, field_key, slug

_ID_LIKE = re.compile(r"(^id$|_?id$|Id$|code$|symbol$|slug$|key$|uuid$)", re.I)


def is_id_like(name: str) -> bool:
    return bool(_ID_LIKE.search(name))


@dataclass
class ToolRegistry:
    endpoints: dict[str, Endpoint] = field(default_factory=dict)
    examples: list[Example] = field(default_factory=list)
    stats: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def build(cls, raw: IngestResult) -> "ToolRegistry":
        reg = cls()
        dups = 0
        for ep in raw.endpoints:
            ep = _clean(ep)
            if ep.id in reg.endpoints:
                dups += 1
                _merge(reg.endpoints[ep.id], ep)
            else:
                reg.endpoints[ep.id] = ep
        attached = 0
        for ep in reg.endpoints.values():
            schema = raw.response_schemas.get(ep.tool_id, {}).get(slug(ep.name))
            if schema and not ep.output_schema:
                ep.output_schema, ep.output_source = schema, "response_example"
                attached += 1
        synthesized = 0
        for ep in reg.endpoints.values():
            if not ep.output_fields():
                ep.output_schema, ep.output_source = _synthesize_output(ep, reg.endpoints.values()), "synthesized"
                synthesized += 1
        seen_q = set()
        for ex in raw.examples:
            if ex.query not in seen_q:
                seen_q.add(ex.query)
                reg.examples.append(ex)
        matched = {(t, e) for t, eps in raw.response_schemas.items() for e in eps
                   if f"{t}::{e}" in reg.endpoints}
        reg.stats = {
            "files": len(raw.files), "formats": dict(Counter(raw.files.values())),
            "raw_endpoints": len(raw.endpoints), "endpoints": len(reg.endpoints), "duplicates_merged": dups,
            "tools": len(reg.tools()), "categories": len(reg.categories()), "examples": len(reg.examples),
            "output_schemas": dict(Counter(e.output_source for e in reg.endpoints.values())),
            "response_examples_attached": attached,
            "response_examples_unmatched": sum(len(v) for v in raw.response_schemas.values()) - len(matched),
            "synthesized_outputs": synthesized, "unknown_param_types": raw.unknown_types,
        }
        return reg

    def tools(self) -> dict[str, list[Endpoint]]:
        out: dict[str, list[Endpoint]] = {}
        for ep in self.endpoints.values():
            out.setdefault(ep.tool_id, []).append(ep)
        return out

    def categories(self) -> list[str]:
        return sorted({ep.category for ep in self.endpoints.values()})

    def get(self, endpoint_id: str) -> Endpoint | None:
        return self.endpoints.get(endpoint_id)

    def examples_for(self, category: str) -> list[Example]:
        return [e for e in self.examples if e.category == category] or list(self.examples)

    def to_dict(self) -> dict[str, Any]:
        return {"endpoints": [e.to_dict() for e in self.endpoints.values()],
                "examples": [vars(x) for x in self.examples], "stats": self.stats}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "ToolRegistry":
        reg = cls(stats=d.get("stats", {}))
        for e in d["endpoints"]:
            ep = Endpoint.from_dict(e)
            reg.endpoints[ep.id] = ep
        reg.examples = [Example(**x) for x in d.get("examples", [])]
        return reg


def _clean(ep: Endpoint) -> Endpoint:
    ep.tool, ep.name = " ".join(ep.tool.split()), " ".join(ep.name.split())
    ep.category = " ".join(ep.category.replace("_", " ").split()) or "Uncategorized"
    ep.method = ep.method.upper()
    if not ep.description or not ep.description.strip():
        ep.description = f"{ep.name} ({ep.tool})"
    seen: dict[str, Param] = {}
    for p in ep.params:  # a parameter listed twice keeps its first spelling; required wins
        if p.name in seen:
            seen[p.name].required = seen[p.name].required or p.required
        else:
            seen[p.name] = p
    ep.params = list(seen.values())
    return ep


def _merge(into: Endpoint, other: Endpoint) -> None:
    names = {p.name for p in into.params}
    into.params += [p for p in other.params if p.name not in names]
    if len(other.description) > len(into.description) and not other.description.endswith(f"({other.tool})"):
        into.description = other.description
    if not into.output_fields() and other.output_fields():
        into.output_schema, into.output_source = other.output_schema, other.output_source


def _synthesize_output(ep: Endpoint, all_eps: Iterable[Endpoint]) -> dict[str, Any]:
    props: dict[str, Any] = {"status": {"type": "string"}}
    siblings = [e for e in all_eps if e.tool_id == ep.tool_id and e.id != ep.id]
    for e in siblings:
        for p in e.required:
            if is_id_like(p.name) and field_key(p.name) not in {field_key(k) for k in props}:
                props[p.name] = {"type": p.type if p.type in ("string", "integer", "number") else "string"}
    props["result"] = {"type": "string"}
    return {"type": "object", "properties": props}
