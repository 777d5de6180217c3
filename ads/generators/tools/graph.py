"""Two graphs over the registry.

* `HeteroGraph`: five node types (tool, endpoint, parameter, category, field_type) and the
  typed edges between them. It is the inspectable picture of the tool set: which endpoints
  take an `id`, which categories share field types, which tools are isolated.
* `ProjectedGraph`: endpoints only, with a directed edge A -> B when A's output can feed B.
  `data_flow` edges carry the (output field, parameter) pairs that match by name (case and
  separators ignored, or the parameter name ends in the field's: `originSkyId` <- `skyId`);
  `same_tool` and `same_category` edges are weaker fallbacks so that a chain can always move on.
  The sampler walks this graph, and the executor later grounds arguments along the same links.

Every edge must mean that the two endpoints belong together: connected by data flow, or in one
domain (issue 24). An OpenAI function file names no tool or category, so ingestion groups all
its functions under the file's name and the placeholder category "OpenAI functions"; that
grouping says nothing about a shared domain, and the outputs synthesized for such functions
carry their siblings' id parameters, so a "data flow" through them is an artefact too (it once
chained SEC filings, movie tickets and "update a view"). For endpoints in a placeholder
category, same-tool, same-category and synthesized-output edges are kept only when the two
endpoints share a topic word in their names and descriptions (`shared_topic`); data flow from
a declared output schema always counts.

Both are plain dicts with sorted keys, so they serialize to JSON byte-identically for the same
registry, and every traversal that uses them is deterministic.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from ads.generators.tools.schema import Endpoint, field_key
from ads.generators.tools.tool_registry import ToolRegistry

# output fields too generic to mean "this value came from there"
GENERIC_FIELDS = {"status", "statuscode", "message", "result", "error", "success", "description", "type",
                  "count", "total", "image", "imageurl", "url", "link", "data", "timestamp", "page", "limit",
                  "offset", "language", "lang", "region", "country", "currency", "sort", "sortby"}
WEIGHTS = {"data_flow": 3.0, "same_tool": 1.0, "same_category": 0.3}
# categories that only say where a function was read from, not what it is about
PLACEHOLDER_CATEGORIES = {"", "openai functions", "uncategorized", "uncategorised", "general", "misc", "other"}
# words every API description uses whatever its domain: they are no evidence of a shared topic
_GENERIC_WORDS = {
    "about", "access", "according", "across", "action", "add", "all", "allow", "allows", "also", "and", "any", "api",
    "available", "based", "can", "check", "create", "current", "data", "delete", "description", "detail", "details",
    "each", "endpoint", "fetch", "find", "for", "from", "function", "get", "given", "have", "information", "info",
    "into", "item", "its", "latest", "list", "more", "name", "new", "number", "one", "other", "over", "parameter",
    "provide", "provides", "query", "remove", "request", "response", "result", "retrieve", "return", "returns",
    "search", "set", "show", "specific", "specified", "that", "the", "their", "them", "this", "type", "update",
    "use", "used", "user", "using", "value", "which", "will", "with", "within", "you", "your"}


def is_placeholder(ep: Endpoint) -> bool:
    """The endpoint's category (and so its file-made tool grouping) says nothing about its domain."""
    return ep.category.strip().lower() in PLACEHOLDER_CATEGORIES


def topic_words(ep: Endpoint) -> set[str]:
    """Content words of the endpoint's name and description (not the tool's name, which for an
    OpenAI file is the file's), singularised crudely: "tickets" and "ticket" are one topic."""
    text = re.sub(r"([a-z])([A-Z])", r"\1 \2", f"{ep.name} {ep.description}").replace("_", " ").lower()
    out = set()
    for w in re.findall(r"[a-z]{3,}", text):
        w = w[:-1] if len(w) > 4 and w.endswith("s") and not w.endswith("ss") else w
        if w not in _GENERIC_WORDS:
            out.add(w)
    return out


def shared_topic(a: Endpoint, b: Endpoint) -> bool:
    return bool(topic_words(a) & topic_words(b))


def same_domain(a: Endpoint, b: Endpoint) -> bool:
    """One tool or one category, when those are real; a shared topic word when either is a placeholder."""
    if is_placeholder(a) or is_placeholder(b):
        return shared_topic(a, b)
    return a.tool_id == b.tool_id or a.category == b.category


def coherent_flow(a: Endpoint, b: Endpoint) -> bool:
    """Data flow a -> b counts unless it runs through an output synthesized for a placeholder group."""
    if a.output_source == "synthesized" and (is_placeholder(a) or is_placeholder(b)):
        return shared_topic(a, b)
    return True


def field_matches(out_field: str, param: str) -> bool:
    f, p = field_key(out_field), field_key(param)
    if not f or f in GENERIC_FIELDS:
        return False
    return _key_match(f, p)


def _key_match(f: str, p: str) -> bool:
    return f == p or (len(f) >= 4 and p.endswith(f))


def data_links(src: Endpoint, dst: Endpoint, outs: list[str] | None = None) -> list[tuple[str, str]]:
    """(output field of src, parameter of dst) pairs that can carry a value from src to dst."""
    outs = sorted(src.output_fields()) if outs is None else outs
    return [(f, p.name) for p in dst.params for f in outs if field_matches(f, p.name)]


def _keyed_links(outs: list[tuple[str, str]], params: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """`data_links` on pre-normalised names (generic fields already dropped): the graph build
    compares every pair of endpoints, so the names are normalised once, not per pair."""
    return [(f, p) for p, pk in params for f, fk in outs if _key_match(fk, pk)]


@dataclass
class HeteroGraph:
    nodes: dict[str, dict[str, Any]] = field(default_factory=dict)  # "type:id" -> attributes
    edges: list[tuple[str, str, str]] = field(default_factory=list)  # (src, relation, dst)

    @classmethod
    def build(cls, reg: ToolRegistry) -> "HeteroGraph":
        g = cls()
        for ep in sorted(reg.endpoints.values(), key=lambda e: e.id):
            t, e, c = f"tool:{ep.tool_id}", f"endpoint:{ep.id}", f"category:{ep.category}"
            g.nodes.setdefault(t, {"type": "tool", "name": ep.tool})
            g.nodes.setdefault(c, {"type": "category", "name": ep.category})
            g.nodes[e] = {"type": "endpoint", "name": ep.name, "method": ep.method}
            g.edges += [(t, "has_endpoint", e), (e, "in_category", c)]
            if (t, "in_category", c) not in g.edges:
                g.edges.append((t, "in_category", c))
            for p in ep.params:
                pn, ft = f"parameter:{ep.id}#{p.name}", f"field_type:{p.type}"
                g.nodes[pn] = {"type": "parameter", "name": p.name, "role": "input", "required": p.required}
                g.nodes.setdefault(ft, {"type": "field_type", "name": p.type})
                g.edges += [(e, "takes", pn), (pn, "has_type", ft)]
            for name, typ in sorted(ep.output_fields().items()):
                pn, ft = f"parameter:{ep.id}>{name}", f"field_type:{typ}"
                g.nodes[pn] = {"type": "parameter", "name": name, "role": "output", "required": False}
                g.nodes.setdefault(ft, {"type": "field_type", "name": typ})
                g.edges += [(e, "produces", pn), (pn, "has_type", ft)]
        g.edges.sort()
        return g

    def count_by_type(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for n in self.nodes.values():
            out[n["type"]] = out.get(n["type"], 0) + 1
        return dict(sorted(out.items()))

    def to_dict(self) -> dict[str, Any]:
        return {"nodes": dict(sorted(self.nodes.items())), "edges": [list(e) for e in self.edges],
                "node_counts": self.count_by_type(), "edge_count": len(self.edges)}


@dataclass
class Edge:
    src: str
    dst: str
    kind: str  # data_flow | same_tool | same_category
    weight: float
    links: list[tuple[str, str]] = field(default_factory=list)


@dataclass
class ProjectedGraph:
    endpoints: list[str] = field(default_factory=list)
    out: dict[str, list[Edge]] = field(default_factory=dict)

    @classmethod
    def build(cls, reg: ToolRegistry) -> "ProjectedGraph":
        eps = sorted(reg.endpoints.values(), key=lambda e: e.id)
        g = cls(endpoints=[e.id for e in eps], out={e.id: [] for e in eps})
        outs = {e.id: [(f, field_key(f)) for f in sorted(e.output_fields())
                       if field_key(f) and field_key(f) not in GENERIC_FIELDS] for e in eps}
        params = {e.id: [(p.name, field_key(p.name)) for p in e.params] for e in eps}
        for a in eps:
            for b in eps:
                if a.id == b.id:
                    continue
                links = _keyed_links(outs[a.id], params[b.id])
                if links and coherent_flow(a, b):
                    g.out[a.id].append(Edge(a.id, b.id, "data_flow", WEIGHTS["data_flow"] + 0.5 * len(links), links))
                elif not same_domain(a, b):
                    continue
                elif a.tool_id == b.tool_id:
                    g.out[a.id].append(Edge(a.id, b.id, "same_tool", WEIGHTS["same_tool"]))
                elif a.category == b.category or is_placeholder(a) or is_placeholder(b):
                    g.out[a.id].append(Edge(a.id, b.id, "same_category", WEIGHTS["same_category"]))
        return g

    def edge(self, a: str, b: str) -> Edge | None:
        for e in self.out.get(a, []):
            if e.dst == b:
                return e
        return None

    def stats(self) -> dict[str, Any]:
        kinds: dict[str, int] = {}
        for es in self.out.values():
            for e in es:
                kinds[e.kind] = kinds.get(e.kind, 0) + 1
        return {"endpoints": len(self.endpoints), "edges": dict(sorted(kinds.items())),
                "isolated": sum(1 for es in self.out.values() if not es)}

    def to_dict(self) -> dict[str, Any]:
        return {"endpoints": self.endpoints, "stats": self.stats(),
                "edges": [{"src": e.src, "dst": e.dst, "kind": e.kind, "weight": e.weight,
                           "links": [list(x) for x in e.links]} for a in self.endpoints for e in self.out[a]]}
