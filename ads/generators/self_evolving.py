"""Self-evolving benchmark generator: Self-Instruct tasks, novelty filter, LLM judge, EMA.

One attempt (evolve/attempt.py):
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

On the contract (ads/harness/contract.py) a round is one attempt: attempt n's category,
difficulty, demos and novelty pool depend on whether every attempt before it was accepted,
so there is nothing to hand to workers and the work runs in this process whatever
`executor.kind` says. The runner appends, logs, moves the bar and finishes the run; this
class keeps the state the next attempt reads. Config: evolve/evolve_config.py; the seed's
flag command line: evolve/command_line.py; the report and plots: evolve/benchmark_report.py.

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

import time
from collections import Counter
from pathlib import Path
from typing import Any, Iterator

from ads.config import ConfigError
from ads.generators.evolve.attempt import attempt as one_attempt
from ads.generators.evolve.attempt import attempt_work, item_text
from ads.generators.evolve.benchmark_report import by_category, diversity, print_report, write_plots
from ads.generators.evolve.command_line import build_parser, config_from_args, main
from ads.generators.evolve.curriculum import warm_start_ema
from ads.generators.evolve.evolve_config import SeedsConfig, SelfEvolvingConfig
from ads.generators.evolve.prompts import task_schema
from ads.generators.evolve.seeds import load_seed_file, real_seed_tasks
from ads.generators.evolve.task_judge import TaskJudge
from ads.harness.contract import Commit, Generator, Item, Store
from ads.harness.runner import run_generator
from ads.quality import EMATracker, NoveltyFilter, ValidatorSuite
from ads.quality.text import jaccard, words
from ads.run import RunContext
from ads.store import JsonlStore, atomic_write_json
from models.base import Model

__all__ = ["SeedsConfig", "SelfEvolvingConfig", "SelfEvolvingGenerator", "build_parser", "config_from_args", "main",
           "run"]


class SelfEvolvingGenerator(Generator):
    """Rounds of one attempt each, resumed from the two files (see the module docstring)."""

    kind = "self_evolving"
    config_class = SelfEvolvingConfig
    stores = (Store("benchmark.jsonl"), Store("run_logs.jsonl"))
    progress_unit, progress_desc = "item", "accepted"

    @classmethod
    def store_paths(cls, cfg: SelfEvolvingConfig, run_dir: Path) -> dict[str, Path]:
        """A benchmark may outlive its run folders: `benchmark_path` / `runlog_path` put its two files elsewhere."""
        paths = super().store_paths(cfg, run_dir)
        if cfg.benchmark_path:
            paths["benchmark.jsonl"] = Path(cfg.benchmark_path)
        if cfg.runlog_path:
            paths["run_logs.jsonl"] = Path(cfg.runlog_path)
        return paths

    def __init__(self, cfg: SelfEvolvingConfig, ctx: RunContext, stores: dict[str, JsonlStore], *,
                 generator_model: Model | None = None, answer_model: Model | None = None,
                 judge_model: Model | None = None, seeds: list[dict[str, Any]] | None = None):
        super().__init__(cfg, ctx, stores)
        self.gen = ctx.wrap(generator_model, "generator") if generator_model else ctx.model("generator", cfg.models.generator)
        self.ans = (ctx.wrap(answer_model, "answerer") if answer_model
                    else ctx.model("answerer", cfg.models.answerer or cfg.models.generator))
        jm = ctx.wrap(judge_model, "judge") if judge_model else ctx.model("judge", cfg.models.judge or cfg.models.generator)
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
        self.bench, self.logs = self.out["benchmark.jsonl"], self.out["run_logs.jsonl"]
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
    def restore(self) -> None:
        """Items, events, pool, novelty memories and EMAs from the files; a `run_start` event says so."""
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
            self._index(t)
        self.ema, how = warm_start_ema(items, self.cfg.ema_alpha)
        self.accept_ema = EMATracker(self.cfg.ema_alpha).warm_start(
            [{"x": float(e["outcome"] == "accepted"), "c": e["target_category"]} for e in events],
            score_key="x", category_key="c")
        self.start = {"id": f"start-{sum(1 for e in self.logs if e.get('event') == 'run_start')}",
                      "event": "run_start", "resumed": self.ctx.resume, "restored_items": len(items),
                      "restored_attempts": n, "warm_start": how, "ema_global": self.ema.value,
                      "ema_category": self.ema.categories, "created_at": time.time()}
        self.logs.append(self.start)
        self.loop_started, self.loop_attempts = time.time(), 0

    def _index(self, task: dict[str, Any]) -> None:
        """Both novelty memories learn a pooled task (once: an imported file may repeat a seed's id)."""
        if task["id"] not in self.novelty:
            self.novelty.add(task["id"], item_text(task))
            if self.instr_novelty is not None:
                self.instr_novelty.add(task["id"], task["instruction"])

    # -- one attempt a round ------------------------------------------------------------------
    def similar(self, text: str, k: int) -> list[dict[str, Any]]:
        """The k pool tasks nearest to `text` (word Jaccard), shown to the judge."""
        q = set(words(text))
        scored = sorted(((jaccard(q, set(words(item_text(t)))), i) for i, t in enumerate(self.pool)),
                        key=lambda x: (-x[0], x[1]))
        return [self.pool[i] for _, i in scored[:k]]

    def attempt(self, n: int) -> dict[str, Any]:
        """Attempt n's event, against the state as it is now (nothing is written or remembered)."""
        return one_attempt(self, n)

    work = staticmethod(attempt_work)

    def rounds(self) -> Iterator[list[Item]]:
        """Attempt n, once everything before it is committed, until accept_target or max_attempts."""
        n = len(self.events)
        while len(self.items) < self.cfg.accept_target and n < self.cfg.max_attempts:
            yield [Item(f"attempt-{n:05d}", n)]
            n += 1

    def is_done(self, item: Item) -> bool:
        """An attempt is done once its event is logged (an accepted item alone is repaired by restore())."""
        return item.id in self.logs.ids()

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

    def commit(self, item: Item, ev: dict[str, Any]) -> Commit:
        """The attempt's event (and its item, written first: the event is what marks the attempt
        done), and the state the next attempt reads: pool, novelty memories, EMAs."""
        n = item.payload
        records: dict[str, list[dict[str, Any]]] = {}
        ok = ev["outcome"] == "accepted"
        if ok:
            task = self.accept(ev)
            records["benchmark.jsonl"] = [task]
            self.items.append(task)
            self.pool.append(task)
            self.pool_counts[task["category"]] += 1
            self._index(task)
            ev = {**ev, "item_id": task["id"], "category": task["category"], "ema_global": task["ema_global"],
                  "ema_category": task["ema_category"]}
        self.accept_ema.update(float(ok), ev["target_category"])
        records["run_logs.jsonl"] = [ev]
        self.events.append(ev)
        self.loop_attempts += 1
        accepted = sum(e["outcome"] == "accepted" for e in self.events)
        metrics = {"attempt": n, "accepted_total": accepted, "acceptance_rate": round(accepted / (n + 1), 4),
                   "acceptance_ema": self.accept_ema.value, "ema_global": self.ema.value, "accepted": int(ok)}
        return Commit(records=records, metrics=metrics, step=n, progress=int(ok),
                      postfix={"attempts": n + 1, "last": ev["reason"] or "accepted",
                               "ema": None if self.ema.value is None else round(self.ema.value, 2)})

    # -- progress and results -----------------------------------------------------------------
    def announce(self) -> str:
        line = (f"seed pool: {len(self.seeds)} tasks in {len(self.categories)} categories "
                f"({', '.join(self.categories)}); target {self.cfg.accept_target} items in at most "
                f"{self.cfg.max_attempts} attempts")
        if self.cfg.executor.kind != "local":  # not routed: see docs/executor.md, "The other generators"
            line += (f"\nexecutor.kind {self.cfg.executor.kind!r}: self-evolving runs in this process, one attempt "
                     f"at a time (each attempt's category, difficulty, demos and novelty pool depend on the "
                     f"attempts before it)")
        return line

    def progress_total(self) -> int:
        return self.cfg.accept_target

    def progress_done(self) -> int:
        return len(self.items)

    def summary(self) -> dict[str, Any]:
        items, events = self.items, self.events
        n = len(events)
        accepted = [e for e in events if e["outcome"] == "accepted"]
        rejected = [e for e in events if e["outcome"] != "accepted"]
        loop_s = time.time() - self.loop_started
        summary = {
            "attempts": n, "accepted": len(accepted), "benchmark_items": len(items),
            "acceptance_rate": round(len(accepted) / n, 4) if n else None,
            "stopped_because": "accept_target" if len(items) >= self.cfg.accept_target else "max_attempts",
            "ema_global": self.ema.value, "acceptance_ema": self.accept_ema.value,
            "warm_start": self.start["warm_start"], "resumed_from_attempt": self.start["restored_attempts"],
            "attempts_this_process": self.loop_attempts, "loop_s": round(loop_s, 1),
            "s_per_attempt": round(loop_s / self.loop_attempts, 2) if self.loop_attempts else None,
            "outcomes": dict(Counter(e["outcome"] for e in events)),
            "rejection_reasons": dict(Counter(e["reason"] for e in rejected)),
            "rejections_by_stage": dict(Counter(e["stage"] for e in rejected)),
            "by_category": by_category(self.categories, self.seeds, items, events, self.ema, self.accept_ema),
            "judge": self.judge.stats(), "novelty": self.novelty.stats(),
            "instruction_novelty": self.instr_novelty.stats() if self.instr_novelty is not None else None,
            "validators_this_process": self.validators.counts(),
            "diversity": diversity(items, len(self.categories)),
            "benchmark_path": str(self.bench_path), "runlog_path": str(self.log_path),
        }
        write_plots(self.ctx.run_dir, events, items, self.cfg.ema_alpha, self.cfg.round_size)
        return summary

    def report(self, summary: dict[str, Any]) -> None:
        print_report(summary)


def run(cfg: SelfEvolvingConfig, ctx: RunContext, **components: Any) -> dict[str, Any]:
    return run_generator(SelfEvolvingGenerator, cfg, ctx, **components)


if __name__ == "__main__":
    raise SystemExit(main())
