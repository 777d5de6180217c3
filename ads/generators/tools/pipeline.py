"""Plan -> converse -> validate -> judge -> repair, for one conversation at a time.

Kept apart from the run loop so that `tools evaluate --repair` can repair a conversation read
back from a JSONL with exactly the code that generated it (the plan is stored in its metadata).
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
from ads.generators.tools.registry import ToolRegistry
from ads.generators.tools.sampler import ChainPlan, ChainSampler
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
                 threshold: float = 3.5, max_repairs: int = 1, novelty_threshold: float | None = 0.8,
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
        self.suite = ValidatorSuite([JsonSchemaValidator("record_schema", RECORD_SCHEMA), self.structure, *extra])
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

    def attempt(self, conv_id: str, plan: ChainPlan, attempt: int, example: str | None) -> dict[str, Any]:
        """Build and check one attempt (no novelty): what an executor worker computes. `counts` holds the
        builder counters this attempt raised, in the order they were first raised."""
        saved, self.builder.counts = self.builder.counts, Counter()
        try:
            rec = self.builder.build(conv_id, plan, attempt, example)
            failed, reasons, scores = self.check(rec)
        finally:
            delta, self.builder.counts = self.builder.counts, saved
            saved.update(delta)
        return {"rec": rec, "failed": failed, "reasons": reasons, "scores": scores, "counts": dict(delta)}

    def speculate(self, conv_id: str, plan: ChainPlan, start_attempt: int = 0,
                  max_repairs: int | None = None) -> list[dict[str, Any]]:
        """The attempts produce() makes, up to the first that passes without the novelty check. The
        novelty check can only add a failure, so produce(precomputed=...) reuses all of them; it makes
        the next attempt itself only when novelty rejects the last one."""
        max_repairs = self.max_repairs if max_repairs is None else max_repairs
        example = self.example_for(conv_id, plan)
        out = []
        for attempt in range(start_attempt, start_attempt + 1 + max_repairs):
            a = self.attempt(conv_id, plan, attempt, example)
            out.append(a)
            structure_ok = "structure" not in a["failed"] and "record_schema" not in a["failed"]
            if not gates(structure_ok, a["failed"], a["scores"], self.threshold):
                break
        return out

    def produce(self, conv_id: str, plan: ChainPlan, start_attempt: int = 0,
                max_repairs: int | None = None, precomputed: list[dict[str, Any]] | None = None) -> dict[str, Any]:
        """The repair loop. `precomputed`: attempts made elsewhere by speculate() (an executor worker);
        their counters are added here as if this builder had made them."""
        example = self.example_for(conv_id, plan)
        max_repairs = self.max_repairs if max_repairs is None else max_repairs
        before = Counter(self.builder.counts)
        best, tried = None, 0
        for k, attempt in enumerate(range(start_attempt, start_attempt + 1 + max_repairs)):
            tried += 1
            if precomputed is not None and k < len(precomputed):
                a = precomputed[k]
                self.builder.counts.update(a["counts"])
            else:
                a = self.attempt(conv_id, plan, attempt, example)
            rec = self.conclude(a["rec"], a["failed"], a["reasons"], a["scores"])
            if best is None or _rank(rec) > _rank(best):
                best = rec
            if rec["passed"]:
                break
        assert best is not None
        best["metadata"]["repairs"] = tried - 1
        best["metadata"]["counts"] = dict(Counter(self.builder.counts) - before)
        if best["passed"] and self.novelty is not None:
            first = next(m["content"] for m in best["messages"] if m["role"] == "user")
            self.novelty.add(conv_id, first)
        return best


def _rank(rec: dict[str, Any]) -> tuple:
    js = rec.get("judge_scores") or {}
    return (bool(rec.get("passed")), rec["validation"]["passed"], js.get("mean_score") or 0.0)
