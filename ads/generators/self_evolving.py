"""Self-evolving benchmark generator: Self-Instruct tasks, novelty filter, LLM judge, EMA.

One attempt:
  1. pick a target category (biased toward categories the pool has few of) and a
     difficulty (from the category's judge-score EMA, or "easy" while its acceptance EMA
     is low; evolve/curriculum.py);
  2. the generator sees `demo_k` tasks from the pool and writes exactly one new task as
     schema-constrained JSON (instruction template + one concrete user_input + metadata),
     its category fixed to the target by the schema;
  3. free checks: the JSON parses against the schema, user_input is not blank, the
     instruction does not carry the instance, the shared validators (fragment
     instructions, repetition loops);
  4. cheap novelty, before any answer is paid for: the instruction against the pool's
     instructions (Self-Instruct's filter: the same template with new data is not a new
     task), then k-word shingle Jaccard of instruction + input against the pool (seeds +
     accepted items; MinHash LSH with `novelty_method: minhash`);
  5. the answerer answers it; the judge sees the task, the answer and the nearest pool
     tasks and returns score_0_10, novel, difficulty, tags, rationale;
  6. rejected when not novel or below `min_score`; else the item (with the EMAs after
     it) is appended to benchmark.jsonl, joins the demo pool and the novelty memory.
Every attempt ends in exactly one event in run_logs.jsonl (accepted, or rejected with its
stage and reason, model errors included).

Stopping: `accept_target` counts the items in benchmark.jsonl (so a resumed or continued
benchmark stops at the same size), `max_attempts` the attempts in run_logs.jsonl.

Resume: both files are append-only JSONL keyed by attempt number; an accepted item is
written before its event, so a kill between the two writes is repaired on resume (the
event is added, the item is not written again). Pool, novelty memory and EMAs are rebuilt
from the files (EMA warm start: stored fields, else a replay of the scores), and attempt
n always uses the same random stream and sample ids, so a resumed run continues the run
it replaces.
"""
from __future__ import annotations

import json
import random
import time
from collections import Counter
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, model_validator
from tqdm import tqdm

from ads.config import ConfigError, ModelConfig, RunConfig, Strict
from ads.generators.evolve.curriculum import pick_demos, pick_difficulty, sample_category, warm_start_ema
from ads.generators.evolve.prompts import answer_messages, generation_messages, task_schema
from ads.generators.evolve.seeds import load_seed_file, real_seed_tasks
from ads.generators.evolve.task_judge import TaskJudge
from ads.ledger import ledger_scope
from ads.quality import EMATracker, NoveltyFilter, ValidatorSuite
from ads.quality.diversity import distinct_n, mean_pairwise_jaccard_distance, normalized_entropy
from ads.quality.text import jaccard, words
from ads.quality.validators import DistinctNCfg, LengthCfg, ValidatorSpec
from ads.report import print_table
from ads.run import RunContext
from ads.store import JsonlStore, atomic_write_json
from ads.tracking import plot_curves
from models.base import Model, ModelError
from models.errors import FatalModelError
from models.structured import parse_json

__all__ = ["SelfEvolvingConfig", "SelfEvolvingGenerator", "run"]


class SeedsConfig(Strict):
    real: bool = True  # seeds cut from GSM8K and Wikipedia (ads.tasks); see evolve/seeds.py
    per_category: int = Field(3, ge=1, le=50)
    path: str | None = None  # optional JSONL of extra seeds (instruction, user_input, category, ...)


def _default_validators() -> list[Any]:
    """Free checks before any answer is paid for: small models stuck in a loop repeat one
    phrase until max_tokens, and sometimes write a fragment ("Example 1, 2: {") as the
    instruction."""
    return [LengthCfg(type="length", name="instruction_min_words", field="instruction", min_words=4),
            DistinctNCfg(type="distinct_n", name="input_not_looping", field="user_input", n=2, min=0.5),
            DistinctNCfg(type="distinct_n", name="instruction_not_looping", field="instruction", n=2, min=0.5)]


class SelfEvolvingConfig(RunConfig):
    kind: Literal["self_evolving"] = "self_evolving"
    name: str = "self-evolving"
    generator: ModelConfig = ModelConfig()
    answerer: ModelConfig | None = None  # None: the generator's model
    judge: ModelConfig | None = None  # None: the generator's model
    # the knobs of the loop (all settable with --set KEY=VALUE)
    accept_target: int = Field(50, ge=1)
    max_attempts: int = Field(400, ge=1)
    min_score: float = Field(6.5, ge=0, le=10)
    # reject when the judge says novel=false. Very small judges can be biased to one answer
    # (Qwen2.5-0.5B said false on every task in our runs): with false, its verdict is still
    # recorded in the item and the log, and novelty rests on the two shingle filters.
    judge_novelty_veto: bool = True
    ema_alpha: float = Field(0.1, gt=0, le=1)
    sim_threshold: float = Field(0.70, gt=0, le=1)
    shingle_k: int = Field(5, ge=1)
    # Self-Instruct's own filter: a new instruction must differ from every pooled one (the
    # paper uses ROUGE-L 0.7; here 3-word shingle Jaccard), else it is the same task with new
    # data. Checked before the answer is paid for. None: off.
    instruction_sim_threshold: float | None = Field(0.7, gt=0, le=1)
    instruction_shingle_k: int = Field(3, ge=1)
    novelty_method: Literal["exact", "minhash"] = "exact"
    demo_k: int = Field(4, ge=0, le=12)
    gen_temp: float = Field(0.9, ge=0)
    ans_temp: float = Field(0.3, ge=0)
    judge_temp: float = Field(0.2, ge=0)
    gen_max_tokens: int = Field(320, ge=32)
    # length bounds in the task schema; keep them inside gen_max_tokens (about 2.5-4 chars a
    # token), or long replies are cut before the JSON closes and count as malformed
    instruction_max_chars: int = Field(240, ge=20, le=4000)
    input_max_chars: int = Field(480, ge=20, le=8000)
    ans_max_tokens: int = Field(192, ge=8)
    judge_max_tokens: int = Field(200, ge=32)
    judge_attempts: int = Field(2, ge=1, le=5)
    judge_rationale_chars: int = Field(200, ge=20, le=2000)  # bound in the judge schema (fits judge_max_tokens)
    similar_k: int = Field(3, ge=0, le=10)  # nearest pool tasks shown to the judge
    category_power: float = Field(1.0, ge=0)
    hard_above: float = Field(8.0, ge=0, le=10)  # category EMA at/above this: ask for hard tasks
    easy_below: float | None = Field(None, ge=0, le=10)  # below this: easy; None = min_score + 1
    easy_accept_below: float = Field(0.2, ge=0, le=1)  # category acceptance EMA below this: easy
    round_size: int = Field(10, ge=1)  # attempts per round in logs and plots
    categories: list[str] | None = None  # None: the seed pool's categories
    seeds: SeedsConfig = SeedsConfig()
    validators: list[ValidatorSpec] = Field(default_factory=_default_validators)
    benchmark_path: str | None = None  # None: <run dir>/benchmark.jsonl
    runlog_path: str | None = None  # None: <run dir>/run_logs.jsonl

    @model_validator(mode="after")
    def _check(self) -> "SelfEvolvingConfig":
        if self.accept_target > self.max_attempts:
            raise ValueError(f"accept_target ({self.accept_target}) cannot exceed max_attempts ({self.max_attempts})")
        if not self.seeds.real and not self.seeds.path:
            raise ValueError("seeds: with real: false, give seeds.path (a JSONL of seed tasks)")
        if (self.benchmark_path is None) != (self.runlog_path is None):
            raise ValueError("benchmark_path and runlog_path go together (both set or both null): the event log "
                             "is what makes the benchmark resumable")
        return self


def item_text(task: dict[str, Any]) -> str:
    """What novelty compares: the template and its instance together."""
    return f"{task['instruction']}\n{task['user_input']}"


class SelfEvolvingGenerator:
    def __init__(self, cfg: SelfEvolvingConfig, ctx: RunContext, *, generator_model: Model | None = None,
                 answer_model: Model | None = None, judge_model: Model | None = None,
                 seeds: list[dict[str, Any]] | None = None):
        self.cfg, self.ctx = cfg, ctx
        self.gen = ctx.wrap(generator_model, "generator") if generator_model else ctx.model("generator", cfg.generator)
        self.ans = (ctx.wrap(answer_model, "answerer") if answer_model
                    else ctx.model("answerer", cfg.answerer or cfg.generator))
        jm = ctx.wrap(judge_model, "judge") if judge_model else ctx.model("judge", cfg.judge or cfg.generator)
        self.judge = TaskJudge(jm, temperature=cfg.judge_temp, max_tokens=cfg.judge_max_tokens,
                               max_attempts=cfg.judge_attempts, rationale_chars=cfg.judge_rationale_chars)
        self.seeds = seeds if seeds is not None else self._load_seeds()
        if not self.seeds:
            raise ConfigError("seeds: the seed pool is empty")
        self.categories = list(cfg.categories or dict.fromkeys(s["category"] for s in self.seeds))
        lim = dict(instruction_max=cfg.instruction_max_chars, input_max=cfg.input_max_chars)
        self.schema = task_schema(self.categories, **lim)  # what a reply is checked against
        # what the generator is asked for: the sampled category, so the bias toward rare
        # categories steers what gets written (a backend without grammars may still stray)
        self.target_schemas = {c: task_schema(self.categories, only_category=c, **lim) for c in self.categories}
        self.validators = ValidatorSuite.from_config([v.model_dump(by_alias=True, exclude_unset=True)
                                                      for v in cfg.validators])
        self.easy_below = cfg.easy_below if cfg.easy_below is not None else min(10.0, cfg.min_score + 1.0)
        d = ctx.run_dir
        self.bench_path = Path(cfg.benchmark_path) if cfg.benchmark_path else d / "benchmark.jsonl"
        self.log_path = Path(cfg.runlog_path) if cfg.runlog_path else d / "run_logs.jsonl"
        if not ctx.resume:
            for p in (self.bench_path, self.log_path):
                if p.exists() and p.stat().st_size > 0 and d not in p.parents:
                    raise ConfigError(f"{p} already holds records; pass --resume to continue that benchmark "
                                      f"or choose another path")
        self.bench = JsonlStore(self.bench_path)
        self.logs = JsonlStore(self.log_path)
        atomic_write_json(d / "seeds.json", self.seeds)

    def _load_seeds(self) -> list[dict[str, Any]]:
        s = self.cfg.seeds
        out = real_seed_tasks(s.per_category, self.cfg.seed) if s.real else []
        return out + (load_seed_file(s.path) if s.path else [])

    def _checked_item(self, it: dict[str, Any], i: int) -> dict[str, Any]:
        """A stored item as the loop needs it. Items this loop wrote carry `attempt`; items without
        one (a hand-made or older file) are imported: they join the pool, the novelty memory
        and the EMA warm start, and get an in-memory id when they have none."""
        for key in ("instruction", "user_input", "category"):
            if not isinstance(it.get(key), str):
                raise ConfigError(f"{self.bench_path}: item {i + 1} has no string field '{key}'")
        if it.get("attempt") is None:
            it = {**it, "id": f"import-{i:05d}-{it.get('id', '')}"}
        return it

    # -- state, rebuilt from the two files ------------------------------------------------
    def restore(self) -> dict[str, Any]:
        items = [self._checked_item(it, i) for i, it in enumerate(self.bench.read())]
        attempts = [it["attempt"] for it in items if it.get("attempt") is not None]
        if len(attempts) != len(set(attempts)):
            dup = sorted({a for a in attempts if attempts.count(a) > 1})
            raise ConfigError(f"{self.bench_path}: several items claim attempt(s) {dup[:5]}; the file was edited "
                              f"or mixes two benchmarks")
        events = [e for e in self.logs if "attempt" in e]
        logged = {e["attempt"] for e in events}
        # An item whose attempt has no event: the run was killed between the two appends
        # (item first), so it can only be the attempt right after the last logged one.
        for it in items:
            a = it.get("attempt")
            if a is None or a in logged:
                continue
            if a != len(logged):
                raise ConfigError(f"{self.bench_path}: item {it['id']} says attempt {a}, which {self.log_path} does "
                                  f"not record (it records {len(logged)} attempts); benchmark_path and runlog_path "
                                  f"must be the two files of one benchmark")
            ev = {"id": f"attempt-{a:05d}", "attempt": a, "outcome": "accepted", "stage": "accept", "reason": None,
                  "item_id": it["id"], "category": it["category"],
                  "target_category": it.get("target_category", it["category"]), "score_0_10": it.get("score_0_10"),
                  "recovered": True, "created_at": time.time()}
            self.logs.append(ev)
            events.append(ev)
            logged.add(a)
        events.sort(key=lambda e: e["attempt"])
        n = len(events)
        if [e["attempt"] for e in events] != list(range(n)):
            raise ConfigError(f"{self.log_path}: attempt numbers are not 0..{n - 1} without gaps or repeats; "
                              f"the file was edited or mixes two runs")
        self.items, self.events = items, events
        self.pool = list(self.seeds) + items
        self.pool_counts = Counter(t["category"] for t in self.pool)
        self.novelty = NoveltyFilter(self.cfg.sim_threshold, k=self.cfg.shingle_k, method=self.cfg.novelty_method,
                                     seed=self.cfg.seed + 1)
        self.instr_novelty = None
        if self.cfg.instruction_sim_threshold is not None:
            self.instr_novelty = NoveltyFilter(self.cfg.instruction_sim_threshold, k=self.cfg.instruction_shingle_k)
        for t in self.pool:
            if t["id"] not in self.novelty:
                self.novelty.add(t["id"], item_text(t))
                if self.instr_novelty is not None:
                    self.instr_novelty.add(t["id"], t["instruction"])
        self.ema, how = warm_start_ema(items, self.cfg.ema_alpha)
        self.accept_ema = EMATracker(self.cfg.ema_alpha).warm_start(
            [{"x": float(e["outcome"] == "accepted"), "c": e["target_category"]} for e in events],
            score_key="x", category_key="c")
        self.reasons = Counter(e["reason"] for e in events if e["outcome"] != "accepted")
        start = {"id": f"start-{sum(1 for e in self.logs if e.get('event') == 'run_start')}", "event": "run_start",
                 "resumed": self.ctx.resume, "restored_items": len(items), "restored_attempts": n,
                 "warm_start": how, "ema_global": self.ema.value, "ema_category": self.ema.categories,
                 "created_at": time.time()}
        self.logs.append(start)
        return start

    # -- one attempt -----------------------------------------------------------------------
    def similar(self, text: str, k: int) -> list[dict[str, Any]]:
        q = set(words(text))
        scored = sorted(((jaccard(q, set(words(item_text(t)))), i) for i, t in enumerate(self.pool)),
                        key=lambda x: (-x[0], x[1]))
        return [self.pool[i] for _, i in scored[:k]]

    def attempt(self, n: int) -> dict[str, Any]:
        cfg = self.cfg
        rng = random.Random(f"{cfg.seed}:{n}")
        cat = sample_category(self.pool_counts, self.categories, rng, cfg.category_power)
        ema_c = self.ema.get(cat, self.ema.value)
        acc_c = self.accept_ema.get(cat)
        diff = pick_difficulty(ema_c, self.easy_below, cfg.hard_above, acc_c, cfg.easy_accept_below)
        demos = pick_demos(self.pool, cat, cfg.demo_k, rng)
        ev: dict[str, Any] = {"id": f"attempt-{n:05d}", "attempt": n, "round": n // cfg.round_size,
                              "target_category": cat, "target_difficulty": diff, "ema_used": ema_c,
                              "acceptance_ema_used": acc_c,
                              "demo_ids": [d["id"] for d in demos], "created_at": time.time()}

        def reject(stage: str, reason: str, **extra: Any) -> dict[str, Any]:
            return {**ev, "outcome": "error" if reason.endswith("_error") else "rejected", "stage": stage,
                    "reason": reason, **extra}

        try:
            out = self.gen.generate(generation_messages(demos, cat, diff), max_tokens=cfg.gen_max_tokens,
                                    temperature=cfg.gen_temp, seed=cfg.seed, sample_id=f"gen:{n}",
                                    json_schema=self.target_schemas[cat])
        except ModelError as e:
            return reject("generate", "generator_error", detail=str(e)[:300])
        task, err = parse_json(out.text, self.schema)
        if err is not None:
            cut = " (output cut at gen_max_tokens)" if out.finish_reason == "length" else ""
            return reject("parse", "malformed_task", detail=err + cut, raw=out.text[:600])
        task["instruction"], task["user_input"] = task["instruction"].strip(), task["user_input"].strip()
        ev["task"] = task
        if not task["user_input"]:
            return reject("check", "empty_user_input")
        if not task["instruction"]:
            return reject("check", "empty_instruction")
        if len(task["user_input"]) >= 20 and task["user_input"].lower() in task["instruction"].lower():
            return reject("check", "instance_in_instruction")
        vr = self.validators.run(task, item_id=ev["id"])
        if not vr.passed:
            return reject("validate", f"validator:{vr.failed[0]}", detail=vr.reasons)
        if self.instr_novelty is not None:
            ni = self.instr_novelty.check(task["instruction"])
            ev["instruction_max_similarity"], ev["instruction_nearest_id"] = ni.max_sim, ni.nearest_id
            if not ni.is_novel:
                return reject("novelty", "reused_instruction")
        text = item_text(task)
        nov = self.novelty.check(text)
        ev["heuristic_max_similarity"], ev["heuristic_nearest_id"] = nov.max_sim, nov.nearest_id
        if not nov.is_novel:
            return reject("novelty", "near_duplicate")
        try:
            a = self.ans.generate(answer_messages(task), max_tokens=cfg.ans_max_tokens, temperature=cfg.ans_temp,
                                  seed=cfg.seed, sample_id=f"ans:{n}")
        except ModelError as e:
            return reject("answer", "answerer_error", detail=str(e)[:300])
        answer = a.text.strip()
        ev["answer"] = answer
        if not answer:
            return reject("answer", "empty_answer")
        similar = self.similar(text, cfg.similar_k)
        v = self.judge.evaluate(task, answer, similar, seed=cfg.seed, sample_id=f"judge:{n}")
        ev["judge"] = v.to_dict()
        if not v.ok:
            return reject("judge", "judge_error" if v.model_error else "judge_malformed", detail=v.error)
        if not v.novel and cfg.judge_novelty_veto:
            return reject("judge", "judge_not_novel", score_0_10=v.score)
        if v.score < cfg.min_score:
            return reject("judge", "low_score", score_0_10=v.score)
        return {**ev, "outcome": "accepted", "stage": "accept", "reason": None, "score_0_10": v.score,
                "similar_ids": [s["id"] for s in similar]}

    def accept(self, ev: dict[str, Any]) -> dict[str, Any]:
        """Fold the score into the EMAs and build the item as stored (EMAs after this item)."""
        task = ev["task"]
        cat = task["category"]
        self.ema.update(ev["score_0_10"], cat)
        v = ev["judge"]
        item = {"id": f"item-{ev['attempt']:05d}", "attempt": ev["attempt"], **task, "answer": ev["answer"],
                "judge": v, "score_0_10": ev["score_0_10"], "judge_difficulty": v["difficulty"], "tags": v["tags"],
                "target_category": ev["target_category"], "target_difficulty": ev["target_difficulty"],
                "ema_global": round(self.ema.value, 6), "ema_category": round(self.ema.get(cat), 6),
                "heuristic_max_similarity": ev["heuristic_max_similarity"],
                "instruction_max_similarity": ev.get("instruction_max_similarity"),
                "heuristic_nearest_id": ev["heuristic_nearest_id"], "demo_ids": ev["demo_ids"],
                "models": {"generator": self.gen.model_id, "answerer": self.ans.model_id,
                           "judge": self.judge.model.model_id},
                "created_at": time.time()}
        return item

    # -- the loop ----------------------------------------------------------------------------
    def run(self) -> dict[str, Any]:
        cfg = self.cfg
        start = self.restore()
        n = len(self.events)
        accepted = sum(e["outcome"] == "accepted" for e in self.events)
        self.loop_started, self.loop_attempts = time.time(), 0
        bar = tqdm(total=cfg.accept_target, initial=min(len(self.items), cfg.accept_target), unit="item",
                   desc="accepted", dynamic_ncols=True)
        try:
            while len(self.items) < cfg.accept_target and n < cfg.max_attempts:
                with ledger_scope(iteration=n // cfg.round_size, task_id=f"attempt-{n}"):
                    try:
                        ev = self.attempt(n)
                    except FatalModelError as e:  # every later call would fail the same way
                        self.logs.append({"id": f"abort-{n:05d}", "event": "run_aborted", "at_attempt": n,
                                          "reason": "endpoint_failing", "detail": str(e)[:300],
                                          "created_at": time.time()})
                        raise
                if ev["outcome"] == "accepted":
                    item = self.accept(ev)
                    self.bench.append(item)  # item first: the event is what marks the attempt done
                    self.items.append(item)
                    self.pool.append(item)
                    self.pool_counts[item["category"]] += 1
                    self.novelty.add(item["id"], item_text(item))
                    if self.instr_novelty is not None:
                        self.instr_novelty.add(item["id"], item["instruction"])
                    ev = {**ev, "item_id": item["id"], "category": item["category"],
                          "ema_global": item["ema_global"], "ema_category": item["ema_category"]}
                    accepted += 1
                else:
                    self.reasons[ev["reason"]] += 1
                self.accept_ema.update(float(ev["outcome"] == "accepted"), ev["target_category"])
                self.logs.append(ev)
                self.events.append(ev)
                self.loop_attempts += 1
                self.ctx.tracker.log({"attempt": n, "accepted_total": accepted,
                                      "acceptance_rate": round(accepted / (n + 1), 4),
                                      "acceptance_ema": self.accept_ema.value, "ema_global": self.ema.value,
                                      "accepted": int(ev["outcome"] == "accepted")}, step=n)
                bar.update(int(ev["outcome"] == "accepted"))
                bar.set_postfix(attempts=n + 1, last=ev["reason"] or "accepted",
                                ema=None if self.ema.value is None else round(self.ema.value, 2))
                n += 1
        finally:
            bar.close()
        return self.report(start)

    # -- the report ----------------------------------------------------------------------------
    def report(self, start: dict[str, Any]) -> dict[str, Any]:
        items, events = self.items, self.events
        n = len(events)
        accepted = [e for e in events if e["outcome"] == "accepted"]
        by_cat = {}
        for c in sorted(set(self.categories) | {i["category"] for i in items}):
            att = [e for e in events if e["target_category"] == c]
            acc = [i for i in items if i["category"] == c]
            scores = [i["score_0_10"] for i in acc if i.get("score_0_10") is not None]
            by_cat[c] = {"seeds": sum(s["category"] == c for s in self.seeds), "items": len(acc),
                         "attempts_targeted": len(att),
                         "acceptance_rate": round(sum(e["outcome"] == "accepted" for e in att) / len(att), 4)
                         if att else None,
                         "mean_score": round(sum(scores) / len(scores), 3) if scores else None,
                         "ema": self.ema.get(c), "acceptance_ema": self.accept_ema.get(c)}
        texts = [item_text(i) for i in items]
        loop_s = time.time() - self.loop_started
        summary = {
            "attempts": n, "accepted": len(accepted), "benchmark_items": len(items),
            "acceptance_rate": round(len(accepted) / n, 4) if n else None,
            "stopped_because": "accept_target" if len(items) >= self.cfg.accept_target else "max_attempts",
            "ema_global": self.ema.value, "acceptance_ema": self.accept_ema.value,
            "warm_start": start["warm_start"], "resumed_from_attempt": start["restored_attempts"],
            "attempts_this_process": self.loop_attempts, "loop_s": round(loop_s, 1),
            "s_per_attempt": round(loop_s / self.loop_attempts, 2) if self.loop_attempts else None,
            "outcomes": dict(Counter(e["outcome"] for e in events)),
            "rejection_reasons": dict(Counter(e["reason"] for e in events if e["outcome"] != "accepted")),
            "rejections_by_stage": dict(Counter(e["stage"] for e in events if e["outcome"] != "accepted")),
            "by_category": by_cat, "judge": self.judge.stats(), "novelty": self.novelty.stats(),
            "instruction_novelty": self.instr_novelty.stats() if self.instr_novelty is not None else None,
            "validators_this_process": self.validators.counts(),
            "diversity": {"category_entropy": round(normalized_entropy([i["category"] for i in items],
                                                                       len(self.categories)), 4),
                          "distinct_2": round(distinct_n(texts, 2), 4) if texts else None,
                          "mean_pairwise_jaccard_distance": round(mean_pairwise_jaccard_distance(texts), 4)
                          if len(texts) > 1 else None},
            "benchmark_path": str(self.bench_path), "runlog_path": str(self.log_path),
        }
        self.plots()
        return summary

    def curves(self) -> dict[str, list[tuple[int, float]]]:
        """Per-attempt learning curves from the event log: (attempt, value) points."""
        by_id = {i["id"]: i for i in self.items}
        out: dict[str, list[tuple[int, float]]] = {"ema_global": [], "acceptance_ema": [], "cumulative": []}
        cats: dict[str, list[tuple[int, float]]] = {}
        acc_ema = EMATracker(self.cfg.ema_alpha)
        ema_g, acc = None, 0
        for e in self.events:
            a = e["attempt"]
            ok = e["outcome"] == "accepted"
            acc += ok
            acc_ema.update(float(ok))
            out["acceptance_ema"].append((a, acc_ema.value))
            out["cumulative"].append((a, acc / (a + 1)))
            item = by_id.get(e.get("item_id")) if ok else None
            if item is not None and isinstance(item.get("ema_global"), (int, float)):
                ema_g = float(item["ema_global"])
                cats.setdefault(item["category"], []).append((a, float(item["ema_category"])))
            if ema_g is not None:
                out["ema_global"].append((a, ema_g))
        out.update({f"ema[{c}]": pts for c, pts in sorted(cats.items())})
        return out

    def plots(self) -> None:
        d = self.ctx.run_dir
        cv = self.curves()
        xy = lambda pts: ([p[0] for p in pts], [p[1] for p in pts])  # noqa: E731
        if cv["ema_global"]:
            series = {"global (carried between acceptances)": xy(cv["ema_global"])}
            series.update({k[4:-1]: xy(v) for k, v in cv.items() if k.startswith("ema[")})
            plot_curves(d / "ema.png", "Judge-score EMA of accepted items, by attempt", series,
                        xlabel="attempt", ylabel="EMA of score_0_10")
        if cv["acceptance_ema"]:
            rs = self.cfg.round_size
            rounds: dict[int, list[int]] = {}
            for e in self.events:
                rounds.setdefault(e["attempt"] // rs, []).append(int(e["outcome"] == "accepted"))
            plot_curves(d / "acceptance.png", "Acceptance over attempts",
                        {f"acceptance EMA (alpha {self.cfg.ema_alpha})": xy(cv["acceptance_ema"]),
                         "cumulative acceptance rate": xy(cv["cumulative"]),
                         f"rate per round of {rs}": ([min(r * rs + rs - 1, len(self.events) - 1) for r in rounds],
                                                    [sum(v) / len(v) for v in rounds.values()])},
                        xlabel="attempt", ylabel="rate")


def print_report(s: dict[str, Any], run_id: str) -> None:
    fmt = lambda v, f="{:.2f}": "-" if v is None else f.format(v)  # noqa: E731
    rows = [[c, str(v["seeds"]), str(v["attempts_targeted"]), str(v["items"]), fmt(v["acceptance_rate"]),
             fmt(v["mean_score"]), fmt(v["ema"]), fmt(v["acceptance_ema"])] for c, v in s["by_category"].items()]
    print_table(f"Self-evolving benchmark ({run_id}): {s['accepted']} accepted of {s['attempts']} attempts",
                ["category", "seeds", "attempts targeted", "items", "accept rate", "mean score", "score EMA",
                 "accept EMA"], rows)
    reasons = sorted(s["rejection_reasons"].items(), key=lambda kv: (-kv[1], kv[0]))
    print_table("Attempt outcomes", ["outcome / rejection reason", "count", "share of attempts"],
                [["accepted", str(s["accepted"]), fmt(s["accepted"] / s["attempts"] if s["attempts"] else None)]]
                + [[f"rejected: {k}", str(v), fmt(v / s["attempts"])] for k, v in reasons])


def run(cfg: SelfEvolvingConfig, ctx: RunContext, **components: Any) -> dict[str, Any]:
    g = SelfEvolvingGenerator(cfg, ctx, **components)
    print(f"seed pool: {len(g.seeds)} tasks in {len(g.categories)} categories ({', '.join(g.categories)}); "
          f"target {cfg.accept_target} items in at most {cfg.max_attempts} attempts")
    if cfg.executor.kind != "local":  # not routed: see docs/executor.md, "The other generators"
        print(f"executor.kind {cfg.executor.kind!r}: self-evolving runs in this process, one attempt at a time "
              f"(each attempt's category, difficulty, demos and novelty pool depend on the attempts before it)")
    s = g.run()
    from ads.export.at_end import export_at_end

    export_at_end(ctx, s)  # RUN_DIR/export (HF dataset + card) and the W&B artifact, before finish closes W&B
    summary = ctx.finish(s)
    print_report(s, ctx.run_id)
    led = summary["ledger"]["run"]
    print(f"score EMA {fmt_num(s['ema_global'])}, acceptance EMA {fmt_num(s['acceptance_ema'])}; warm start: "
          f"{s['warm_start']}; {s['attempts_this_process']} attempts in {s['loop_s']} s "
          f"({s['s_per_attempt']} s each); diversity {json.dumps(s['diversity'])}")
    print(f"ledger: {led['model_calls']} model calls ({led['cached_calls']} cached), {led['total_tokens']} tokens; "
          f"benchmark: {s['benchmark_path']}; events: {s['runlog_path']}; plots: {ctx.run_dir}/ema.png, "
          f"acceptance.png")
    return summary


def fmt_num(v: float | None) -> str:
    return "-" if v is None else f"{v:.3f}"


# -- the flag-style command line ---------------------------------------------------------------
DEFAULT_CONFIG = Path(__file__).resolve().parents[2] / "configs" / "self_evolving.yaml"
# flag -> (config key, type, help); every flag is optional and overrides the config file
FLAGS: list[tuple[str, str, type, str]] = [
    ("--accept-target", "accept_target", int, "stop when the benchmark holds this many items"),
    ("--max-attempts", "max_attempts", int, "stop after this many attempts (rejections included)"),
    ("--min-score", "min_score", float, "reject items the judge scores below this (0-10)"),
    ("--ema-alpha", "ema_alpha", float, "EMA smoothing (higher = faster adaptation)"),
    ("--sim-threshold", "sim_threshold", float, "reject when shingle Jaccard to the pool reaches this"),
    ("--shingle-k", "shingle_k", int, "words per shingle"),
    ("--instruction-sim-threshold", "instruction_sim_threshold", float,
     "reject a reused instruction (3-word shingle Jaccard to a pooled instruction at/above this)"),
    ("--novelty-method", "novelty_method", str, "exact (inverted index) or minhash (LSH, large pools)"),
    ("--demo-k", "demo_k", int, "demonstration tasks shown to the generator"),
    ("--judge-novelty-veto", "judge_novelty_veto", lambda v: _bool(v), "true/false: reject when the judge says "
                                                                        "novel=false (default true)"),
    ("--gen-temperature", "gen_temp", float, "generator temperature"),
    ("--ans-temperature", "ans_temp", float, "answerer temperature"),
    ("--judge-temperature", "judge_temp", float, "judge temperature (retries use at least 0.7)"),
    ("--seed", "seed", int, "random seed (sampling, seeds, model seeds)"),
    ("--benchmark-path", "benchmark_path", str, "benchmark JSONL (default <run dir>/benchmark.jsonl; "
                                                "give --runlog-path with it)"),
    ("--runlog-path", "runlog_path", str, "event log JSONL (default <run dir>/run_logs.jsonl)"),
    ("--results-dir", "results_dir", str, "parent of run folders when --output-dir is not given"),
    ("--name", "name", str, "run name (the run folder is NAME-<config hash>)"),
]
ALIASES = {"--gen-temperature": ["--gen-temp"], "--ans-temperature": ["--ans-temp"],
           "--judge-temperature": ["--judge-temp"]}


def spellings(*flags: str) -> list[str]:
    """Each flag plus its underscore spelling: the seed's command line writes `--accept_target`,
    `--sim_threshold`, ...; both are accepted so the seed's commands run as written."""
    out = list(flags)
    for f in flags:
        alt = "--" + f[2:].replace("-", "_")
        if alt not in out:
            out.append(alt)
    return out


def _bool(v: str) -> bool:
    if v.lower() in ("true", "yes", "1", "on"):
        return True
    if v.lower() in ("false", "no", "0", "off"):
        return False
    raise ValueError(f"expected true/false, got {v!r}")


def build_parser() -> "argparse.ArgumentParser":
    import argparse

    p = argparse.ArgumentParser(
        prog="python -m ads.generators.self_evolving",
        description="Self-evolving benchmark generator: Self-Instruct tasks from a seed pool, shingle novelty "
                    "filter, answerer, LLM judge, EMA-driven category/difficulty. Flags override the config file.")
    p.add_argument("--config", default=str(DEFAULT_CONFIG), help="YAML config (default: %(default)s)")
    for flag, key, typ, help_ in FLAGS:
        kw: dict[str, Any] = {"dest": key, "type": typ, "default": None, "help": help_}
        if key == "novelty_method":
            kw["choices"] = ["exact", "minhash"]
        p.add_argument(*spellings(flag, *ALIASES.get(flag, [])), **kw)
    p.add_argument(*spellings("--output-dir"), dest="output_dir", default=None,
                   help="run folder (default: RESULTS_DIR/NAME-<config hash>)")
    p.add_argument("--model", default=None, help="generator model: registry name, .gguf path, or served model id "
                                                 "(default: MODEL from the environment or .env, else the config's)")
    p.add_argument(*spellings("--base-url"), dest="base_url", default=None,
                   help="OpenAI-compatible endpoint for the generator (and for the answerer/judge named with "
                        "--answerer-model/--judge-model); default: BASE_URL from the environment or .env")
    p.add_argument(*spellings("--env-file"), dest="env_file", default=".env",
                   help="dotenv file with BASE_URL, API_KEY, MODEL, TIMEOUT (the seed's settings; variables "
                        "already in the environment win; default: %(default)s in the working directory, "
                        "skipped when absent; '' to ignore)")
    p.add_argument(*spellings("--answerer-model"), dest="answerer_model", default=None,
                   help="answerer model (default: the generator's)")
    p.add_argument(*spellings("--judge-model"), dest="judge_model", default=None,
                   help="judge model (default: the generator's)")
    p.add_argument(*spellings("--n-threads"), dest="n_threads", type=int, default=None,
                   help="llama.cpp threads for every local model")
    p.add_argument(*spellings("--cache-path"), dest="cache_path", default=None, help="request cache (sqlite)")
    p.add_argument(*spellings("--no-cache"), dest="no_cache", action="store_true",
                   help="do not cache model requests")
    p.add_argument(*spellings("--no-wandb"), dest="no_wandb", action="store_true",
                   help="metrics.jsonl only, no offline W&B run")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="any other config key, e.g. --set seeds.per_category=2 (repeatable)")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--resume", action="store_true", help="continue the run (or benchmark files) it finds")
    g.add_argument("--overwrite", action="store_true", help="delete the run folder and start again")
    return p


def config_from_args(args: Any, env: Any = None) -> SelfEvolvingConfig:
    """Config file < BASE_URL/API_KEY/MODEL/TIMEOUT (environment, then .env) < --set < flags.

    `env`: the EndpointSettings to apply; None reads them from `args.env_file` and os.environ.
    """
    from ads.config import apply_overrides, read_yaml, validate
    from ads.generators.evolve.env import apply_to_generator, endpoint_settings

    if env is None:
        env, _ = endpoint_settings(getattr(args, "env_file", ".env"))
    data = read_yaml(args.config)
    if env.any:
        data["generator"] = apply_to_generator(dict(data.get("generator") or {}), env)
    data = apply_overrides(data, args.set)
    if data.setdefault("kind", "self_evolving") != "self_evolving":
        raise ConfigError(f"{args.config}: kind is {data['kind']!r}, this command runs 'self_evolving'")
    for _, key, _, _ in FLAGS:
        if getattr(args, key) is not None:
            data[key] = getattr(args, key)
    gen = dict(data.get("generator") or {})
    if args.model is not None:
        gen["name"] = args.model
    if args.base_url is not None:
        gen["base_url"] = args.base_url
    if args.n_threads is not None:
        gen["n_threads"] = args.n_threads
    data["generator"] = gen
    for role, name in (("answerer", args.answerer_model), ("judge", args.judge_model)):
        if name is not None:  # same endpoint/settings as the generator, another model
            data[role] = {**gen, "name": name}
        elif args.n_threads is not None and isinstance(data.get(role), dict):
            data[role] = {**data[role], "n_threads": args.n_threads}
    if args.cache_path is not None or args.no_cache:
        cache = dict(data.get("cache") or {})
        if args.cache_path is not None:
            cache["path"] = args.cache_path
        if args.no_cache:
            cache["enabled"] = False
        data["cache"] = cache
    if args.no_wandb:
        data["tracking"] = {**(data.get("tracking") or {}), "wandb": False}
    return validate(SelfEvolvingConfig, data, f"{args.config} (with command-line flags)")


def main(argv: list[str] | None = None) -> int:
    import logging
    import os

    from ads.guard import run_guarded
    from ads.run import RunContext

    logging.basicConfig(level=os.environ.get("ADS_LOG_LEVEL", "WARNING"), format="%(levelname)s %(name)s: %(message)s")
    args = build_parser().parse_args(argv)

    def body() -> int:
        from ads.generators.evolve.env import endpoint_settings, export_api_key

        env, _ = endpoint_settings(args.env_file)
        cfg = config_from_args(args, env)
        export_api_key(env)  # a key from .env reaches the HTTP client through the environment, never the config
        ctx = RunContext.create(cfg, resume=args.resume, overwrite=args.overwrite, run_dir=args.output_dir)
        print(f"run {ctx.run_id}: writing to {ctx.run_dir}" + (" (resuming)" if args.resume else ""))
        if env.sources:  # names and origins only: the key's value is never printed
            print("endpoint settings: " + ", ".join(env.sources))
        run(cfg, ctx)
        return 0

    return run_guarded(body)


if __name__ == "__main__":
    raise SystemExit(main())
