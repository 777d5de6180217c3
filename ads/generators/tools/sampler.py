"""Graph-driven chain proposals: which endpoints a conversation calls, in which order.

Modes:
* `sequential`: a weighted walk along data-flow and same-tool edges (2..max steps);
* `multi_tool`: a walk that must reach at least two tools (cross-tool edges weighted up);
* `clarification_first`: a sequential chain whose first endpoint has a required parameter the
  user leaves out, so the assistant must ask for it before calling anything;
* `parallel`: 2-3 endpoints of one domain with no data dependency between them, called in one
  assistant turn;
* `mixed`: one of the four above, drawn per conversation.

Every draw comes from `random.Random(f"{seed}:{index}:{candidate}")` and every neighbour list
is sorted, so the same seed gives the same chains on any machine and in any process.
"""
from __future__ import annotations

import random
from dataclasses import asdict, dataclass, field
from typing import Any

from ads.generators.tools.graph import Edge, ProjectedGraph, same_domain
from ads.generators.tools.tool_registry import ToolRegistry

MODES = ("sequential", "multi_tool", "clarification_first", "parallel")
ALL_MODES = MODES + ("mixed",)
_SEARCHY = ("search", "list", "find", "get", "lookup", "query")


@dataclass
class ChainPlan:
    endpoint_ids: list[str]
    mode: str
    pattern_type: str
    domain: str
    parallel: bool = False
    clarification_param: str | None = None
    edge_kinds: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "ChainPlan":
        return cls(**d)


class ChainSampler:
    def __init__(self, reg: ToolRegistry, graph: ProjectedGraph, min_steps: int = 2, max_steps: int = 3,
                 max_tries: int = 40):
        if min_steps < 1 or max_steps < min_steps:
            raise ValueError(f"need 1 <= min_steps <= max_steps, got {min_steps}, {max_steps}")
        self.reg, self.graph = reg, graph
        self.min_steps, self.max_steps, self.max_tries = min_steps, max_steps, max_tries

    def rng(self, seed: int, index: int, candidate: int = 0) -> random.Random:
        return random.Random(f"{seed}:{index}:{candidate}")

    def sample(self, mode: str, rng: random.Random) -> ChainPlan | None:
        if mode not in ALL_MODES:
            raise ValueError(f"unknown sampling mode {mode!r}; choose from {ALL_MODES}")
        actual = rng.choice(MODES) if mode == "mixed" else mode
        for _ in range(self.max_tries):
            plan = getattr(self, f"_{actual}")(rng)
            if plan is not None:
                plan.mode = mode if mode != "mixed" else f"mixed:{actual}"
                return plan
        return None

    # --- walks ---------------------------------------------------------------------------
    def _walk(self, rng: random.Random, kinds: set[str], start: str, length: int,
              cross_tool_boost: float = 1.0) -> tuple[list[str], list[str]]:
        chain, used = [start], []
        while len(chain) < length:
            here = self.reg.endpoints[chain[-1]]
            opts: list[Edge] = [e for e in self.graph.out[chain[-1]] if e.kind in kinds and e.dst not in chain]
            if not opts:
                break
            w = [e.weight * (cross_tool_boost if self.reg.endpoints[e.dst].tool_id != here.tool_id else 1.0)
                 for e in opts]
            e = rng.choices(opts, weights=w, k=1)[0]
            chain.append(e.dst)
            used.append(e.kind)
        return chain, used

    def _starts(self, kinds: set[str]) -> list[str]:
        return [a for a in self.graph.endpoints if any(e.kind in kinds for e in self.graph.out[a])]

    def _pattern(self, chain: list[str], used: list[str]) -> str:
        tools = {self.reg.endpoints[c].tool_id for c in chain}
        if len(tools) > 1:
            return "multi_tool_chain"
        first = self.reg.endpoints[chain[0]].name.lower()
        if used and used[0] == "data_flow" and any(w in first for w in _SEARCHY):
            return "search_then_action"
        return "sequential_multi_step"

    def _plan(self, chain: list[str], used: list[str], mode: str, **kw: Any) -> ChainPlan:
        return ChainPlan(endpoint_ids=chain, mode=mode, pattern_type=kw.pop("pattern", None) or
                         self._pattern(chain, used), domain=self.reg.endpoints[chain[0]].category,
                         edge_kinds=used, **kw)

    def _sequential(self, rng: random.Random, require_param: bool = False) -> ChainPlan | None:
        kinds = {"data_flow", "same_tool"}
        starts = self._starts(kinds)
        if require_param:
            starts = [s for s in starts if any(p.type == "string" for p in self.reg.endpoints[s].required)]
        if not starts:
            return None
        length = rng.randint(self.min_steps, self.max_steps)
        chain, used = self._walk(rng, kinds, rng.choice(starts), length)
        if len(chain) < self.min_steps:
            return None
        return self._plan(chain, used, "sequential")

    def _multi_tool(self, rng: random.Random) -> ChainPlan | None:
        kinds = {"data_flow", "same_tool", "same_category"}
        starts = self._starts(kinds)
        if not starts:
            return None
        length = rng.randint(max(2, self.min_steps), max(2, self.max_steps))
        chain, used = self._walk(rng, kinds, rng.choice(starts), length, cross_tool_boost=4.0)
        if len(chain) < max(2, self.min_steps) or len({self.reg.endpoints[c].tool_id for c in chain}) < 2:
            return None
        return self._plan(chain, used, "multi_tool")

    def _clarification_first(self, rng: random.Random) -> ChainPlan | None:
        plan = self._sequential(rng, require_param=True)
        if plan is None:
            return None
        first = self.reg.endpoints[plan.endpoint_ids[0]]
        plan.clarification_param = rng.choice(sorted(p.name for p in first.required if p.type == "string"))
        plan.mode = "clarification_first"
        return plan

    def _parallel(self, rng: random.Random) -> ChainPlan | None:
        k = rng.randint(2, max(2, min(3, self.max_steps)))
        start = rng.choice(self.graph.endpoints)
        first = self.reg.endpoints[start]
        # one domain: a shared real category, or a shared topic where the category is a placeholder
        pool = [e for e in self.graph.endpoints if e != start and self.reg.endpoints[e].category == first.category
                and same_domain(first, self.reg.endpoints[e])]
        rng.shuffle(pool)
        chain = [start]
        for cand in pool:
            if len(chain) == k:
                break
            dependent = any((x := self.graph.edge(a, b)) is not None and x.kind == "data_flow"
                            for c in chain for a, b in ((c, cand), (cand, c)))
            if not dependent and all(same_domain(self.reg.endpoints[c], self.reg.endpoints[cand]) for c in chain):
                chain.append(cand)
        if len(chain) < 2:
            return None
        return self._plan(chain, [], "parallel", parallel=True, pattern="parallel")
