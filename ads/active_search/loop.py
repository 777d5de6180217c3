"""The ADS loop: an optimizer learns which data to acquire so a policy improves on a task.

One training iteration, for every trained task (a set of instructions, instruction_sets.py):
  1. the policy answers the task's train instructions with the task's current training
     dataset (empty at first); those answers and scores are the weakness signal;
  2. the optimizer, shown the instructions, the answers, the scores and accepted plans of
     similar tasks (its exemplar memory), writes k trajectories of API calls
     (schema-constrained JSON with every argument's bounds);
  3. each trajectory is executed; its observations become typed dataset rows;
  4. reward = mean train-instruction score with the dataset plus the new rows - without them
     + coverage_bonus * (share of train instructions whose answer the shown rows hold, with -
     without) - lambda * cost;
  5. rejection sampling: the best trajectory (the empty plan is always a candidate, so "no
     data needed" can be learned) is accepted when its reward reaches the threshold; its
     rows join the task's dataset (aggregation) and its plan joins the exemplar memory.
The evaluation (evaluation.py) scores held-out instructions only.

This module holds the method's configuration and `ActiveDataSearch`, what a work item runs
against: the policy, the optimizer, the API registry and the answers already computed. It
writes nothing, so a Ray worker builds its own from the config (ADSWorkerFactory) and gets
the same results. The rounds, the records and resume are experiment.py's (ADSGenerator).
"""
from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, model_validator

from ads.active_search.acceptance import mean_or_zero
from ads.active_search.api_trajectories import Trajectory, execute
from ads.active_search.instruction_sets import Instruction, Task, TasksConfig
from ads.active_search.lora import LoraUpdateConfig, check_lora_config
from ads.active_search.planning import Optimizer
from ads.active_search.policy import Answer, Policy
from ads.active_search.training_data import answer_coverage, new_rows, rows_from_observations
from ads.config import ModelConfig, RunConfig, Strict
from ads.ledger import ledger_scope
from ads.run import RunContext
from apis.api_registry import ApiRegistry
from apis.factory import ApisConfig, build_api_registry
from models.base import Model

METHODS = ("no_data", "learned", "random", "always_retrieve", "oracle")


class LoopConfig(Strict):
    iterations: int = Field(2, ge=1)
    trajectories_per_task: int = Field(2, ge=1)
    max_calls: int = Field(2, ge=0, le=8)
    lambda_cost: float = Field(0.02, ge=0, allow_inf_nan=False)
    accept_threshold: float = Field(0.0, allow_inf_nan=False)
    # reward weight of the change in answer coverage (training_data.answer_coverage): the share of
    # train instructions whose reference answer is in the rows the policy is shown. 0: score gain only
    coverage_bonus: float = Field(0.0, ge=0, allow_inf_nan=False)
    null_plan_candidate: bool = True
    optimizer_temperature: float = Field(0.8, ge=0, allow_inf_nan=False)
    optimizer_max_tokens: int = Field(128, ge=16)
    exemplars: int = Field(2, ge=0)
    context_chars: int = Field(1600, ge=100)  # reference material per instruction
    # at most this many dataset rows per instruction, the most relevant by BM25 (null: as many as fit
    # context_chars). 1 because related passages distract a small policy (training_data.select_rows)
    context_rows: int | None = Field(1, ge=1)
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


class ADSModels(Strict):
    policy: ModelConfig = ModelConfig()
    optimizer: ModelConfig = ModelConfig()
    judge: ModelConfig | None = None  # for tasks scored by a judge


class ADSConfig(RunConfig):
    LEGACY_ROLE_KEYS = {"policy": "policy", "optimizer": "optimizer", "judge": "judge"}

    kind: str = "ads"
    name: str = "ads-default"
    models: ADSModels = ADSModels()
    tasks: TasksConfig = TasksConfig()
    apis: ApisConfig = ApisConfig()
    loop: LoopConfig = LoopConfig()
    lora_update: LoraUpdateConfig = LoraUpdateConfig()  # used by loop.policy_update / optimizer_update: lora

    @model_validator(mode="after")
    def _lora_needs_local_weights(self) -> "ADSConfig":
        check_lora_config(self)
        return self


class ActiveDataSearch:
    """The method's moving parts, as one work item sees them: models, registry, policy, optimizer.

    The driver's instance serves the local executor; a worker's is built by ADSWorkerFactory.
    """

    def __init__(self, cfg: ADSConfig, ctx: RunContext, policy_model: Model | None = None,
                 optimizer_model: Model | None = None, api_model: Model | None = None, judge: Any | None = None,
                 registry: ApiRegistry | None = None):
        self.cfg, self.ctx = cfg, ctx
        self.policy_model = ctx.wrap(policy_model, "policy") if policy_model else ctx.model("policy", cfg.models.policy)
        self.optimizer_model = (ctx.wrap(optimizer_model, "optimizer") if optimizer_model
                                else ctx.model("optimizer", cfg.models.optimizer))
        wrapped_api = ctx.wrap(api_model, "api_model") if api_model else None
        if registry is None:
            needs_model = any(n != "information_retrieval" for n in cfg.apis.enabled)
            wrapped_api = wrapped_api or (ctx.model("api_model", cfg.models.policy) if needs_model else None)
            registry = build_api_registry(cfg.apis, model=wrapped_api, ledger=ctx.ledger, cache_dir="cache")
        self.registry = registry
        self.registry.ledger = ctx.ledger
        if judge is None and cfg.models.judge is not None:
            from ads.quality.judge import Judge

            judge = Judge(ctx.model("judge", cfg.models.judge))
        self.judge = judge
        lp = cfg.loop
        self.policy = Policy(self.policy_model, seed=cfg.seed, answer_max_tokens=lp.answer_max_tokens,
                             reasoning_max_tokens=lp.reasoning_max_tokens, context_chars=lp.context_chars,
                             context_rows=lp.context_rows, judge=judge)
        self.optimizer = Optimizer(self.optimizer_model, self.registry, max_calls=lp.max_calls,
                                   max_tokens=lp.optimizer_max_tokens, seed=cfg.seed,
                                   max_arg_chars=min(160, cfg.apis.max_arg_length))
        self._answers: dict[tuple[str, tuple[str, ...], str], Answer] = {}

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
        """Work items call this first: what an item computes must not depend on which items its
        process ran before (the same calls and ledger on any executor)."""
        self._answers.clear()

    def answers(self, instructions: list[Instruction], rows: list[dict[str, Any]],
                context: dict[str, str] | None = None) -> list[Answer]:
        """The policy's answers with these rows (or fixed per-instruction contexts), remembered per
        (instruction, rows) so the same question on the same data is asked once per item."""
        out = []
        ids = tuple(r["id"] for r in rows)
        for ins in instructions:
            ctx_text = context.get(ins.id) if context is not None else None
            key = (ins.id, ids, ctx_text or "")
            if key not in self._answers:
                self._answers[key] = self.policy.answer(ins, rows, context=ctx_text)
            out.append(self._answers[key])
        return out

    def coverage(self, task: Task, rows: list[dict[str, Any]]) -> float | None:
        """answer_coverage of the task's train instructions with these rows, as the policy sees them."""
        lp = self.cfg.loop
        return answer_coverage(task.train, rows, lp.context_chars, lp.context_rows)

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
        lp = self.cfg.loop
        base, with_ = mean_or_zero([a.score for a in before]), mean_or_zero([a.score for a in after])
        cov_before = cov_with = None  # only a scored plan's reward reads them
        if score_train:
            cov_before = self.coverage(task, dataset)
            cov_with = self.coverage(task, dataset + rows) if rows else cov_before
        covered = cov_before is not None and cov_with is not None
        bonus = lp.coverage_bonus * (cov_with - cov_before) if covered else 0.0
        reward = round(with_ - base + bonus - lp.lambda_cost * traj.cost, 6) if traj.ok else None
        return {"calls": calls, "raw": traj.raw, "parse_error": traj.parse_error, "observations": obs,
                "cost": traj.cost, "reward": reward, "gain": round(with_ - base, 6), "score_before": round(base, 6),
                "coverage_before": cov_before, "coverage_with": cov_with,
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


# --- work items for the executor (ads/executor.py) ----------------------------------------------
def train_task_work(env: ActiveDataSearch, item: dict[str, Any]) -> list[dict[str, Any]]:
    env.forget_answers()
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
        return ActiveDataSearch(self.cfg, RunContext.for_worker(self.cfg), **comps)
