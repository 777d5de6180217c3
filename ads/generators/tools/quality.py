"""Checks on a finished conversation: structure (free), an LLM judge, and the pass/fail gates.

The structural validator is a `ads.quality` Validator, so it runs inside the shared
ValidatorSuite next to the record's JSON-schema check and any validators the config adds. It
verifies what the format promises and what a model could have broken: role order, every tool
message answered by a matching call, tool names that exist, arguments valid against the
endpoint's parameter schema, outputs valid against its output schema, metadata that agrees with
the messages.

The judge is the shared `ads.quality.Judge` (0-10 integers, schema-constrained, retried, never
raising) with a tool-use rubric; scores are reported on the 1-5 scale of the record format
(1 + 0.4 * score) so the usual threshold of 3.5 applies.
"""
from __future__ import annotations

import json
from typing import Any

from jsonschema import Draft202012Validator

from ads.generators.tools.tool_registry import ToolRegistry
from ads.quality import Criterion, Judge, JudgeConfig, ValidationResult
from models.base import Model

CRITERIA = [
    Criterion(name="tool_correctness", description="The right tools are called in a sensible order, with arguments "
              "taken from the user's words or from earlier tool results, never invented."),
    Criterion(name="task_completion", description="The final answer resolves what the user asked, using the values "
              "the tools returned."),
    Criterion(name="naturalness", description="User and assistant turns read like a real, fluent conversation."),
]
CRITERIA_NAMES = [c.name for c in CRITERIA]

RECORD_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["conversation_id", "messages", "tool_calls", "tool_outputs", "metadata"],
    "properties": {
        "conversation_id": {"type": "string", "minLength": 1},
        "messages": {"type": "array", "minItems": 2, "items": {
            "type": "object", "required": ["role", "content"],
            "properties": {"role": {"enum": ["user", "assistant", "tool"]}, "content": {"type": "string"},
                           "name": {"type": "string"},
                           "tool_calls": {"type": "array", "items": {"$ref": "#/$defs/call"}}}}},
        "tool_calls": {"type": "array", "minItems": 1, "items": {"$ref": "#/$defs/call"}},
        "tool_outputs": {"type": "array", "items": {"type": "object", "required": ["name", "output"],
                                                    "properties": {"name": {"type": "string"},
                                                                   "output": {"type": "object"}}}},
        "metadata": {"type": "object", "required": [
            "seed", "tool_ids_used", "num_turns", "num_clarification_questions", "memory_grounding_rate",
            "pattern_type", "sampling_mode", "domain", "endpoint_ids", "num_tool_calls", "num_distinct_tools"]},
    },
    "$defs": {"call": {"type": "object", "required": ["name", "parameters"],
                       "properties": {"name": {"type": "string"}, "parameters": {"type": "object"}}}},
}


def _first_error(schema: dict[str, Any], value: Any) -> str | None:
    errs = sorted(Draft202012Validator(schema).iter_errors(value), key=lambda e: list(e.path))
    if not errs:
        return None
    return f"{'/'.join(str(p) for p in errs[0].path) or '<root>'}: {errs[0].message[:120]}"


class StructuralValidator:
    name = "structure"
    cost = 0

    def __init__(self, reg: ToolRegistry):
        self.reg = reg

    def issues(self, rec: dict[str, Any]) -> list[str]:
        out: list[str] = []
        msgs = rec.get("messages") or []
        if not msgs or msgs[0].get("role") != "user":
            out.append("the first message is not from the user")
        if msgs and (msgs[-1].get("role") != "assistant" or msgs[-1].get("tool_calls")):
            out.append("the last message is not a final assistant answer")
        pending: list[str] = []
        for i, m in enumerate(msgs):
            role = m.get("role")
            if role in ("user", "assistant") and not str(m.get("content", "")).strip():
                out.append(f"messages[{i}] ({role}) is empty")
            if role == "assistant":
                if pending:
                    out.append(f"messages[{i}]: calls {pending} got no tool message")
                pending = [c.get("name") for c in m.get("tool_calls") or []]
            elif role == "tool":
                if m.get("name") not in pending:
                    out.append(f"messages[{i}]: tool message for {m.get('name')!r} answers no pending call")
                else:
                    pending.remove(m.get("name"))
            elif role == "user" and pending:
                out.append(f"messages[{i}]: user spoke while calls {pending} were pending")
        in_msgs = [c for m in msgs if m.get("role") == "assistant" for c in m.get("tool_calls") or []]
        calls = rec.get("tool_calls") or []
        if json.dumps(in_msgs, sort_keys=True) != json.dumps(calls, sort_keys=True):
            out.append("tool_calls differ from the calls in the messages")
        for k, c in enumerate(calls):
            ep = self.reg.get(str(c.get("name")))
            if ep is None:
                out.append(f"tool_calls[{k}]: unknown endpoint {c.get('name')!r}")
                continue
            err = _first_error(ep.arguments_schema(), c.get("parameters"))
            if err:
                out.append(f"tool_calls[{k}] ({ep.id}) arguments: {err}")
        outs = rec.get("tool_outputs") or []
        if len(outs) != len(calls):
            out.append(f"{len(outs)} tool outputs for {len(calls)} calls")
        for k, o in enumerate(outs):
            ep = self.reg.get(str(o.get("name")))
            if ep is not None and "error" not in (o.get("output") or {}):
                schema = ep.output_schema if ep.output_schema.get("type") == "object" else None
                err = _first_error(schema, o.get("output")) if schema else None
                if err:
                    out.append(f"tool_outputs[{k}] ({ep.id}) breaks its output schema: {err}")
        md = rec.get("metadata") or {}
        if md.get("num_tool_calls") != len(calls):
            out.append(f"metadata.num_tool_calls={md.get('num_tool_calls')} but {len(calls)} calls")
        if md.get("num_turns") != len(msgs):
            out.append(f"metadata.num_turns={md.get('num_turns')} but {len(msgs)} messages")
        if sorted(md.get("endpoint_ids") or []) != sorted(c.get("name") for c in calls):
            out.append("metadata.endpoint_ids do not match the calls made")
        return out

    def check(self, item: Any) -> ValidationResult:
        if not isinstance(item, dict):
            return ValidationResult(self.name, False, "not a conversation record")
        problems = self.issues(item)
        if problems:
            more = f" (+{len(problems) - 1} more)" if len(problems) > 1 else ""
            return ValidationResult(self.name, False, problems[0] + more, float(len(problems)))
        return ValidationResult(self.name, True, "well-formed", 0.0)


def transcript(rec: dict[str, Any], output_chars: int = 260) -> str:
    lines = []
    for m in rec.get("messages", []):
        if m["role"] == "tool":
            c = m["content"]
            lines.append(f"TOOL {m.get('name')}: {c[:output_chars]}{'...' if len(c) > output_chars else ''}")
            continue
        line = f"{m['role'].upper()}: {m['content']}"
        for c in m.get("tool_calls") or []:
            line += f"\n  CALL {c['name']}({json.dumps(c['parameters'], ensure_ascii=False)})"
        lines.append(line)
    return "\n".join(lines)


def to_five(score10: float) -> float:
    return round(1.0 + 0.4 * float(score10), 2)


class ToolJudge:
    def __init__(self, model: Model, max_attempts: int = 2, max_tokens: int = 160):
        # a short rationale: every constrained token costs a full-vocabulary grammar pass
        self.judge = Judge(model, JudgeConfig(criteria=CRITERIA, max_attempts=max_attempts, max_tokens=max_tokens,
                                              max_input_chars=2600, rationale_max_chars=200))
        self.model_id = getattr(model, "model_id", "unknown")

    def score(self, rec: dict[str, Any], *, seed: int = 0, sample_id: str = "judge") -> dict[str, Any]:
        first = next((m["content"] for m in rec.get("messages", []) if m["role"] == "user"), "")
        j = self.judge.judge(transcript(rec), instruction=f"The user asked: {first}", seed=seed, sample_id=sample_id)
        if not j.ok:
            return {"ok": False, "error": j.error, "judge_model": self.model_id, "attempts": j.attempts,
                    **{c: None for c in CRITERIA_NAMES}, "mean_score": None, "reasoning": ""}
        five = {c: to_five(j.scores[c]) for c in CRITERIA_NAMES}
        return {"ok": True, **five, "mean_score": round(sum(five.values()) / len(five), 2),
                "reasoning": j.rationale, "judge_model": self.model_id, "raw_scores_0_10": j.scores,
                "attempts": j.attempts}

    def stats(self) -> dict[str, int]:
        return self.judge.stats()


def gates(structure_ok: bool, suite_failed: list[str], scores: dict[str, Any] | None,
          threshold: float) -> list[str]:
    failed = [f"validator:{n}" for n in suite_failed]
    if not structure_ok and "validator:structure" not in failed:
        failed.append("validator:structure")
    if scores is not None:
        if not scores.get("ok"):
            failed.append("judge_error")
        elif scores["mean_score"] < threshold:
            failed.append(f"mean_score<{threshold}")
    return failed
