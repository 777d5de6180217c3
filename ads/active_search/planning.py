"""Who writes a task's trajectory: the learned optimizer (with its exemplar memory) and the baselines.

The optimizer's prompt has a fixed head (instructions and the API menu with costs and argument
bounds) and a task-specific tail: accepted plans of similar tasks, then the task's train
instructions with the policy's current answers and scores, the weakness signal that says
where data is needed. Fixed text first keeps llama.cpp's prefix reuse working across calls.
Held-out instructions never appear here.

Baselines write trajectories without learning:
- `random_plan`: random APIs with arguments cut from the train instructions' text, adding
  calls until the cost spent equals a target (the learned plan's cost on the same task), so
  both spend the same on average;
- `retrieve_plan`: one retrieval per train instruction, its text as the query.
"""
from __future__ import annotations

import json
import random
import re
from typing import Any

from ads.active_search.instruction_sets import Task
from ads.active_search.api_trajectories import ApiCall, Trajectory, parse_trajectory, trajectory_schema
from apis.api_registry import ApiRegistry
from models.base import Model, ModelError

OPTIMIZER_SYSTEM = (
    "You plan data acquisition for a small assistant model. You see a task (several instructions), the "
    "assistant's current answers and their scores (1 = right, 0 = wrong). A wrong answer means it lacks "
    "knowledge: choose API calls whose results, given to the assistant as reference data, would let it answer "
    "instructions like these correctly. Each call has a cost; fetch nothing only when its answers are already "
    "right or no API could help. Reply with JSON: {\"calls\": [{\"name\": ..., \"arguments\": {...}}]}. In a "
    "text argument, {task} stands for the task's instructions. Examples: "
    "{\"calls\": [{\"name\": \"information_retrieval\", \"arguments\": {\"query\": \"{task}\"}}]} searches "
    "with the task's text; {\"calls\": []} fetches nothing."
)


def _words(text: str) -> set[str]:
    return set(re.findall(r"[a-z0-9]+", text.lower()))


def task_key(task: Task) -> str:
    """What the memory matches tasks by: their train instructions (never held-out ones)."""
    return "\n".join(i.prompt for i in task.train)


class ExemplarMemory:
    """Accepted (task, plan) pairs; the nearest by word overlap become the optimizer's examples.

    Each entry carries a version, (iteration, task position). `nearest(before=v)` sees the memory
    as it stood before v (the latest entry per task), so the tasks of a batch all see the memory
    of the batch's start, also after a resume that restored later entries.
    """

    def __init__(self) -> None:
        self._history: list[tuple[tuple[int, int], str, str, str]] = []  # (version, task_id, key, plan_json)

    def __len__(self) -> int:
        return len({tid for _, tid, _, _ in self._history})

    def add(self, task_id: str, key: str, plan_json: str, version: tuple[int, int] = (10**9, 0)) -> None:
        self._history.append((version, task_id, key, plan_json))

    def entries(self, before: tuple[int, int] | None = None) -> list[tuple[str, str, str]]:
        latest: dict[str, tuple[tuple[int, int], str, str]] = {}
        for v, tid, key, plan in self._history:
            if (before is None or v < before) and (tid not in latest or v >= latest[tid][0]):
                latest[tid] = (v, key, plan)
        return [(tid, key, plan) for tid, (_, key, plan) in latest.items()]

    def nearest(self, key: str, n: int, exclude: str | None = None,
                before: tuple[int, int] | None = None) -> list[tuple[str, str]]:
        q = _words(key)
        scored = []
        for tid, k, plan in self.entries(before):
            if tid == exclude:
                continue
            w = _words(k)
            scored.append((len(q & w) / max(1, len(q | w)), tid, k, plan))
        scored.sort(key=lambda x: (-x[0], x[1]))
        return [(k, plan) for _, _, k, plan in scored[:n]]


def task_relative(calls: list[dict[str, Any]], task: Task, share: float = 0.5) -> list[dict[str, Any]]:
    """The plan as an exemplar for other tasks: a text argument that mostly quotes its own task's
    train instructions is written as `{task}`.

    A small optimizer copies the plans it is shown; "Edith Wharton" copied into a task about
    Humphry Davy fetches the wrong article, while `{task}` copied fetches the right one. What is
    kept is *which* call helped and that its argument was the task's own text."""
    words = _words(task.query_text(4000))
    out = []
    for c in calls:
        args = {}
        for k, v in (c.get("arguments") or {}).items():
            w = _words(v) if isinstance(v, str) else set()
            args[k] = "{task}" if w and len(w & words) / len(w) >= share else v
        out.append({**c, "arguments": args})
    return out


def describe_apis(registry: ApiRegistry, max_arg_chars: int = 160) -> str:
    """The API menu with each call's cost and its arguments' bounds (as the schema enforces them)."""
    lines = []
    for name in registry.names():
        api = registry.get(name)
        args = []
        for k, s in api.args.items():
            bound = ""
            if s.type == "integer" and s.minimum is not None and s.maximum is not None:
                bound = f" {int(s.minimum)}-{int(s.maximum)}"
            elif s.type == "string":
                bound = f" <= {min(s.max_length or max_arg_chars, max_arg_chars)} chars"
            args.append(f"{k}{'' if s.required else '?'}: {s.type}{bound}")
        lines.append(f"- {name}({', '.join(args)}), cost {api.cost:g}: {api.description}")
    return "\n".join(lines)


def weakness_lines(task: Task, current: list[tuple[str, float]], answer_chars: int = 80) -> str:
    out = []
    for n, (ins, (answer, score)) in enumerate(zip(task.train, current), 1):
        ans = " ".join(answer.split())[:answer_chars]
        out.append(f"{n}. {ins.prompt}\n   assistant: {ans!r} (score {score:.2f})")
    return "\n".join(out)


class Optimizer:
    def __init__(self, model: Model, registry: ApiRegistry, *, max_calls: int, max_tokens: int, seed: int,
                 max_arg_chars: int = 160):
        self.model, self.registry, self.seed = model, registry, seed
        self.max_calls, self.max_tokens = max_calls, max_tokens
        self.schema = trajectory_schema(registry, max_calls, max_arg_chars)
        self.menu = describe_apis(registry, max_arg_chars)

    def messages(self, task: Task, current: list[tuple[str, float]],
                 exemplars: list[tuple[str, str]]) -> list[dict[str, str]]:
        shots = "".join(f"Task: {' '.join(k.split())[:160]}\nPlan: {plan}\n\n" for k, plan in exemplars)
        user = (f"APIs:\n{self.menu}\n\n"
                + (f"Plans that worked for similar tasks:\n{shots}" if shots else "")
                + f"Task instructions and the assistant's current answers:\n{weakness_lines(task, current)}\nPlan:")
        return [{"role": "system", "content": OPTIMIZER_SYSTEM}, {"role": "user", "content": user}]

    def propose(self, task: Task, current: list[tuple[str, float]], exemplars: list[tuple[str, str]],
                sample_id: str, temperature: float) -> Trajectory:
        try:
            out = self.model.generate(self.messages(task, current, exemplars), max_tokens=self.max_tokens,
                                      temperature=temperature, seed=self.seed, sample_id=sample_id,
                                      json_schema=self.schema)
        except ModelError as e:
            return Trajectory(calls=[], raw="", parse_error=f"optimizer failed: {e}")
        return parse_trajectory(out.text, self.max_calls)


def plan_json(calls: list[dict[str, Any]]) -> str:
    return json.dumps({"calls": calls}, ensure_ascii=False)


def random_plan(task: Task, registry: ApiRegistry, target_cost: float, rng: random.Random) -> Trajectory:
    """Random APIs with text arguments cut from the task's train instructions, until `target_cost` is spent.

    An API is drawn among those whose cost still fits, so the plan spends exactly the target
    whenever the costs allow it (integer costs with a 1-unit API always do)."""
    words = task.query_text(2000).split() or ["data"]
    calls: list[ApiCall] = []
    spent = 0.0
    for _ in range(64):
        fits = [n for n in registry.names() if spent + registry.get(n).cost <= target_cost + 1e-9]
        if not fits:
            break
        name = rng.choice(fits)
        api = registry.get(name)
        start = rng.randrange(max(1, len(words) - 4))
        span = " ".join(words[start:start + rng.randint(3, 10)])
        args = {k: span[: spec.max_length or 400] for k, spec in api.args.items()
                if spec.required and spec.type == "string"}
        calls.append(ApiCall(name=name, arguments=args))
        spent += api.cost
    return Trajectory(calls=calls, raw="<random>")


def retrieve_plan(task: Task) -> Trajectory:
    return Trajectory(calls=[ApiCall(name="information_retrieval", arguments={"query": i.content()[:400]})
                             for i in task.train], raw="<always_retrieve>")
