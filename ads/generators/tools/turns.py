"""Rules a conversation must meet beyond its structure (issue 24), and the feedback a repair gets.

Three failures once passed as good conversations:

* a turn written by code, not by a model: a fallback sentence ("Let me look that up.") or the
  planner's values appended to the user's request ("... (number_of_tickets=333, location=Paris)").
  Such text must never pass as a user or assistant turn. The builder records who wrote each turn
  (`metadata.turn_sources`: "model", "fallback" or "appended"), and the text itself is checked
  too, so records written before that field existed are caught as well;
* a user turn written from the assistant's side ("Sure, I'll do that! Could you please provide me
  with the stock symbol..."): small models often answer the user-proxy prompt as the assistant;
* a chain joining unrelated tools (SEC filings, movie tickets, "update a view"): every step must
  follow from the previous one by data flow or stay in its domain (graph.py).

`TurnValidator` and `ChainValidator` are `ads.quality` validators (cost 0) in the pipeline's
suite, so a failure is a gate like any other and reaches the repair loop with its reason.
`feedback_text` turns validator reasons and the judge's scores and rationale into the text the
repair prompts quote, and `repair_targets` says which turns a surgical repair should rewrite.
"""
from __future__ import annotations

import re
from typing import Any

from ads.generators.tools.graph import ProjectedGraph, same_domain
from ads.generators.tools.tool_registry import ToolRegistry
from ads.quality import ValidationResult

# --- who wrote the turn ---------------------------------------------------------------------
# "(symbol=NVDA, days=3)", "number_of_tickets=333", "stateIsoCode = BA": parameter text made by
# code (or copied by the model from the prompt's "Details you know" line), never natural speech.
CODE_PARAMS = re.compile(r"\(\s*[A-Za-z_][\w.]*\s*=|\b[A-Za-z_]\w*\s*=\s*[\w\"'\[{-]")
# the builder's own fallback sentences (conversation.py), for records without turn_sources
TEMPLATES = re.compile(r"^(Could you help me with this: |Here is what I found: \{|Let me look that up\.$|"
                       r"Let me run these lookups at the same time\.$|Could you tell me the [\w ]+\?$|It's [^.]{1,80}\.$)")

# --- whose side the turn is written from ----------------------------------------------------
# The opening request may not begin as an assistant's reply does. "Could you please provide" is on
# the list because, at the start of an opening, it is how the assistant asks the user for a detail;
# a user who writes it is asked (by the repair) to rephrase, a cost we accept against a bad record.
OPENING_ASSISTANT_START = re.compile(
    r"^\W*(sure|certainly|of course|absolutely|no problem|happy to|glad to|i'd be (happy|glad)|"
    r"i would be (happy|glad)|as an ai|great question|here is|here's|here are|okay,? i'?ll|ok,? i'?ll|"
    r"alright,? i'?ll|could you please provide)\b", re.I)
# Phrases only the assistant says, wherever they stand in any user turn.
ASSISTANT_ONLY = re.compile(
    r"\b(how (can|may) i (help|assist)|what can i do for you|is there anything else|anything else i can|"
    r"i('ll| will| can) (help you|assist|look (that|this|it) up|check (that|this|it) for you|find (that|this|it) for you|"
    r"get (that|this|it) for you|do that for you|take care of)|let me (check|look|find|search|fetch|get) (that|this|it)|"
    r"(provide|share|give|tell|send|confirm|specify)( me)?( with)? your\b|i('ll| will) need your\b)", re.I)


def turn_kind(messages: list[dict[str, Any]], i: int) -> str:
    """What a message is, from its position: opening, answer (to a clarification), clarify, say
    (the sentence before tool calls), final, or tool."""
    m = messages[i]
    if m.get("role") == "tool":
        return "tool"
    if m.get("role") == "user":
        return "opening" if not any(x.get("role") == "user" for x in messages[:i]) else "answer"
    if m.get("tool_calls"):
        return "say"
    if i == len(messages) - 1:
        return "final"
    return "clarify"


def turn_issues(rec: dict[str, Any]) -> list[tuple[int, str]]:
    """(message index, problem) for every user or assistant turn that breaks a rule above."""
    msgs = rec.get("messages") or []
    sources = (rec.get("metadata") or {}).get("turn_sources") or {}
    out: list[tuple[int, str]] = []
    for i, m in enumerate(msgs):
        role, text = m.get("role"), str(m.get("content") or "")
        if role not in ("user", "assistant"):
            continue
        kind = turn_kind(msgs, i)
        src = sources.get(str(i), "model")
        if src != "model":
            out.append((i, f"{kind} turn was written by code ({src}), not by the model"))
        elif not sources and TEMPLATES.search(text.strip()):  # an older record: recognise the templates
            out.append((i, f"{kind} turn is the code fallback template"))
        if CODE_PARAMS.search(text):
            out.append((i, f"{kind} turn contains code-style parameter text (name=value)"))
        if role == "user":
            if kind == "opening" and OPENING_ASSISTANT_START.search(text):
                out.append((i, "the user's request is written as the assistant (it opens like a reply)"))
            elif ASSISTANT_ONLY.search(text):
                out.append((i, f"the user's {kind} is written as the assistant ({ASSISTANT_ONLY.search(text).group(0)!r})"))
    return out


class TurnValidator:
    """No code-written turn, no code-style parameter text, user turns from the user's side."""

    name = "turns"
    cost = 0

    def check(self, item: Any) -> ValidationResult:
        if not isinstance(item, dict):
            return ValidationResult(self.name, False, "not a conversation record")
        issues = turn_issues(item)
        if not issues:
            return ValidationResult(self.name, True, "every turn written by the model, from its own side", 0.0)
        text = "; ".join(f"messages[{i}]: {p}" for i, p in issues)
        return ValidationResult(self.name, False, text, float(len(issues)))


def chain_issues(reg: ToolRegistry, graph: ProjectedGraph, endpoint_ids: list[str], parallel: bool) -> list[str]:
    """A sequential chain moves along graph edges (data flow or one domain) step by step; a parallel
    group stays in one domain. Unknown endpoints are the structural validator's to report."""
    eps = [reg.get(e) for e in endpoint_ids]
    if any(e is None for e in eps):
        return []
    out = []
    if parallel:
        for k in range(1, len(eps)):
            for j in range(k):
                if not same_domain(eps[j], eps[k]):  # type: ignore[arg-type]
                    out.append(f"{endpoint_ids[j]} and {endpoint_ids[k]} share no domain")
        return out
    for a, b in zip(endpoint_ids, endpoint_ids[1:]):
        if graph.edge(a, b) is None:
            out.append(f"{a} -> {b}: no data flow and no shared domain")
    return out


class ChainValidator:
    name = "chain"
    cost = 0

    def __init__(self, reg: ToolRegistry, graph: ProjectedGraph):
        self.reg, self.graph = reg, graph

    def check(self, item: Any) -> ValidationResult:
        if not isinstance(item, dict):
            return ValidationResult(self.name, False, "not a conversation record")
        md = item.get("metadata") or {}
        plan = md.get("plan") or {}
        ids = md.get("endpoint_ids") or [c.get("name") for c in item.get("tool_calls") or []]
        parallel = bool(plan.get("parallel")) if plan else md.get("pattern_type") == "parallel"
        issues = chain_issues(self.reg, self.graph, [str(x) for x in ids], parallel)
        if issues:
            return ValidationResult(self.name, False, "; ".join(issues), float(len(issues)))
        return ValidationResult(self.name, True, "every step connected by data flow or a shared domain", 0.0)


# --- feedback for the repair -----------------------------------------------------------------
CRITERION_TURNS = {"naturalness": ("opening", "say", "answer", "clarify"), "task_completion": ("final",)}
# failures a rewrite of single prose turns cannot fix: the calls, their order or the record itself
WHOLE = {"record_schema", "structure", "chain", "judge:tool_correctness"}


def low_criteria(scores: dict[str, Any] | None, threshold: float) -> list[str]:
    """Judge criteria under the threshold (1-5); the lowest one when only the mean is under it."""
    if not scores or not scores.get("ok"):
        return []
    crit = {k: scores[k] for k in ("tool_correctness", "task_completion", "naturalness")
            if isinstance(scores.get(k), (int, float))}
    low = [k for k, v in crit.items() if v < threshold]
    if not low and crit and (scores.get("mean_score") or 0) < threshold:
        low = [min(crit, key=lambda k: crit[k])]
    return low


def feedback_text(failed: list[str], reasons: dict[str, Any], scores: dict[str, Any] | None, threshold: float,
                  max_chars: int = 700) -> str:
    """What was wrong, in words a repair prompt can quote: each failed validator's reason, the
    judge's low criteria and its rationale."""
    parts = []
    for name in failed:
        r = reasons.get(name)
        parts.append(f"{name}: {r}" if r else f"{name} check failed")
    for k in low_criteria(scores, threshold):
        parts.append(f"judge: {k.replace('_', ' ')} {scores[k]}/5")  # type: ignore[index]
    if scores and scores.get("ok") and low_criteria(scores, threshold) and scores.get("reasoning"):
        parts.append(f"judge says: {scores['reasoning']}")
    if scores is not None and not scores.get("ok") and scores.get("judged", True) is not False:
        parts.append("the judge could not score it")
    text = "; ".join(parts)
    return text if len(text) <= max_chars else text[:max_chars].rsplit(" ", 1)[0] + "..."


def repair_targets(rec: dict[str, Any], failed: list[str], scores: dict[str, Any] | None,
                   threshold: float) -> list[int] | None:
    """Message indexes a surgical repair rewrites, or None when only a full rewrite can help (the
    structure or the chain is wrong, the tool calls are judged wrong, or no turn can be named)."""
    low = low_criteria(scores, threshold)
    if any(f in WHOLE for f in failed) or "tool_correctness" in low:
        return None
    if scores is not None and not scores.get("ok") and scores.get("judged", True) is not False and not failed:
        return None  # an unscorable conversation: nothing to aim at
    msgs = rec.get("messages") or []
    targets = {i for i, _ in turn_issues(rec)}
    kinds = [turn_kind(msgs, i) for i in range(len(msgs))]
    for k in low:
        targets.update(i for i, kd in enumerate(kinds) if kd in CRITERION_TURNS.get(k, ()))
    if "novelty" in failed:
        targets.update(i for i, kd in enumerate(kinds) if kd == "opening")
    if any(f not in ("turns", "novelty") for f in failed):  # config validators read first_user / final_answer
        targets.update(i for i, kd in enumerate(kinds) if kd == "final")
    return sorted(targets) or None
