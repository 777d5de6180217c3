"""The ADS experiment on the Generator contract: training iterations, then held-out evaluations.

Rounds, in order (ads/harness/contract.py says what a round is):
- the evaluation before training (iteration 0), when `loop.evaluate_before_training`;
- per training iteration, the trained tasks in batches of `loop.task_batch`: one item per task,
  its k trajectories sampled and scored on the executor (loop.py). The tasks of a batch see the
  exemplar memory as it stood at the batch's start; the next batch sees what this one accepted,
  which is why a batch is a round. Its last batch's end closes the iteration: training metrics,
  the LoRA updates (lora.py, in the driver), the saved state;
- after the last iteration (or every one, `loop.evaluate: every_iteration`), the evaluation:
  one item per task, trained then new (evaluation.py).

The records are the state. trajectories.jsonl, training_data.jsonl and eval.jsonl are
append-only and keyed by id; a task's dataset rows are written before its trajectory records,
and a task is finished in an iteration once the last record it writes is on disk, so a resumed
run rebuilds the memory and datasets from them (restore), the runner skips finished items, and
the model calls made before a kill replay from the request cache.
"""
from __future__ import annotations

from typing import Any, Iterator

from ads.active_search.acceptance import NULL_PLAN, choose, null_plan_id, task_records, train_metrics
from ads.active_search.evaluation import eval_id, eval_payloads, eval_task_work, flatten, summarize, verdict
from ads.active_search.instruction_sets import Task, build_task_sets
from ads.active_search.lora import LoraUpdates
from ads.active_search.lora import metrics as lora_metrics
from ads.active_search.loop import ADSConfig, ActiveDataSearch, ADSWorkerFactory, train_task_work
from ads.active_search.outputs import evaluation_results, export_datasets, print_report, write_plots
from ads.active_search.planning import ExemplarMemory, plan_json, task_key, task_relative
from ads.active_search.training_data import new_rows
from ads.config import ConfigError
from ads.harness.contract import Commit, Generator, Item, Store
from ads.run import RunContext
from ads.store import JsonlStore, atomic_write_json
from apis.api_registry import ApiRegistry
from models.base import Model

__all__ = ["ADSGenerator", "ads_work"]  # run(): outputs.run, the registry's entry


def ads_work(env: ActiveDataSearch, payload: dict[str, Any]) -> Any:
    """One item of either phase: a trained task's sampled trajectories, or one task's evaluation."""
    return (train_task_work if payload["phase"] == "train" else eval_task_work)(env, payload)


class ADSGenerator(Generator):
    kind = "ads"
    config_class = ADSConfig
    stores = (Store("trajectories.jsonl"), Store("training_data.jsonl"), Store("eval.jsonl"))
    progress_unit, progress_desc = "task", "tasks (training, evaluation)"
    work = staticmethod(ads_work)

    def __init__(self, cfg: ADSConfig, ctx: RunContext, stores: dict[str, JsonlStore],
                 policy_model: Model | None = None, optimizer_model: Model | None = None,
                 api_model: Model | None = None, judge: Any | None = None,
                 tasks: tuple[list[Task], list[Task]] | None = None, registry: ApiRegistry | None = None):
        super().__init__(cfg, ctx, stores)
        components = dict(policy_model=policy_model, optimizer_model=optimizer_model, api_model=api_model,
                          judge=judge, registry=registry)
        self.ads = ActiveDataSearch(cfg, ctx, **components)
        self.trained, self.held = tasks if tasks is not None else build_task_sets(cfg.tasks)
        if self.ads.judge is None and any(i.scorer == "judge" for t in self.trained + self.held
                                          for i in t.instructions):
            raise ConfigError("tasks: some instructions have no reference (or scoring: judge) and no judge is "
                              "configured; add a `judge:` model section or references")
        self.trajectories = stores["trajectories.jsonl"]
        self.training_data = stores["training_data.jsonl"]
        self.training_data.path.touch()  # present even when every accepted plan was "fetch nothing"
        self.evals = stores["eval.jsonl"]
        self.memory = ExemplarMemory()
        self.datasets: dict[str, list[dict[str, Any]]] = {}
        self._factory = ADSWorkerFactory(cfg, components)
        self.lora = LoraUpdates(self)
        self.pos = {t.id: i for i, t in enumerate(self.trained)}
        self.training: list[dict[str, Any]] = []  # training_metrics.json, one line per iteration
        self.evaluation: list[dict[str, Any]] = []  # one summary per evaluation, the last is the result
        self._stored: dict[tuple[Any, str], list[dict[str, Any]]] = {}  # (iteration, task) -> records on disk
        self._results: dict[str, Any] = {}  # item id -> records committed by this process
        self._round: tuple[str, int, bool] = ("train", 0, False)  # see rounds()
        self.export: dict[str, Any] = {}  # the training_dataset/ export, for the report
        atomic_write_json(ctx.run_dir / "tasks.json", {"trained": [t.to_dict() for t in self.trained],
                                                       "held_out": [t.to_dict() for t in self.held]})

    def env(self) -> ActiveDataSearch:
        return self.ads

    def worker_factory(self) -> ADSWorkerFactory:
        return self._factory

    # -- resume -----------------------------------------------------------------------------
    def restore(self) -> None:
        """Rebuild the exemplar memory and every task's dataset from the records on disk."""
        keys = {t.id: task_key(t) for t in self.trained}
        for r in self.trajectories:
            self._stored.setdefault((r["iteration"], r["task_id"]), []).append(r)
            if r.get("to_memory") and r["task_id"] in keys:
                task = self.trained[self.pos[r["task_id"]]]
                self.memory.add(r["task_id"], keys[r["task_id"]], plan_json(task_relative(r["calls"], task)),
                                version=(r["iteration"], self.pos[r["task_id"]]))
        for r in self.training_data:
            self.datasets.setdefault(r["task_id"], []).append(r)

    def dataset(self, task_id: str, before_iteration: int) -> list[dict[str, Any]]:
        return [r for r in self.datasets.get(task_id, []) if isinstance(r["iteration"], int)
                and r["iteration"] < before_iteration]

    def sample_ids(self, it: int, task: Task) -> list[str]:
        return [f"it{it}-{task.id}-s{s}" for s in range(self.cfg.loop.trajectories_per_task)]

    def _trained_done(self, it: int, task: Task) -> bool:
        """Every sample's record is on disk, and the null plan's when the samples say it won."""
        done = self.trajectories.ids()
        ids = self.sample_ids(it, task)
        if not all(i in done for i in ids):
            return False
        samples = [r for r in self._stored.get((it, task.id), []) if r["id"] in ids]
        return choose(samples, self.cfg.loop) is not NULL_PLAN or null_plan_id(it, task.id) in done

    def _evaluated(self, it: int, task: Task) -> bool:
        done = self.evals.ids()
        return all(eval_id(it, m, task.id) in done for m in self.cfg.loop.methods)

    def is_done(self, item: Item) -> bool:
        p = item.payload
        return (self._trained_done if p["phase"] == "train" else self._evaluated)(p["it"], p["task"])

    # -- rounds -----------------------------------------------------------------------------
    def eval_iterations(self) -> list[int]:
        lp = self.cfg.loop
        its = [0] if lp.evaluate_before_training else []
        return its + [it for it in range(1, lp.iterations + 1) if lp.evaluate == "every_iteration"
                      or it == lp.iterations]

    def rounds(self) -> Iterator[list[Item]]:
        """`self._round` says which round is open while the runner commits it and ends it:
        (phase, iteration, whether it closes the iteration)."""
        lp = self.cfg.loop
        evals = self.eval_iterations()
        if 0 in evals:
            yield from self._eval_round(0)
        for it in range(1, lp.iterations + 1):
            starts = list(range(0, len(self.trained), lp.task_batch)) or [0]  # no trained task: one empty round
            for start in starts:
                self._round = ("train", it, start == starts[-1])
                yield [Item(f"it{it}-{t.id}", {
                    "phase": "train", "it": it, "task": t, "ids": self.sample_ids(it, t),
                    "exemplars": self.memory.nearest(task_key(t), lp.exemplars, exclude=t.id, before=(it, start)),
                    "dataset": self.dataset(t.id, it)}) for t in self.trained[start:start + lp.task_batch]]
            if it in evals:
                yield from self._eval_round(it)

    def _eval_round(self, it: int) -> Iterator[list[Item]]:
        self._round = ("eval", it, True)
        yield [Item(f"eval-it{it}-{p['task'].id}", p) for p in eval_payloads(self, it)]

    # -- commits ----------------------------------------------------------------------------
    def commit(self, item: Item, result: list[dict[str, Any]]) -> Commit:
        p = item.payload
        if p["phase"] == "eval":
            done = self.evals.ids()
            self._results[item.id] = result
            return Commit(records={"eval.jsonl": [r for r in result if r["id"] not in done]}, progress=1)
        it, task = p["it"], p["task"]
        accepted = choose(result, self.cfg.loop)
        records = task_records(it, task, result, accepted, len(p["exemplars"]), bool(self.dataset(task.id, it)))
        rows: list[dict[str, Any]] = []
        if accepted is not None and accepted["id"] is not None:
            have = self.training_data.ids()
            rows = [r for r in accepted["new_rows"] if r["id"] not in have]
            known = self.datasets.setdefault(task.id, [])
            known += new_rows(known, accepted["new_rows"])
        for rec in records:
            if rec["to_memory"]:
                self.memory.add(task.id, task_key(task), plan_json(task_relative(rec["calls"], task)),
                                version=(it, self.pos[task.id]))
        self._results[item.id] = records
        done = self.trajectories.ids()
        # the dataset rows first, trajectory records last: a trajectory record marks the task as done
        return Commit(records={"training_data.jsonl": rows,
                               "trajectories.jsonl": [r for r in records if r["id"] not in done]}, progress=1)

    def end_round(self, items: list[Item]) -> Commit | None:
        phase, it, last = self._round
        if phase == "eval":
            return self._end_evaluation(it, items)
        return self._end_iteration(it) if last else None

    def _end_iteration(self, it: int) -> Commit:
        rows = []
        for t in self.trained:
            rows += self._results.pop(f"it{it}-{t.id}", None) or self._stored.get((it, t.id), [])
        tm = train_metrics(it, rows, dataset_rows=sum(len(self.dataset(t.id, it + 1)) for t in self.trained),
                           total_tokens=self.ctx.ledger.totals(iteration=it)["total_tokens"],
                           memory_size=len(self.memory))
        lora = self.lora.after_iteration(it) if self.lora.enabled else {}  # trains or loads, then serves
        tm.update(lora)
        self.training.append(tm)
        metrics = {**lora_metrics(lora), **{f"train/{k}": v for k, v in tm.items() if isinstance(v, (int, float))}}
        return Commit(metrics=metrics, step=it, state={"completed_iteration": it, "memory_size": len(self.memory)},
                      postfix={"iteration": it, "data_plans": tm["accepted_data_plans"]})

    def _end_evaluation(self, it: int, items: list[Item]) -> Commit:
        methods = self.cfg.loop.methods
        results: list[dict[str, Any]] = []
        for item in items:  # a finished task's records were read back into its payload
            results += self._results.pop(item.id, None) or [item.payload["stored"][m] for m in methods]
        ev = {**summarize(it, results, methods, self.cfg.seed), "models": self.ads.models_in_use()}
        self.evaluation.append(ev)
        return Commit(metrics=flatten(ev), step=it)

    # -- progress and results -----------------------------------------------------------------
    def announce(self) -> str:
        n_ins = sum(len(t.instructions) for t in self.trained + self.held)
        lp = self.cfg.loop
        return (f"tasks: {len(self.trained)} trained, {len(self.held)} held out ({n_ins} instructions, "
                f"{self.cfg.tasks.train_instructions} per task seen by the optimizer); {lp.iterations} iterations x "
                f"{lp.trajectories_per_task} trajectories per task")

    def progress_total(self) -> int:
        return (self.cfg.loop.iterations * len(self.trained)
                + len(self.eval_iterations()) * (len(self.trained) + len(self.held)))

    def progress_done(self) -> int:
        trained = sum(self._trained_done(it, t) for it in range(1, self.cfg.loop.iterations + 1)
                      for t in self.trained)
        return trained + sum(self._evaluated(it, t) for it in self.eval_iterations() for t in self.trained + self.held)

    def summary(self) -> dict[str, Any]:
        d = self.ctx.run_dir
        atomic_write_json(d / "training_metrics.json", self.training)
        final = self.evaluation[-1]
        lines = verdict(final)
        atomic_write_json(d / "evaluation_results.json",
                          evaluation_results(final, self.evaluation, lines, self.trained + self.held, self.evals))
        self.export = export_datasets(self.ctx, list(self.training_data))
        write_plots(d, self.training, self.evaluation)
        return {"final_evaluation": {m: {k: v for k, v in s.items() if k not in ("by_family", "by_split")}
                                     for m, s in final["methods"].items()},
                "comparisons": final["comparisons"], "verdict": lines, "training": self.training,
                "export": self.export, "final_models": final.get("models")}

    def report(self, summary: dict[str, Any]) -> None:
        print_report(self.evaluation[-1], self.training, summary, self.export)

