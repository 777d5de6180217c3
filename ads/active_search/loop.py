"""The ADS loop: an optimizer learns which data to acquire so a policy improves on a task.

One training iteration, for every trained task (a set of instructions, instruction_sets.py):
  1. the policy answers the task's train instructions with the task's current training
     dataset (empty at first); those answers and scores are the weakness signal;
  2. the optimizer, shown the instructions, the answers, the scores and accepted plans of
     similar tasks (its exemplar memory), writes k trajectories of API calls
     (schema-constrained JSON with every argument's bounds);
  3. each trajectory is executed; its observations become typed dataset rows;
  4. reward = mean train-instruction score with the dataset plus the new rows - without them
     - lambda * cost;
  5. rejection sampling: the best trajectory (the empty plan is always a candidate, so "no
     data needed" can be learned) is accepted when its reward reaches the threshold; its
     rows join the task's dataset (aggregation) and its plan joins the exemplar memory.
The evaluation (evaluation.py) scores held-out instructions only.

Everything written is append-only JSONL keyed by id, and those records are the state: a killed
run resumes by skipping ids already written (memory and datasets are rebuilt from them), and
replays the model calls it had made from the request cache.
"""
from __future__ import annotations

from statistics import mean
from typing import Any, Literal

from pydantic import Field, model_validator
from tqdm import tqdm

from ads.active_search.instruction_sets import Instruction, Task, TasksConfig, build_task_sets
from ads.active_search.lora import LoraUpdateConfig, LoraUpdates, check_lora_config
from ads.active_search.planning import ExemplarMemory, Optimizer, plan_json, task_key, task_relative
from ads.active_search.policy import Answer, Policy
from ads.active_search.training_data import new_rows, rows_from_observations
from ads.config import ConfigError, ModelConfig, RunConfig, Strict
from ads.active_search.api_trajectories import Trajectory, execute
from ads.ledger import ledger_scope
from ads.run import RunContext
from ads.store import JsonlStore, atomic_write_json
from apis.base import ApiRegistry
from apis.factory import ApisConfig, build_api_registry
from models.base import Model

METHODS = ("no_data", "learned", "random", "always_retrieve", "oracle")


class LoopConfig(Strict):
    iterations: int = Field(2, ge=1)
    trajectories_per_task: int = Field(2, ge=1)
    max_calls: int = Field(2, ge=0, le=8)
    lambda_cost: float = Field(0.02, ge=0, allow_inf_nan=False)
    accept_threshold: float = Field(0.0, allow_inf_nan=False)
    null_plan_candidate: bool = True
    optimizer_temperature: float = Field(0.8, ge=0, allow_inf_nan=False)
    optimizer_max_tokens: int = Field(128, ge=16)
    exemplars: int = Field(2, ge=0)
    context_chars: int = Field(1600, ge=100)  # reference material per instruction
    answer_max_tokens: int = Field(24, ge=4)
    reasoning_max_tokens: int = Field(160, ge=16)  # math and free-form (judged) instructions
    policy_update: Literal["in_context", "lora"] = "in_context"  # lora: lora.py
    optimizer_update: Literal["exemplars", "lora"] = "exemplars"
    evaluate: Literal["final", "every_iteration"] = "final"
    evaluate_before_training: bool = False
    methods: list[Literal["no_data", "learned", "random", "always_retrieve", "oracle"]] = list(METHODS)
    # trained tasks between exemplar-memory updates. 1: after every task (sequential). n > 1: n tasks
    # see the same memory and run at once on the executor. Outputs depend on this, not on the executor.
    task_batch: int = Field(1, ge=1)

    @model_validator(mode="after")
    def _methods(self) -> "LoopConfig":
        if "no_data" not in self.methods or "learned" not in self.methods:
            raise ValueError("methods must include no_data and learned (every comparison is paired with them)")
        return self


class ADSConfig(RunConfig):
    kind: str = "ads"
    name: str = "ads-default"
    policy: ModelConfig = ModelConfig()
    optimizer: ModelConfig = ModelConfig()
    judge: ModelConfig | None = None
    tasks: TasksConfig = TasksConfig()
    apis: ApisConfig = ApisConfig()
    loop: LoopConfig = LoopConfig()
    lora_update: LoraUpdateConfig = LoraUpdateConfig()  # used by loop.policy_update / optimizer_update: lora

    @model_validator(mode="after")
    def _lora_needs_local_weights(self) -> "ADSConfig":
        check_lora_config(self)
        return self


def _mean(xs: list[float]) -> float:
    return float(mean(xs)) if xs else 0.0


class ActiveDataSearch:
    def __init__(self, cfg: ADSConfig, ctx: RunContext, policy_model: Model | None = None,
                 optimizer_model: Model | None = None, api_model: Model | None = None, judge: Any | None = None,
                 tasks: tuple[list[Task], list[Task]] | None = None, registry: ApiRegistry | None = None):
        self.cfg, self.ctx = cfg, ctx
        self._components = dict(policy_model=policy_model, optimizer_model=optimizer_model, api_model=api_model,
                                judge=judge, registry=registry)
        self.policy_model = ctx.wrap(policy_model, "policy") if policy_model else ctx.model("policy", cfg.policy)
        self.optimizer_model = (ctx.wrap(optimizer_model, "optimizer") if optimizer_model
                                else ctx.model("optimizer", cfg.optimizer))
        wrapped_api = ctx.wrap(api_model, "api_model") if api_model else None
        if registry is None:
            needs_model = any(n != "information_retrieval" for n in cfg.apis.enabled)
            wrapped_api = wrapped_api or (ctx.model("api_model", cfg.policy) if needs_model else None)
            registry = build_api_registry(cfg.apis, model=wrapped_api, ledger=ctx.ledger, cache_dir="cache")
        self.registry = registry
        self.registry.ledger = ctx.ledger
        if judge is None and cfg.judge is not None:
            from ads.quality.judge import Judge

            judge = Judge(ctx.model("judge", cfg.judge))
        lp = cfg.loop
        self.policy = Policy(self.policy_model, seed=cfg.seed, answer_max_tokens=lp.answer_max_tokens,
                             reasoning_max_tokens=lp.reasoning_max_tokens, context_chars=lp.context_chars, judge=judge)
        self.optimizer = Optimizer(self.optimizer_model, self.registry, max_calls=lp.max_calls,
                                   max_tokens=lp.optimizer_max_tokens, seed=cfg.seed,
                                   max_arg_chars=min(160, cfg.apis.max_arg_length))
        self.trained, self.held = tasks if tasks is not None else build_task_sets(cfg.tasks)
        if judge is None and any(i.scorer == "judge" for t in self.trained + self.held for i in t.instructions):
            raise ConfigError("tasks: some instructions have no reference (or scoring: judge) and no judge is "
                              "configured; add a `judge:` model section or references")
        d = ctx.run_dir
        self.trajectories = JsonlStore(d / "trajectories.jsonl")
        self.training_data = JsonlStore(d / "training_data.jsonl")
        self.training_data.path.touch()  # present even when every accepted plan was "fetch nothing"
        self.evals = JsonlStore(d / "eval.jsonl")
        self.memory = ExemplarMemory()
        self.datasets: dict[str, list[dict[str, Any]]] = {}
        self._answers: dict[tuple[str, tuple[str, ...], str], Answer] = {}
        self.worker_factory = ADSWorkerFactory(cfg, self._components)
        self.lora = LoraUpdates(self)
        atomic_write_json(d / "tasks.json", {"trained": [t.to_dict() for t in self.trained],
                                             "held_out": [t.to_dict() for t in self.held]})

    # -- seams -----------------------------------------------------------------------------
    def set_model(self, role: str, model: Model) -> None:
        """Serve a role from another model from now on (a LoRA-tuned policy, say); answers the old
        policy gave are forgotten, since they are not the new policy's."""
        if role == "policy":
            self.policy_model = self.policy.model = model
            self._answers.clear()
        elif role == "optimizer":
            self.optimizer_model = self.optimizer.model = model
        else:
            raise ValueError(f"unknown role {role!r}")

    def models_in_use(self) -> dict[str, str]:
        return {"policy": self.policy_model.model_id, "optimizer": self.optimizer_model.model_id}

    # -- policy answers -----------------------------------------------------------------------
    def forget_answers(self) -> None:
        self._answers.clear()

    def answers(self, instructions: list[Instruction], rows: list[dict[str, Any]],
                context: dict[str, str] | None = None) -> list[Answer]:
        """The policy's answers with these rows (or fixed per-instruction contexts), remembered per
        (instruction, rows) so the same question on the same data is asked once per process."""
        out = []
        ids = tuple(r["id"] for r in rows)
        for ins in instructions:
            ctx_text = context.get(ins.id) if context is not None else None
            key = (ins.id, ids, ctx_text or "")
            if key not in self._answers:
                self._answers[key] = self.policy.answer(ins, rows, context=ctx_text)
            out.append(self._answers[key])
        return out

    # -- one trajectory -------------------------------------------------------------------------
    def run_plan(self, task: Task, traj: Trajectory, dataset: list[dict[str, Any]], before: list[Answer],
                 iteration: int | str, traj_id: str, score_train: bool = True) -> dict[str, Any]:
        """Execute a trajectory and score the task's train instructions with its new rows added
        (`score_train=False`: only execute, as the evaluation does)."""
        if traj.ok:
            execute(traj, self.registry, task.query_text())
        calls = [c.to_dict() for c in traj.calls]
        obs = [{"api": o.api, "ok": o.ok, "cost": o.cost, "error": o.error, "text": o.text[:1500],
                "payload": o.payload} for o in traj.observations]
        rows = new_rows(dataset, rows_from_observations(task.id, traj_id, iteration, calls, obs,
                                                        self.cfg.apis.retrieval.passage_chars, task.family))
        after = self.answers(task.train, dataset + rows) if (traj.ok and rows and score_train) else before
        base, with_ = _mean([a.score for a in before]), _mean([a.score for a in after])
        reward = round(with_ - base - self.cfg.loop.lambda_cost * traj.cost, 6) if traj.ok else None
        return {"calls": calls, "raw": traj.raw, "parse_error": traj.parse_error, "observations": obs,
                "cost": traj.cost, "reward": reward, "gain": round(with_ - base, 6), "score_before": round(base, 6),
                "score_with": round(with_, 6), "answers_with": [a.text[:300] for a in after],
                "scores_with": [a.score for a in after], "new_rows": rows}

    def train_task(self, it: int, task: Task, ids: list[str], exemplars: list[tuple[str, str]],
                   dataset: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """The k sampled trajectories of one trained task, executed and scored (nothing written)."""
        lp = self.cfg.loop
        with ledger_scope(iteration=it, task_id=task.id):
            before = self.answers(task.train, dataset)
            current = [(a.text, a.score) for a in before]
            samples = []
            for s, tid in enumerate(ids):
                traj = self.optimizer.propose(task, current, exemplars, f"{task.id}:it{it}:s{s}",
                                              lp.optimizer_temperature)
                samples.append({"id": tid, "answers_before": [a.text[:300] for a in before],
                                "scores_before": [a.score for a in before],
                                **self.run_plan(task, traj, dataset, before, it, tid)})
        return samples

    # -- training ---------------------------------------------------------------------------------
    def restore(self) -> None:
        """Rebuild the exemplar memory and every task's dataset from the records on disk."""
        pos = {t.id: i for i, t in enumerate(self.trained)}
        keys = {t.id: task_key(t) for t in self.trained}
        for r in self.trajectories:
            if r.get("to_memory") and r["task_id"] in keys:
                task = self.trained[pos[r["task_id"]]]
                self.memory.add(r["task_id"], keys[r["task_id"]], plan_json(task_relative(r["calls"], task)),
                                version=(r["iteration"], pos[r["task_id"]]))
        self.datasets = {}
        for r in self.training_data:
            self.datasets.setdefault(r["task_id"], []).append(r)

    def dataset(self, task_id: str, before_iteration: int) -> list[dict[str, Any]]:
        return [r for r in self.datasets.get(task_id, []) if isinstance(r["iteration"], int)
                and r["iteration"] < before_iteration]

    def train_iteration(self, it: int) -> dict[str, Any]:
        lp = self.cfg.loop
        k = lp.trajectories_per_task
        done = self.trajectories.ids()
        stored = [r for r in self.trajectories if r["iteration"] == it] if done else []
        rows: list[dict[str, Any]] = []
        bar = tqdm(total=len(self.trained), desc=f"iteration {it}/{lp.iterations}: trained tasks", unit="task",
                   dynamic_ncols=True)
        pos = {t.id: i for i, t in enumerate(self.trained)}
        for start in range(0, len(self.trained), lp.task_batch):
            items = []
            for task in self.trained[start:start + lp.task_batch]:
                ids = [f"it{it}-{task.id}-s{s}" for s in range(k)]
                if all(i in done for i in ids):  # finished before a kill: its records are the result
                    rows += [r for r in stored if r["task_id"] == task.id]
                    bar.update(1)
                    continue
                exemplars = self.memory.nearest(task_key(task), lp.exemplars, exclude=task.id, before=(it, start))
                items.append({"it": it, "task": task, "ids": ids, "exemplars": exemplars,
                              "dataset": self.dataset(task.id, it)})
            results = self.ctx.executor().imap(train_task_work, items, env=self, factory=self.worker_factory,
                                               ledger=self.ctx.ledger)
            for item, samples in zip(items, results):
                rows += self.accept_and_write(it, item["task"], samples, item["exemplars"], done,
                                              version=(it, pos[item["task"].id]))
                bar.update(1)
                bar.set_postfix(data_plans=sum(bool(r["accepted"] and r["calls"]) for r in rows))
        bar.close()
        return self.train_metrics(it, rows)

    def accept_and_write(self, it: int, task: Task, samples: list[dict[str, Any]], exemplars: list[tuple[str, str]],
                         done: set[str], version: tuple[int, int]) -> list[dict[str, Any]]:
        """Rejection sampling over one task's samples; writes the accepted rows, then the records."""
        lp = self.cfg.loop
        valid = [r for r in samples if r["reward"] is not None]
        null = {"id": None, "reward": 0.0, "cost": 0.0, "calls": []}
        candidates = valid + ([null] if lp.null_plan_candidate else [])
        best = max(candidates, key=lambda r: (r["reward"], -r["cost"], -len(r["calls"]))) if candidates else None
        accepted = best if best is not None and best["reward"] >= lp.accept_threshold else None
        records = []
        for r in samples:
            rec = {**r, "iteration": it, "task_id": task.id, "family": task.family,
                   "accepted": accepted is not None and r["id"] == accepted["id"], "null_plan": False,
                   "exemplars_used": len(exemplars)}
            rec["n_new_rows"] = len(rec.pop("new_rows"))
            records.append(rec)
        if accepted is not None and accepted["id"] is None:  # the free "fetch nothing" plan won
            before = samples[0] if samples else {}
            records.append({"id": f"it{it}-{task.id}-null", "iteration": it, "task_id": task.id,
                            "family": task.family, "calls": [], "raw": "<null plan>", "parse_error": None,
                            "observations": [], "cost": 0.0, "reward": 0.0, "gain": 0.0,
                            "score_before": before.get("score_before"), "score_with": before.get("score_before"),
                            "accepted": True, "null_plan": True, "exemplars_used": len(exemplars), "n_new_rows": 0})
        # the dataset rows first, trajectory records last: a trajectory record marks the task as done
        if accepted is not None and accepted["id"] is not None:
            have = self.training_data.ids()
            for row in accepted["new_rows"]:
                if row["id"] not in have:
                    self.training_data.append(row)
            known = self.datasets.setdefault(task.id, [])
            known += new_rows(known, accepted["new_rows"])
        had_data = bool(self.dataset(task.id, it))
        data_hurt = any(r["gain"] < 0 for r in valid if r["calls"])
        already_right = bool(samples) and samples[0]["score_before"] >= 0.5
        for rec in records:
            # An accepted empty plan is an example for other tasks only when it was a finding: data
            # was tried and hurt, or the policy already answers. "Nothing tried helped" on a task the
            # policy fails is not a lesson (shown as one, it taught the optimizer to stop fetching);
            # nor is "nothing more needed" after a data plan: the memory keeps showing that plan.
            empty_lesson = (data_hurt or already_right) and not had_data
            rec["to_memory"] = rec["accepted"] and (bool(rec["calls"]) or empty_lesson)
            if rec["id"] not in done:
                self.trajectories.append(rec)
            if rec["to_memory"]:
                self.memory.add(task.id, task_key(task), plan_json(task_relative(rec["calls"], task)), version=version)
        return records

    def train_metrics(self, it: int, rows: list[dict[str, Any]]) -> dict[str, Any]:
        sampled = [r for r in rows if not r.get("null_plan")]
        rewards = [r["reward"] for r in sampled if r["reward"] is not None]
        by_task: dict[str, list[dict]] = {}
        for r in rows:
            by_task.setdefault(r["task_id"], []).append(r)
        best = [max((r["reward"] for r in rs if r["reward"] is not None), default=None) for rs in by_task.values()]
        best = [b for b in best if b is not None]
        accepted = [r for r in rows if r["accepted"]]
        led = self.ctx.ledger.totals(iteration=it)
        return {
            "iteration": it,
            "tasks": len(by_task),
            "trajectories": len(sampled),
            "parse_failures": sum(r["parse_error"] is not None for r in sampled),
            "empty_plans_sampled": sum(r["parse_error"] is None and not r["calls"] for r in sampled),
            "mean_reward": round(_mean(rewards), 4) if rewards else None,
            "mean_best_reward": round(_mean(best), 4) if best else None,
            "accepted_data_plans": sum(bool(r["calls"]) for r in accepted),
            "accepted_empty_plans": sum(not r["calls"] for r in accepted),
            "acceptance_rate": round(len({r["task_id"] for r in accepted}) / max(1, len(by_task)), 4),
            "mean_gain_accepted_data": round(_mean([r["gain"] for r in accepted if r["calls"]]), 4),
            "api_cost": round(sum(r["cost"] for r in sampled), 4),
            "api_cost_per_task": round(sum(r["cost"] for r in sampled) / max(1, len(by_task)), 4),
            "dataset_rows": sum(len(self.dataset(t.id, it + 1)) for t in self.trained),
            "total_tokens": led["total_tokens"],
            "memory_size": len(self.memory),
        }

    # -- driver -------------------------------------------------------------------------------------
    def run(self) -> dict[str, Any]:
        from ads.active_search.evaluation import evaluate, flatten

        self.restore()
        lp = self.cfg.loop
        training, evaluation = [], []
        if lp.evaluate_before_training:
            evaluation.append(evaluate(self, 0))
            self.ctx.tracker.log(flatten(evaluation[-1]), step=0)
        for it in range(1, lp.iterations + 1):
            tm = self.train_iteration(it)
            if self.lora.enabled:  # train / load this iteration's adapters and serve them from now on
                tm.update(self.lora.after_iteration(it))
            training.append(tm)
            self.ctx.tracker.log({f"train/{k}": v for k, v in tm.items() if isinstance(v, (int, float))}, step=it)
            self.ctx.save_state({"completed_iteration": it, "memory_size": len(self.memory)})
            if lp.evaluate == "every_iteration" or it == lp.iterations:
                ev = evaluate(self, it)
                evaluation.append(ev)
                self.ctx.tracker.log(flatten(ev), step=it)
        return {"training": training, "evaluation": evaluation}


# --- work items for the executor (ads/executor.py) ----------------------------------------------
def train_task_work(env: ActiveDataSearch, item: dict[str, Any]) -> list[dict[str, Any]]:
    env.forget_answers()  # what an item computes must not depend on which items its process ran before
    return env.train_task(item["it"], item["task"], item["ids"], item["exemplars"], item["dataset"])


class ADSWorkerFactory:
    """Builds a worker's own ActiveDataSearch from the config (and any injected test components):
    its own models, API registry and request cache, an in-memory ledger, no output files."""

    def __init__(self, cfg: ADSConfig, components: dict[str, Any]):
        self.cfg, self.components = cfg, components

    def __getstate__(self) -> dict[str, Any]:
        comps = dict(self.components)
        if comps.get("registry") is not None:  # the driver's registry points at the driver's ledger
            import copy

            comps["registry"] = copy.copy(comps["registry"])
            comps["registry"].ledger = None
        return {"cfg": self.cfg, "components": comps}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)

    def __call__(self) -> ActiveDataSearch:
        import copy

        if self.cfg.loop.policy_update == "lora" or self.cfg.loop.optimizer_update == "lora":
            # adapters are trained and swapped in by the driver after each iteration; workers would not see them
            raise RuntimeError("loop.policy_update/optimizer_update 'lora' runs with executor.kind 'local' only")
        comps = dict(self.components)
        if comps.get("registry") is not None:  # each worker points its own registry copy at its own ledger
            comps["registry"] = copy.copy(comps["registry"])
        return ActiveDataSearch(self.cfg, RunContext.for_worker(self.cfg), tasks=([], []), **comps)
