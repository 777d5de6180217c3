"""Tool-use conversation generator: ToolBench-format schemas in, multi-turn multi-step tool-use
conversations out (issue 10).

`main.py generate configs/tool_use.yaml` runs `ToolUseGenerator` on the harness runner: build the
registry and graphs, then for each conversation index plan a chain (steered away from what the
corpus already holds), let the user proxy and assistant talk through the offline executor,
validate, judge and repair, and append the record to `conversations.jsonl`. Every index gets
exactly one record (passed or not), so `--resume` after a kill skips the ids on disk and the
embedding memory and novelty pool are rebuilt from them: nothing is lost or written twice.

The parts: the config and what it builds (tools/tool_use_config.py), one conversation's
plan -> converse -> check -> repair (tools/pipeline.py), the end-of-run files and report
(tools/run_summary.py), and `main.py tools {build,generate,evaluate,validate,metrics,inspect}`,
the design document's command line (tools/tool_use_commands.py; `main` here forwards to it).
"""
from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any, Iterator, TextIO

from ads.config import ConfigError
from ads.generators.tools.metrics import decision_line
from ads.generators.tools.pipeline import ToolUsePipeline
from ads.generators.tools.run_summary import print_report, run_figures, write_plots
from ads.generators.tools.sampler import ChainPlan
from ads.generators.tools.tool_use_config import (DEFAULT_CONFIG, REPO_ROOT, ToolSources, ToolUseConfig,
                                                  build_pipeline, load_built, resolve_paths, write_artifacts)
from ads.harness.contract import Commit, Generator, Item, Store
from ads.harness.runner import run_generator
from ads.store import JsonlStore

__all__ = ["DEFAULT_CONFIG", "REPO_ROOT", "ToolSources", "ToolUseConfig", "ToolUseGenerator", "build_pipeline",
           "decision_line", "load_built", "main", "resolve_paths", "run", "write_artifacts", "write_plots"]

STORE = "conversations.jsonl"


# --- conversations on the executor (ads/executor.py) ----------------------------------------------
def converse_work(env: Any, item: tuple[str, ChainPlan, bool]) -> list[dict[str, Any]] | None:
    """A worker builds and checks one conversation's attempts (ToolUsePipeline.speculate); the driver
    then concludes them in order. Without `speculate` the whole conversation is made in the driver
    (`commit`), so there is nothing to do here."""
    cid, plan, speculate = item
    return env.pipe.speculate(cid, plan) if speculate else None


class ToolUseGenerator(Generator):
    """Items are conversation ids; a round is the conversations whose plans were chosen together.

    Steering depends only on the plans remembered so far, never on conversation outputs: plans
    are chosen in the driver in order, a round at a time, and on a Ray/threads executor the
    round's conversations are built and checked (validators, judge) on the workers. The repair
    loop's novelty check against earlier passed conversations, the novelty pool and the appends
    stay in the driver, in order (`pipe.produce` with the workers' attempts), so records equal
    the local run's. A validator that remembers what passed (novelty of a field) would see a
    different past on a worker, so with one configured every conversation is made in the driver.
    """

    kind = "tool_use"
    config_class = ToolUseConfig
    stores = (Store(STORE, id_field="conversation_id"),)
    progress_unit, progress_desc = "conv", "conversations"

    @classmethod
    def store_paths(cls, cfg: ToolUseConfig, run_dir: Path) -> dict[str, Path]:
        """`output:` puts the conversations outside the run folder (tools generate --output)."""
        return {STORE: Path(cfg.output) if cfg.output else run_dir / STORE}

    def __init__(self, cfg: ToolUseConfig, ctx: Any, stores: dict[str, JsonlStore], *, model: Any = None,
                 judge_model: Any = None, embedder: Any = None, decisions: TextIO | None = None):
        """`model`, `judge_model`, `embedder`: built in code (tests), used as given (not cached, not
        ledgered). `decisions` (tools generate --verbose): where to print one line per conversation
        with its gates; None: nowhere."""
        if cfg.min_steps > cfg.max_steps:
            raise ConfigError(f"min_steps ({cfg.min_steps}) is above max_steps ({cfg.max_steps})")
        self.t0 = time.time()
        super().__init__(cfg, ctx, stores)
        self.out_path = stores[STORE].path
        self.built = load_built(cfg)
        manifest = write_artifacts(self.built, ctx.run_dir / "artifacts")
        reg = self.built.reg
        print(f"tools: {reg.stats['endpoints']} endpoints in {reg.stats['tools']} tools, {reg.stats['categories']} "
              f"categories ({reg.stats['duplicates_merged']} duplicates merged); projected graph "
              f"{manifest['projected_graph']['edges']}")
        injected_model, injected_judge = model is not None, judge_model is not None  # workers get copies
        model = model or ctx.model("assistant", cfg.models.assistant)
        user_model = ctx.model("user", cfg.models.user) if cfg.models.user else None
        judge_model = judge_model or ctx.model("judge", cfg.models.judge or cfg.models.assistant)
        self.pipe: ToolUsePipeline = build_pipeline(cfg, self.built, model, judge_model, user_model, embedder)
        self.ids = [f"conv_{cfg.seed}_{i:04d}" for i in range(cfg.n)]
        self.done: dict[str, dict[str, Any]] = {}
        self.decisions = decisions
        self._planned: dict[str, tuple[int, ChainPlan, dict[str, Any]]] = {}
        ex = self.executor()
        self.local = ex.kind == "local"
        self.stateful = [v.name for v in self.pipe.suite.validators if hasattr(v, "commit")]
        self.routed = not self.local and not self.stateful
        self.chunk = 2 * ex.workers if self.routed else 1
        if self.routed:
            self._factory: Any = ToolUseWorkerFactory(cfg, model if injected_model else None,
                                                      judge_model if injected_judge else None,
                                                      embedder if cfg.validators else None)
        else:  # no factory: the runner makes every conversation in the driver
            self._factory = None

    def worker_factory(self) -> Any:
        return self._factory

    work = staticmethod(converse_work)

    # -- resume ---------------------------------------------------------------------------
    def restore(self) -> None:
        """Steering memory and novelty pool rebuilt from the stored conversations, exactly as they were."""
        self.done = {r["conversation_id"]: r for r in self.out[STORE]}
        for r in self.done.values():
            self.pipe.remember(ChainPlan.from_dict(r["metadata"]["plan"]))
            if r.get("passed") and self.pipe.novelty is not None:
                self.pipe.novelty.add(r["conversation_id"],
                                      next(m["content"] for m in r["messages"] if m["role"] == "user"))

    def announce(self) -> str | None:
        lines = []
        if self.done:
            lines.append(f"resuming: {len(self.done)} of {self.cfg.n} conversations already in {self.out_path}")
        if not self.local and self.stateful:
            lines.append(f"validators {self.stateful} remember what passed: conversations are built in the driver, "
                         "one at a time")
        return "\n".join(lines) or None

    # -- the work ---------------------------------------------------------------------------
    def rounds(self) -> Iterator[list[Item]]:
        todo = [(i, cid) for i, cid in enumerate(self.ids) if cid not in self.done]
        for start in range(0, len(todo), self.chunk):
            items = []
            for i, cid in todo[start:start + self.chunk]:
                plan, steer = self.pipe.plan(i)
                self.pipe.remember(plan)
                self._planned[cid] = (i, plan, steer)
                items.append(Item(cid, (cid, plan, self.routed)))
            yield items

    def commit(self, item: Item, result: list[dict[str, Any]] | None) -> Commit:
        """Conclude the conversation in order (novelty, then any repair the workers did not make)."""
        cid = item.id
        i, plan, steer = self._planned.pop(cid)
        rec = self.pipe.produce(cid, plan, precomputed=result)
        rec["metadata"]["corpus_memory_enabled"] = self.cfg.corpus_memory
        rec["metadata"]["steering"] = steer
        self.done[cid] = rec
        if self.decisions is not None:
            print(decision_line(rec), file=self.decisions)
        js = rec.get("judge_scores") or {}
        metrics = {"conversation": i, "passed": int(rec["passed"]), "mean_score": js.get("mean_score"),
                   "num_tool_calls": rec["metadata"]["num_tool_calls"], "repairs": rec["metadata"]["repairs"],
                   "grounding_rate": rec["metadata"]["memory_grounding_rate"],
                   "distinct_endpoints_so_far": len({e for r in self.done.values()
                                                     for e in r["metadata"]["endpoint_ids"]})}
        return Commit(records={STORE: [rec]}, metrics=metrics, step=i, state={"done": len(self.done), "last": cid},
                      progress=1, postfix={"passed": sum(1 for r in self.done.values() if r.get("passed"))})

    def progress_total(self) -> int:
        return self.cfg.n

    def progress_done(self) -> int:
        return sum(1 for i in self.ids if i in self.done)

    # -- results ----------------------------------------------------------------------------
    def summary(self) -> dict[str, Any]:
        records = [self.done[c] for c in self.ids if c in self.done]
        self.elapsed = time.time() - self.t0
        return run_figures(self.cfg, self.ctx.run_dir, self.built, records, self.out_path, self.elapsed)

    def report(self, summary: dict[str, Any]) -> None:
        print_report(self.cfg, summary, self.elapsed)


class _ToolUseEnv:
    def __init__(self, pipe: ToolUsePipeline, ctx: Any):
        self.pipe, self.ctx = pipe, ctx  # ctx.ledger: the worker's in-memory ledger


class ToolUseWorkerFactory:
    """A Ray actor's / thread's own pipeline: the tool registry and graphs loaded from cfg.tools, its own
    models from the config (or the injected test models), an in-memory ledger."""

    def __init__(self, cfg: ToolUseConfig, model: Any = None, judge_model: Any = None, embedder: Any = None):
        self.cfg, self.model, self.judge_model, self.embedder = cfg, model, judge_model, embedder

    def __call__(self) -> _ToolUseEnv:
        from ads.run import RunContext

        cfg = self.cfg
        ctx = RunContext.for_worker(cfg)
        # injected (test) models are used as given, as the driver does: not cached, not ledgered
        model = self.model if self.model is not None else ctx.model("assistant", cfg.models.assistant)
        user_model = ctx.model("user", cfg.models.user) if cfg.models.user else None
        judge = self.judge_model or ctx.model("judge", cfg.models.judge or cfg.models.assistant)
        return _ToolUseEnv(build_pipeline(cfg, load_built(cfg), model, judge, user_model, self.embedder), ctx)


def run(cfg: ToolUseConfig, ctx: Any, *, model: Any = None, judge_model: Any = None, embedder: Any = None,
        progress: bool = True, verbose: bool = False) -> dict[str, Any]:
    """`progress`: show the bar (the runner's switch); `verbose`: a decision line per conversation,
    on stderr beside the bar, else on stdout."""
    decisions = (sys.stderr if progress else sys.stdout) if verbose else None
    return run_generator(ToolUseGenerator, cfg, ctx, progress=progress, model=model, judge_model=judge_model,
                         embedder=embedder, decisions=decisions)


def main(argv: list[str] | None = None) -> int:
    """`main.py tools ...` (tools/tool_use_commands.py, imported here on use: it imports this module)."""
    from ads.generators.tools.tool_use_commands import main as tools_main

    return tools_main(argv)


if __name__ == "__main__":
    sys.exit(main())
