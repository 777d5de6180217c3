"""The contract for data-acquisition APIs and the registry that calls them safely.

The optimizer is a small model: it will name APIs that do not exist, pass numbers where
strings belong, and send empty queries. The registry turns every such mistake into an
error Observation that is counted and charged like any call, so a bad trajectory costs
reward instead of ending the run.
"""
from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol, runtime_checkable

from models.errors import FatalModelError


class ApiLedger(Protocol):
    """Where API calls are charged (the run's cost ledger implements it; apis/ needs nothing else)."""

    def record_api(self, name: str, cost_units: float, wall_s: float, ok: bool = True) -> None: ...

_PY_TYPES = {"string": str, "integer": int, "number": (int, float), "boolean": bool, "array": list,
             "object": dict}


@dataclass
class Observation:
    text: str
    payload: dict[str, Any] = field(default_factory=dict)
    cost: float = 0.0
    ok: bool = True
    error: str | None = None
    api: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class ArgSpec:
    type: str  # JSON-schema type name
    description: str = ""
    required: bool = True
    max_length: int | None = None  # for strings
    minimum: float | None = None
    maximum: float | None = None
    default: Any = None


@runtime_checkable
class Api(Protocol):
    name: str
    description: str
    args: dict[str, ArgSpec]
    cost: float  # cost units charged per call

    def __call__(self, **kwargs: Any) -> Observation: ...


class ApiRegistry:
    def __init__(self, apis: list[Api] | None = None, ledger: ApiLedger | None = None, error_cost: float = 1.0):
        self._apis: dict[str, Api] = {}
        self.ledger = ledger
        self.error_cost = error_cost
        self.error_counts: dict[str, int] = {}
        for api in apis or []:
            self.register(api)

    def register(self, api: Api) -> None:
        self._apis[api.name] = api

    def names(self) -> list[str]:
        return list(self._apis)

    def get(self, name: str) -> Api | None:
        return self._apis.get(name)

    def describe(self) -> str:
        """The API menu shown to the optimizer."""
        lines = []
        for api in self._apis.values():
            sig = ", ".join(f"{k}: {v.type}{'' if v.required else '?'}" for k, v in api.args.items())
            lines.append(f"- {api.name}({sig}): {api.description}")
        return "\n".join(lines)

    def validate(self, name: str, args: Any) -> tuple[dict[str, Any] | None, str | None]:
        api = self._apis.get(name)
        if api is None:
            return None, f"unknown API {name!r}; available: {', '.join(self._apis) or 'none'}"
        if not isinstance(args, dict):
            return None, f"{name}: arguments must be an object, got {type(args).__name__}"
        unknown = set(args) - set(api.args)
        if unknown:
            return None, f"{name}: unknown argument(s) {sorted(unknown)}; expected {sorted(api.args)}"
        clean: dict[str, Any] = {}
        for key, spec in api.args.items():
            if key not in args or args[key] is None:
                if spec.required:
                    return None, f"{name}: missing required argument {key!r} ({spec.type})"
                clean[key] = spec.default
                continue
            val = args[key]
            py = _PY_TYPES.get(spec.type, object)
            if isinstance(val, bool) and spec.type in ("integer", "number"):
                return None, f"{name}.{key}: expected {spec.type}, got boolean"
            if not isinstance(val, py):
                return None, f"{name}.{key}: expected {spec.type}, got {type(val).__name__}"
            if spec.type == "string":
                if not val.strip():
                    return None, f"{name}.{key}: must not be empty"
                if spec.max_length is not None and len(val) > spec.max_length:
                    return None, f"{name}.{key}: {len(val)} characters exceeds the limit of {spec.max_length}"
            if spec.type in ("integer", "number"):
                if spec.minimum is not None and val < spec.minimum:
                    return None, f"{name}.{key}: {val} is below the minimum {spec.minimum}"
                if spec.maximum is not None and val > spec.maximum:
                    return None, f"{name}.{key}: {val} is above the maximum {spec.maximum}"
            clean[key] = val
        return clean, None

    def call(self, name: str, args: Any) -> Observation:
        """Validate, run, charge. Never raises for bad input or a failing API."""
        t0 = time.perf_counter()
        clean, err = self.validate(name, args)
        if err is None:
            api = self._apis[name]
            try:
                obs = api(**clean)
                obs.api = name
            except FatalModelError:
                raise  # its model endpoint is failing for good: every later call fails alike, end the run
            except Exception as e:  # an API bug must cost this trajectory, not the run
                err = f"{name} failed: {type(e).__name__}: {e}"
        if err is not None:
            self.error_counts[name] = self.error_counts.get(name, 0) + 1
            obs = Observation(text=f"ERROR: {err}", payload={"error": err}, cost=self.error_cost, ok=False,
                              error=err, api=name)
        if self.ledger is not None:
            self.ledger.record_api(name if name in self._apis else f"unknown:{name}"[:64], obs.cost,
                                   time.perf_counter() - t0, ok=obs.ok)
        return obs
