"""Plan -> converse -> validate -> judge -> repair, for one conversation at a time.

Kept apart from the run loop so that `tools evaluate --repair` can repair a conversation read
back from a JSONL with exactly the code that generated it (the plan is stored in its metadata).

The repair loop follows the design document (issue 24): a conversation that fails a gate gets up
to `max_repairs` repairs. The first is surgical when the failure points at prose turns (a turn
written by code, a user turn in the assistant's voice, low naturalness or task completion, a
repeated opening): only those turns are rewritten, with the validators' reasons and the judge's
scores and rationale quoted in the prompt (`turns.feedback_text`). Every later repair, and the
first when the calls themselves are wrong (structure, low tool correctness), rebuilds the whole
conversation with that feedback in the user proxy's and the final answer's prompts. A chain
that joins unrelated tools is never repaired: the plan is the problem, and no rewrite changes it.
"""
from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ads.generators.tools.conversation import ConversationBuilder, DialogueSettings
from ads.generators.tools.graph import HeteroGraph, ProjectedGraph
from ads.generators.tools.ingest import load_paths
from ads.generators.tools.memory import CorpusMemory
from ads.generators.tools.quality import RECORD_SCHEMA, StructuralValidator, ToolJudge, gates
from ads.generators.tools.sampler import ChainPlan, ChainSampler
from ads.generators.tools.tool_registry import ToolRegistry
from ads.generators.tools.turns import ChainValidator, TurnValidator, feedback_text, repair_targets
from ads.quality import NoveltyFilter, ValidatorSuite, build_validators
from ads.quality.validators import JsonSchemaValidator
from models.base import Model


def nestful_spec_path() -> Path:
    from models.assets import package_dir

    return package_dir("data_v1") / "executable" / "executable-spec.json"


def load_registry(paths: list[str], nestful: bool = False) -> ToolRegistry:
    srcs: list[str | Path] = list(paths)
    if nestful:
        srcs.append(nestful_spec_path())
    return ToolRegistry.build(load_paths(srcs))


@dataclass
class Built:
    reg: ToolRegistry
    hetero: HeteroGraph
    projected: ProjectedGraph


def build_all(paths: list[str], nestful: bool = False) -> Built:
    reg = load_registry(paths, nestful)
    return Built(reg, HeteroGraph.build(reg), ProjectedGraph.build(reg))


def plan_text(reg: ToolRegistry, plan: ChainPlan) -> str:
    eps = [reg.endpoints[e] for e in plan.endpoint_ids]
    return (f"domain {plan.domain}; pattern {plan.pattern_type}; tools "
            + ", ".join(dict.fromkeys(e.tool for e in eps)) + "; " + "; ".join(f"{e.name}: {e.description[:80]}"
                                                                         for e in eps))


class ToolUsePipeline:
    def __init__(self, built: Built, model: Model, *, judge_model: Model | None = None, seed: int = 0,
                 mode: str = "mixed", min_steps: int = 2, max_steps: int = 3, candidates: int = 4,
                 corpus_memory: bool = True, embedder: Any | None = None, evaluate: bool = True,
                 threshold: float = 3.5, max_repairs: int = 2, novelty_threshold: float | None = 0.8,
                 validators: list[Any] | None = None, settings: DialogueSettings | None = None,
                 use_examples: bool = False, user_model: Model | None = None, judge_attempts: int = 2,
                 memory_k: int = 3):
        self.b, self.reg, self.seed, self.mode = built, built.reg, seed, mode
        self.sampler = ChainSampler(built.reg, built.projected, min_steps, max_steps)
        self.builder = ConversationBuilder(built.reg, built.projected, model, user_model=user_model, seed=seed,
                                           settings=settings)
        self.memory = CorpusMemory(embedder, enabled=corpus_memory, k=memory_k)
        self.n_candidates = candidates
        self.judge = ToolJudge(judge_model or model, max_attempts=judge_attempts) if evaluate else None
        self.threshold, self.max_repairs = threshold, max_repairs
        self.use_examples = use_examples
        self.structure = StructuralValidator(built.reg)
        extra = build_validators(validators or [], judge_model=judge_model or model, embedder=embedder)
        self.suite = ValidatorSuite([JsonSchemaValidator("record_schema", RECORD_SCHEMA), self.structure,
                                     ChainValidator(built.reg, built.projected), TurnValidator(), *extra])
        self.novelty = NoveltyFilter(novelty_threshold, k=3) if novelty_threshold else None

    # --- planning with steering ------------------------------------------------------------
    def plan(self, index: int) -> tuple[ChainPlan, dict[str, Any]]:
        cands: list[ChainPlan] = []
        for c in range(self.n_candidates if self.memory.enabled else 1):
            p = self.sampler.sample(self.mode, self.sampler.rng(self.seed, index, c))
            if p is not None:
                cands.append(p)
        if not cands:
            raise RuntimeError(f"the sampler found no {self.mode!r} chain in this tool set "
                               f"({len(self.reg.endpoints)} endpoints); try another mode or more tools")
        texts = [plan_text(self.reg, p) for p in cands]
        chosen, sims = self.memory.choose(texts)
        return cands[chosen], {"candidates": len(cands), "chosen": chosen, "similarities": sims}

    def remember(self, plan: ChainPlan) -> None:
        self.memory.add(plan_text(self.reg, plan))

    def example_for(self, conv_id: str, plan: ChainPlan) -> str | None:
        if not self.use_examples or not self.reg.examples:
            return None
        exs = self.reg.examples_for(plan.domain)
        return random.Random(f"{self.seed}:{conv_id}:example").choice(exs).query

    # --- one conversation, with its repair loop -------------------------------------------
    def check(self, rec: dict[str, Any]) -> tuple[list[str], dict[str, Any], dict[str, Any] | None]:
        """The order-free part of an assessment (validators, judge): (failed, reasons, judge scores)."""
        opening = next((m["content"] for m in rec["messages"] if m["role"] == "user"), "")
        item = {**rec, "first_user": opening, "final_answer": rec["messages"][-1]["content"]}
        res = self.suite.run(item, item_id=rec["conversation_id"])
        scores = None
        if self.judge is not None:
            scores = self.judge.score(rec, seed=self.seed,
                                      sample_id=f"judge:{rec['conversation_id']}:{rec['metadata'].get('attempt', 0)}")
        return list(res.failed), res.reasons, scores

    def conclude(self, rec: dict[str, Any], failed: list[str], reasons: dict[str, Any],
                 scores: dict[str, Any] | None, *, novelty: bool = True) -> dict[str, Any]:
        """The order-dependent part: the novelty check against earlier passed conversations, then the gates."""
        failed = list(failed)
        if novelty and self.novelty is not None:
            opening = next((m["content"] for m in rec["messages"] if m["role"] == "user"), "")
            nc = self.novelty.check(opening)
            if not nc.is_novel:
                failed.append("novelty")
        structure_ok = "structure" not in failed and "record_schema" not in failed
        g = gates(structure_ok, failed, scores, self.threshold)
        rec["validation"] = {"passed": not failed, "failed": failed, "reasons": reasons}
        rec["judge_scores"] = {**scores, "passed": not g, "failed_gates": g} if scores is not None else \
            {"ok": False, "judged": False, "passed": not g, "failed_gates": g}
        rec["passed"] = not g
        return rec

    def assess(self, rec: dict[str, Any], *, novelty: bool = True) -> dict[str, Any]:
        return self.conclude(rec, *self.check(rec), novelty=novelty)

    def attempt(self, conv_id: str, plan: ChainPlan, attempt: int, example: str | None,
                prev: dict[str, Any] | None = None, repair_no: int = 0) -> dict[str, Any]:
        """Build (prev None) or repair (prev: the last attempt, with its failures and scores) and check one
        attempt, without novelty: what an executor worker computes. Repair 1 is surgical when
        `repair_targets` names turns; otherwise, and for every later repair, the whole conversation is
        rebuilt with the feedback. `counts` holds the builder counters this attempt raised."""
        saved, self.builder.counts = self.builder.counts, Counter()
        try:
            if prev is None:
                rec = self.builder.build(conv_id, plan, attempt, example)
            else:
                fb = feedback_text(prev["failed"], prev["reasons"], prev["scores"], self.threshold)
                targets = repair_targets(prev["rec"], prev["failed"], prev["scores"], self.threshold) \
                    if repair_no == 1 else None
                if targets:
                    rec = self.builder.revise(prev["rec"], targets, fb, attempt, example)
                    rec["metadata"]["repair"] = {"kind": "surgical", "turns": targets, "feedback": fb}
                else:
                    rec = self.builder.build(conv_id, plan, attempt, example, feedback=fb)
                    rec["metadata"]["repair"] = {"kind": "rewrite", "feedback": fb}
            failed, reasons, scores = self.check(rec)
        finally:
            delta, self.builder.counts = self.builder.counts, saved
            saved.update(delta)
        return {"rec": rec, "failed": failed, "reasons": reasons, "scores": scores, "counts": dict(delta)}

    def _fails(self, a: dict[str, Any]) -> bool:
        """The gates without the novelty check (which can only add a failure)."""
        structure_ok = "structure" not in a["failed"] and "record_schema" not in a["failed"]
        return bool(gates(structure_ok, a["failed"], a["scores"], self.threshold))

    def speculate(self, conv_id: str, plan: ChainPlan, start_attempt: int = 0,
                  max_repairs: int | None = None) -> list[dict[str, Any]]:
        """The attempts produce() makes, up to the first that passes without the novelty check. The
        novelty check can only add a failure, so produce(precomputed=...) reuses all of them; it makes
        the next attempt itself only when novelty rejects the last one."""
        max_repairs = self.max_repairs if max_repairs is None else max_repairs
        example = self.example_for(conv_id, plan)
        out: list[dict[str, Any]] = []
        prev = None
        for k in range(1 + max_repairs):
            a = self.attempt(conv_id, plan, start_attempt + k, example, prev=prev, repair_no=k)
            out.append(a)
            if not self._fails(a) or "chain" in a["failed"]:
                break
            prev = a
        return out

    def produce(self, conv_id: str, plan: ChainPlan, start_attempt: int = 0,
                max_repairs: int | None = None, precomputed: list[dict[str, Any]] | None = None,
                initial: dict[str, Any] | None = None) -> dict[str, Any]:
        """The repair loop. `precomputed`: attempts made elsewhere by speculate() (an executor worker);
        their counters are added here as if this builder had made them. `initial` (tools evaluate
        --repair): an attempt already made and concluded, numbered `start_attempt`; only repairs follow."""
        example = self.example_for(conv_id, plan)
        max_repairs = self.max_repairs if max_repairs is None else max_repairs
        before = Counter(self.builder.counts)
        best, prev, last_k, kinds = None, None, 0, []
        first = 0
        if initial is not None:
            best, prev, first = initial["rec"], initial, 1
        if best is None or not best.get("passed"):
            for k in range(first, 1 + max_repairs):
                if prev is not None and "chain" in prev["failed"]:
                    break  # the plan joins unrelated tools: no repair of the text can fix that
                if precomputed is not None and k < len(precomputed):
                    a = precomputed[k]
                    self.builder.counts.update(a["counts"])
                else:
                    a = self.attempt(conv_id, plan, start_attempt + k, example, prev=prev, repair_no=k)
                rec = self.conclude(a["rec"], a["failed"], a["reasons"], a["scores"])
                last_k = k
                if k > 0:
                    kinds.append(rec["metadata"].get("repair", {}).get("kind"))
                if best is None or _rank(rec) > _rank(best):
                    best = rec
                if rec["passed"]:
                    break
                # the next repair hears about novelty only when nothing else failed (as speculate() does)
                prev = a if self._fails(a) else {**a, "failed": rec["validation"]["failed"]}
        assert best is not None
        best["metadata"]["repairs"] = last_k
        best["metadata"]["repair_kinds"] = kinds
        best["metadata"]["counts"] = dict(Counter(self.builder.counts) - before)
        if best["passed"] and self.novelty is not None:
            first_user = next(m["content"] for m in best["messages"] if m["role"] == "user")
            self.novelty.add(conv_id, first_user)
        return best


def _rank(rec: dict[str, Any]) -> tuple:
    """Which attempt to keep when none passes: a passed one, else one whose only failure is a repeated
    opening (its text is sound), else one that passes the validators, else the judge's favourite."""
    js = rec.get("judge_scores") or {}
    failed = rec["validation"]["failed"]
    return (bool(rec.get("passed")), not [f for f in failed if f != "novelty"], not failed,
            js.get("mean_score") or 0.0)
