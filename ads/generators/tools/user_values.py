"""What the user knows: the values a user states in the opening request (a parameter's documented
default, else a mock value), and which parameters of a later step an earlier step's output fills
instead. Code, not a model, decides these, so a conversation's facts are fixed before any turn
is written and every turn can be checked against them.
"""
from __future__ import annotations

import random
from typing import Any

from ads.generators.tools.graph import ProjectedGraph
from ads.generators.tools.sampler import ChainPlan
from ads.generators.tools.schema import Param
from ads.generators.tools.tool_calls import mock_value
from ads.generators.tools.tool_registry import ToolRegistry


class Planner:
    """Decides the values a user would know, and which parameters later steps ground."""

    def __init__(self, reg: ToolRegistry, graph: ProjectedGraph, seed: int):
        self.reg, self.graph, self.seed = reg, graph, seed

    def groundable(self, plan: ChainPlan, step: int, param: Param) -> bool:
        if plan.parallel or step == 0:
            return False
        for prev in plan.endpoint_ids[:step]:
            e = self.graph.edge(prev, plan.endpoint_ids[step])
            if e is not None and any(p == param.name for _, p in e.links):
                return True
        return False

    def user_values(self, plan: ChainPlan, conv_id: str) -> dict[str, dict[str, Any]]:
        """{endpoint_id: {param: value}} for required parameters no earlier output can fill.

        One user has one value per thing: two steps that both take `stateIsoCode` get the same
        value (when its type and allowed values fit both), so the opening request can state it once."""
        out: dict[str, dict[str, Any]] = {}
        known: dict[str, Any] = {}
        for step, eid in enumerate(plan.endpoint_ids):
            ep = self.reg.endpoints[eid]
            for p in ep.required:
                if self.groundable(plan, step, p):
                    continue
                prev = known.get(p.name)
                if p.name in known and _type_ok(prev, p.type) and (not p.enum or prev in p.enum):
                    out.setdefault(eid, {})[p.name] = prev
                    continue
                rng = random.Random(f"{self.seed}:{conv_id}:{eid}:{p.name}")
                if p.enum:
                    v: Any = rng.choice(p.enum)
                elif p.default is not None and _type_ok(p.default, p.type):
                    v = p.default
                else:
                    v = mock_value(p.name, p.json_schema() if p.type != "array" else {"type": "string"}, rng, {})
                    if p.type == "array":
                        v = [v]
                known.setdefault(p.name, v)
                out.setdefault(eid, {})[p.name] = v
        return out


def _type_ok(v: Any, t: str) -> bool:
    return {"string": isinstance(v, str), "integer": isinstance(v, int) and not isinstance(v, bool),
            "number": isinstance(v, (int, float)) and not isinstance(v, bool), "boolean": isinstance(v, bool),
            "array": isinstance(v, list), "object": isinstance(v, dict)}.get(t, False)
