"""The assistant's call arguments: JSON constrained by the endpoint's parameter schema, grounded in
earlier outputs, checked against what the user said, with a fallback and a recorded lineage.

A parameter an earlier output can fill is constrained to the values that output holds (so
grounding is enforced, not hoped for). String arguments carry no `maxLength` (a bounded
repetition multiplies the grammar's cost); `max_tokens` bounds them instead. An unparseable
reply, an argument that breaks the schema, or a user-known value the model did not copy from
the user's words is a rejection; the assistant is asked again with the error, and after
`max_arg_attempts` the planner's values fill the gap (`arg_fallbacks`).

`CallArguments` is a part of `ConversationBuilder` (conversation.py), kept in its own module
because writing arguments is a job of its own; it uses the builder's `assistant`, `seed`,
settings `s` and `counts` (which the repair loop swaps per attempt, so it is read, never copied).
"""
from __future__ import annotations

import json
import random
from typing import Any

from ads.generators.tools.sampler import ChainPlan
from ads.generators.tools.schema import Endpoint
from ads.generators.tools.tool_calls import Grounding, SessionMemory, mock_value
from ads.generators.tools.turn_text import describe, mentioned, short_json
from models.base import Model, ModelError
from models.structured import parse_json

MAX_ENUM = 6


class CallArguments:
    """Argument writing for ConversationBuilder (see the module docstring)."""

    def _ask(self, model: Model, messages: list[dict], schema: dict[str, Any], sample_id: str, what: str,
             temperature: float | None = None, max_tokens: int | None = None) -> tuple[Any, str | None]:
        self.counts["llm_calls"] += 1
        try:
            out = model.generate(messages, max_tokens=max_tokens or self.s.max_tokens,
                                 temperature=self.s.temperature if temperature is None else temperature,
                                 seed=self.seed, sample_id=sample_id, json_schema=schema)
        except ModelError as e:
            self.counts["model_errors"] += 1
            return None, f"model error: {e}"
        obj, err = parse_json(out.text, schema)
        if err is not None:
            self.counts[f"parse_failures.{what}"] += 1
            if out.finish_reason == "length":
                err += " (cut at max_tokens)"
        return obj, err

    def _candidates(self, mem: SessionMemory, ep: Endpoint, step: int, plan: ChainPlan) -> dict[str, list[Grounding]]:
        if step == 0 or plan.parallel:
            return {}
        out = {}
        for p in ep.params:
            if p.type not in ("string", "integer", "number"):
                continue
            c = mem.candidates(p.name, p.type)
            if c:
                out[p.name] = c[:MAX_ENUM]
        return out

    def _args_schema(self, ep: Endpoint, cands: dict[str, list[Grounding]]) -> dict[str, Any]:
        s = ep.arguments_schema()
        for name, cs in cands.items():
            s["properties"][name] = {"enum": [c.value for c in cs]}
        return s

    def _call_args(self, sid: str, group: list[int], eps: list[Endpoint], cands: dict[int, dict[str, list[Grounding]]],
                   values: dict[str, dict[str, Any]], user_text: str,
                   outputs: list[dict[str, Any]]) -> dict[int, dict[str, Any]]:
        keys = {i: f"call_{k + 1}" for k, i in enumerate(group)}
        if len(group) == 1:
            props: dict[str, Any] = {"arguments": self._args_schema(eps[group[0]], cands[group[0]])}
        else:
            props = {"calls": {"type": "object", "additionalProperties": False, "required": list(keys.values()),
                               "properties": {keys[i]: self._args_schema(eps[i], cands[i]) for i in group}}}
        schema = {"type": "object", "properties": props, "required": list(props), "additionalProperties": False}
        earlier = "\n".join(f"step {k}: {o['name']} -> {short_json(o['output'], self.s.prompt_output_chars)}"
                            for k, o in enumerate(outputs)) or "(none yet)"
        tools = "\n".join(f"{keys[i]}: {describe(eps[i])}" for i in group)
        ground = "; ".join(f"{p} from step {c[0].step} ({c[0].field})" for i in group for p, c in cands[i].items())
        shape = '{"arguments": {...}}' if len(group) == 1 else \
            '{"calls": {' + ", ".join(f'"{k}": {{...}}' for k in keys.values()) + "}}"
        prompt = (f"Conversation so far (user):\n{user_text}\n\nEarlier tool results:\n{earlier}\n\n"
                  f"Call now{' (all at once, in parallel)' if len(group) > 1 else ''}:\n{tools}\n"
                  + (f"Take these from earlier results: {ground}\n" if ground else "")
                  + f"Reply as JSON: {shape}")
        msgs = [{"role": "system", "content": "You are an assistant that calls tools. Fill the arguments with values "
                                              "the user gave or earlier results returned; never invent ids."},
                {"role": "user", "content": prompt}]
        last: dict[int, dict[str, Any]] = {}
        for attempt in range(self.s.max_arg_attempts):
            obj, err = self._ask(self.assistant, msgs, schema, f"{sid}:call{group[0]}:{attempt}", "arguments",
                                 temperature=None if attempt == 0 else self.s.retry_temperature)
            problems = []
            if obj is None:
                problems.append(err or "no JSON")
                self.counts["arg_schema_rejections"] += 1
            else:
                got = {i: (obj["arguments"] if len(group) == 1 else obj["calls"][keys[i]]) for i in group}
                last = got
                for i in group:
                    for p, v in values.get(eps[i].id, {}).items():
                        if p in got[i] and not mentioned(got[i][p], user_text) and got[i][p] != v:
                            problems.append(f"{keys[i]}.{p}={got[i][p]!r} is not what the user said ({v!r})")
                if problems:
                    self.counts["ungrounded_arg_rejections"] += 1
            if not problems:
                return last
            if attempt + 1 < self.s.max_arg_attempts:
                self.counts["arg_repairs"] += 1
                msgs = msgs + [{"role": "assistant", "content": json.dumps(obj) if obj else "(invalid)"},
                               {"role": "user", "content": "Fix these problems and reply again: " + "; ".join(problems)}]
        self.counts["arg_fallbacks"] += 1
        return {i: self._fallback(eps[i], last.get(i, {}), cands[i], values.get(eps[i].id, {}), user_text)
                for i in group}

    def _fallback(self, ep: Endpoint, got: dict[str, Any], cands: dict[str, list[Grounding]],
                  vals: dict[str, Any], user_text: str) -> dict[str, Any]:
        """Keep what the model wrote that is valid and grounded; fill the rest from the plan."""
        from jsonschema import Draft202012Validator

        out = {}
        for p in ep.params:
            if p.name in vals:
                out[p.name] = vals[p.name]
            elif p.name in cands:
                out[p.name] = cands[p.name][0].value
            elif p.name in got and Draft202012Validator(p.json_schema()).is_valid(got[p.name]):
                out[p.name] = got[p.name]
            elif p.required:
                out[p.name] = mock_value(p.name, p.json_schema() if p.type != "array" else {"type": "string"},
                                         random.Random(f"{self.seed}:{ep.id}:{p.name}"), {})
                if p.type == "array":
                    out[p.name] = [out[p.name]]
        return out

    def _lineage(self, step: int, ep: Endpoint, args: dict[str, Any], cands: dict[str, list[Grounding]],
                 user_text: str) -> dict[str, Any]:
        rows = []
        for k, v in args.items():
            hit = next((c for c in cands.get(k, []) if c.value == v), None)
            if hit is not None:
                rows.append({"param": k, "value": v, "source": "tool_output", "from_step": hit.step,
                             "field": hit.field, "path": hit.path})
            elif mentioned(v, user_text):
                rows.append({"param": k, "value": v, "source": "user"})
            else:
                rows.append({"param": k, "value": v, "source": "model"})
        return {"step": step, "endpoint": ep.id, "arguments": rows}
