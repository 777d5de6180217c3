"""Trajectories of API calls: the JSON schema the optimizer must follow, parsing, execution.

The schema is built from the live API registry (one `anyOf` branch per API, its name as a
constant and its own argument types), so a grammar-constrained optimizer can only write
calls that exist with arguments of the right type. Output that still fails to parse (cut
off by max_tokens, a backend without grammars) is a rejected sample with its raw text kept.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any

from apis.api_registry import ApiRegistry, Observation


@dataclass
class ApiCall:
    name: str
    arguments: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Trajectory:
    calls: list[ApiCall]
    raw: str = ""
    parse_error: str | None = None
    observations: list[Observation] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.parse_error is None

    @property
    def cost(self) -> float:
        return round(sum(o.cost for o in self.observations), 6)

    def plan_json(self) -> str:
        return json.dumps({"calls": [c.to_dict() for c in self.calls]}, ensure_ascii=False)


MAX_ENUM = 64


def integer_schema(minimum: float | None, maximum: float | None) -> dict[str, Any]:
    """An integer argument's bounds as the grammar can enforce them. llama-cpp-python's schema
    converter ignores `minimum`/`maximum` (a SmolLM2 optimizer wrote top_k 10000), so a small
    range is spelled out as an `enum`, which every backend's constrained decoding honours; the
    bounds are kept too for backends and validators that read them."""
    p: dict[str, Any] = {"type": "integer"}
    if minimum is not None:
        p["minimum"] = int(minimum)
    if maximum is not None:
        p["maximum"] = int(maximum)
    if minimum is not None and maximum is not None and 0 <= maximum - minimum < MAX_ENUM:
        p["enum"] = list(range(int(minimum), int(maximum) + 1))
    return p


def trajectory_schema(registry: ApiRegistry, max_calls: int, max_arg_chars: int = 160) -> dict[str, Any]:
    branches = []
    for name in registry.names():
        api = registry.get(name)
        props: dict[str, Any] = {}
        required = []
        for arg, spec in api.args.items():
            if spec.type == "string":
                props[arg] = {"type": "string", "minLength": 1, "maxLength": min(spec.max_length or max_arg_chars,
                                                                                   max_arg_chars)}
            elif spec.type == "integer":
                props[arg] = integer_schema(spec.minimum, spec.maximum)
            else:
                props[arg] = {"type": spec.type}
            if spec.required:
                required.append(arg)
        branches.append({
            "type": "object",
            "properties": {"name": {"const": name},
                           "arguments": {"type": "object", "properties": props, "required": required,
                                         "additionalProperties": False}},
            "required": ["name", "arguments"],
            "additionalProperties": False,
        })
    return {
        "type": "object",
        "properties": {"calls": {"type": "array", "items": {"anyOf": branches}, "minItems": 0,
                                 "maxItems": max_calls}},
        "required": ["calls"],
        "additionalProperties": False,
    }


def parse_trajectory(text: str, max_calls: int) -> Trajectory:
    """Parse optimizer output defensively. Never raises; failures set parse_error."""
    raw = text if isinstance(text, str) else repr(text)
    try:
        start = raw.index("{")
        from models.structured import raw_decode_bounded  # RecursionError on deep JSON -> a ValueError

        obj, _ = raw_decode_bounded(raw[start:])
    except ValueError:
        return Trajectory(calls=[], raw=raw, parse_error="no JSON object in the output")
    if not isinstance(obj, dict) or not isinstance(obj.get("calls"), list):
        return Trajectory(calls=[], raw=raw, parse_error="JSON has no 'calls' list")
    calls = []
    for i, c in enumerate(obj["calls"]):
        if not isinstance(c, dict) or not isinstance(c.get("name"), str):
            return Trajectory(calls=[], raw=raw, parse_error=f"calls[{i}] has no string 'name'")
        args = c.get("arguments", {})
        if not isinstance(args, dict):
            return Trajectory(calls=[], raw=raw, parse_error=f"calls[{i}].arguments is not an object")
        calls.append(ApiCall(name=c["name"], arguments=args))
    if len(calls) > max_calls:
        return Trajectory(calls=[], raw=raw, parse_error=f"{len(calls)} calls exceed the limit of {max_calls}")
    return Trajectory(calls=calls, raw=raw)


TASK_PLACEHOLDER = "{task}"


def fill_task(arguments: dict[str, Any], task_text: str, max_chars: int = 400) -> dict[str, Any]:
    """Replace {task} in string arguments with the task's own text.

    A plan such as retrieve(query="{task}") transfers from one task to the next, so the
    exemplar memory can teach a small optimizer *which* API helps a kind of task without
    it having to write a good query itself. Plans are stored with the placeholder intact.
    """
    return {k: (v.replace(TASK_PLACEHOLDER, task_text)[:max_chars] if isinstance(v, str) else v)
            for k, v in arguments.items()}


def execute(traj: Trajectory, registry: ApiRegistry, task_text: str = "") -> Trajectory:
    """Run each call through the registry (which validates, charges and never raises)."""
    traj.observations = [registry.call(c.name, fill_task(c.arguments, task_text)) for c in traj.calls]
    return traj

