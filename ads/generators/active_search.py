"""Active Data Search: an optimizer model learns which data to fetch for a policy model.

One iteration, for every training task:
  1. the optimizer writes k trajectories of API calls (schema-constrained JSON), prompted
     with accepted trajectories of similar past tasks (its exemplar memory);
  2. the executor runs them through the API registry; the observations become the
     policy's context (in-context update);
  3. reward = score(policy with data) - score(policy without) - lambda * cost;
  4. rejection sampling: the best trajectory (the empty plan is always a candidate, so
     "fetch nothing" can be learned where data does not help) is accepted when its reward
     reaches the threshold, and joins the exemplar memory that refines the optimizer.
After every iteration the optimizer is evaluated on held-out tasks against three baselines
run in the same process: no data, random trajectories at equal cost, and always-retrieve.

Everything written is append-only JSONL keyed by id, and those records are the state: a
killed run resumes by skipping ids already written, and replays the model calls it had
made from the request cache.
"""
from __future__ import annotations

import json
import random
import re
from dataclasses import dataclass
from typing import Any

from pydantic import Field, model_validator
from tqdm import tqdm

from ads.config import ModelConfig, RunConfig, Strict
from ads.generators.ads_lora import LoraUpdateConfig, LoraUpdates, check_lora_config
from ads.generators.trajectory import (ApiCall, Trajectory, execute, parse_trajectory, render_context,
                                       trajectory_schema)
from ads.ledger import ledger_scope
from ads.run import RunContext
from ads.store import JsonlStore, atomic_write_json
from ads.tasks import Task, TasksConfig, build_task_sets, scorer_for
from apis.base import ApiRegistry
from apis.factory import ApisConfig, build_api_registry
from models.base import Model, ModelError
from models.openai_compat import EndpointFailingError

METHODS = ("no_data", "learned", "random_equal_cost", "always_retrieve")


class LoopConfig(Strict):
    iterations: int = Field(2, ge=1)
    trajectories_per_task: int = Field(2, ge=1)
    max_calls: int = Field(2, ge=0, le=8)
    lambda_cost: float = Field(0.02, ge=0)
    accept_threshold: float = 0.0
    null_plan_candidate: bool = True
    optimizer_temperature: float = Field(0.8, ge=0)
    optimizer_max_tokens: int = Field(160, ge=16)
    exemplars: int = Field(3, ge=0)
    context_chars: int = Field(2400, ge=100)
    answer_max_tokens: int = Field(32, ge=4)
    reasoning_max_tokens: int = Field(200, ge=16)  # for gsm8k-style families
    policy_update: str = Field("in_context", pattern="^(in_context|lora)$")  # lora: see ads_lora.py
    optimizer_update: str = Field("exemplars", pattern="^(exemplars|lora)$")  # lora: + a LoRA on accepted plans
    evaluate_before_training: bool = True
    # training tasks between exemplar-memory updates. 1: after every task (sequential). n > 1: n
    # tasks see the same memory and run at once on the executor. Outputs depend on this, not on
    # the executor (executor.kind local or ray gives the same records for the same value).
    task_batch: int = Field(1, ge=1)


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


# --- the optimizer ---------------------------------------------------------------------------
OPTIMIZER_SYSTEM = (
    "You plan data acquisition for a small assistant model. For the task, choose API calls whose "
    "results would help the assistant answer it correctly. Each call has a cost, so make no calls "
    "when data would not help. Reply with JSON: {\"calls\": [{\"name\": ..., \"arguments\": {...}}]}. "
    "In a text argument, {task} stands for the task's own text. Examples of the format: "
    "{\"calls\": []} fetches nothing; "
    "{\"calls\": [{\"name\": \"information_retrieval\", \"arguments\": {\"query\": \"{task}\"}}]} "
    "searches with the task's text."
)


def _words(text: str) -> set[str]:
    return set(re.findall(r"[a-z0-9]+", text.lower()))


class ExemplarMemory:
    """Accepted (task prompt, plan) pairs; retrieves the most similar by word overlap.

    Each entry carries a version, (iteration, task position). `nearest(before=v)` sees the memory
    as it stood before v (the latest entry per task), so the tasks of a batch run in parallel all
    see the memory of the batch's start, also after a resume that restored later entries.
    """

    def __init__(self) -> None:
        self.items: list[tuple[str, str, str]] = []  # (task_id, prompt, plan_json), the latest per task
        self._history: list[tuple[tuple[int, int], str, str, str]] = []

    def add(self, task_id: str, prompt: str, plan_json: str, version: tuple[int, int] = (10**9, 0)) -> None:
        self.items = [it for it in self.items if it[0] != task_id] + [(task_id, prompt, plan_json)]
        self._history.append((version, task_id, prompt, plan_json))

    def nearest(self, prompt: str, n: int, exclude: str | None = None,
                before: tuple[int, int] | None = None) -> list[tuple[str, str]]:
        pool = self.items
        if before is not None:
            latest: dict[str, tuple[tuple[int, int], str, str]] = {}
            for v, tid, p, plan in self._history:
                if v < before and (tid not in latest or v >= latest[tid][0]):
                    latest[tid] = (v, p, plan)
            pool = [(tid, p, plan) for tid, (_, p, plan) in latest.items()]
        q = _words(prompt)
        scored = []
        for tid, p, plan in pool:
            if tid == exclude:
                continue
            w = _words(p)
            scored.append((len(q & w) / max(1, len(q | w)), tid, p, plan))
        scored.sort(key=lambda x: (-x[0], x[1]))
        return [(p, plan) for _, _, p, plan in scored[:n]]


class Optimizer:
    def __init__(self, model: Model, registry: ApiRegistry, cfg: LoopConfig, seed: int):
        self.model, self.registry, self.cfg, self.seed = model, registry, cfg, seed
        self.schema = trajectory_schema(registry, cfg.max_calls)

    def messages(self, task: Task, exemplars: list[tuple[str, str]]) -> list[dict[str, str]]:
        costs = ", ".join(f"{n} costs {self.registry.get(n).cost:g}" for n in self.registry.names())
        shots = "".join(f"Task: {p}\nPlan: {plan}\n\n" for p, plan in exemplars)
        user = (f"APIs:\n{self.registry.describe()}\n({costs})\n\n"
                + (f"Plans that worked for similar tasks:\n{shots}" if shots else "")
                + f"Task: {task.prompt}\nPlan:")
        return [{"role": "system", "content": OPTIMIZER_SYSTEM}, {"role": "user", "content": user}]

    def propose(self, task: Task, exemplars: list[tuple[str, str]], sample: int, temperature: float) -> Trajectory:
        try:
            out = self.model.generate(self.messages(task, exemplars), max_tokens=self.cfg.optimizer_max_tokens,
                                      temperature=temperature, seed=self.seed, sample_id=f"{task.id}:{sample}",
                                      json_schema=self.schema)
        except EndpointFailingError:
            raise  # an endpoint that keeps failing ends the run loudly, not as silent rejections
        except ModelError as e:
            return Trajectory(calls=[], raw="", parse_error=f"optimizer failed: {e}")
        return parse_trajectory(out.text, self.cfg.max_calls)


# --- the policy ------------------------------------------------------------------------------
POLICY_SYSTEM = "You are a careful assistant. Use the reference material when it is relevant. Be brief."


@dataclass
class PolicyAnswer:
    text: str
    score: float | None


class Policy:
    def __init__(self, model: Model, cfg: LoopConfig, seed: int, judge: Any | None = None):
        self.model, self.cfg, self.seed, self.judge = model, cfg, seed, judge

    @staticmethod
    def messages(task: Task, context: str) -> list[dict[str, str]]:
        """The policy's prompt (also the prompt of its LoRA training examples, ads_lora.py)."""
        user = (f"Reference material:\n{context}\n\nTask: {task.prompt}" if context else f"Task: {task.prompt}")
        return [{"role": "system", "content": POLICY_SYSTEM}, {"role": "user", "content": user}]

    def answer(self, task: Task, context: str) -> PolicyAnswer:
        max_tokens = self.cfg.reasoning_max_tokens if task.family in ("gsm8k", "user") else self.cfg.answer_max_tokens
        try:
            out = self.model.generate(self.messages(task, context),
                                      max_tokens=max_tokens, temperature=0.0, seed=self.seed, sample_id="policy")
            text = out.text
        except EndpointFailingError:
            raise
        except ModelError as e:  # a context that does not fit counts as a failed answer
            text = f"<policy error: {e}>"
        return PolicyAnswer(text=text, score=self.score(task, text))

    def score(self, task: Task, answer: str) -> float:
        fn = scorer_for(task)
        if fn is not None:
            return float(fn(answer))
        if self.judge is None:
            raise ValueError(f"task {task.id} has no gold answer and no judge is configured (set judge: in the config)")
        j = self.judge.judge(instruction=task.prompt, response=answer)
        return float(j.overall) / 10.0 if j.ok else 0.0


# --- baselines -------------------------------------------------------------------------------
def random_plan(task: Task, registry: ApiRegistry, budget: float, rng: random.Random) -> Trajectory:
    """Random APIs with arguments cut from the task text, adding calls while the cost fits the budget."""
    words = task.prompt.split()
    calls: list[ApiCall] = []
    spent = 0.0
    names = registry.names()
    for _ in range(16):
        name = rng.choice(names)
        api = registry.get(name)
        if spent + api.cost > budget + 1e-9:
            break
        start = rng.randrange(max(1, len(words) - 4))
        span = " ".join(words[start:start + rng.randint(3, 10)]) or task.prompt[:50]
        args = {k: span for k, spec in api.args.items() if spec.required and spec.type == "string"}
        calls.append(ApiCall(name=name, arguments=args))
        spent += api.cost
    return Trajectory(calls=calls, raw="<random>")


def task_text(task: Task) -> str:
    """The task's content without its instruction line: what a search for it should use."""
    return task.prompt.split("\n", 1)[-1][:400]


def retrieve_plan(task: Task, registry: ApiRegistry) -> Trajectory:
    query = task_text(task)
    return Trajectory(calls=[ApiCall(name="information_retrieval", arguments={"query": query})], raw="<always_retrieve>")


# --- the loop --------------------------------------------------------------------------------
class ActiveDataSearch:
    def __init__(self, cfg: ADSConfig, ctx: RunContext, policy_model: Model | None = None,
                 optimizer_model: Model | None = None, api_model: Model | None = None, judge: Any | None = None,
                 tasks: tuple[list[Task], list[Task]] | None = None, registry: ApiRegistry | None = None):
        self.cfg, self.ctx = cfg, ctx
        api_model_arg, judge_arg = api_model, judge
        self.policy_model = ctx.wrap(policy_model, "policy") if policy_model else ctx.model("policy", cfg.policy)
        self.optimizer_model = (ctx.wrap(optimizer_model, "optimizer") if optimizer_model
                                else ctx.model("optimizer", cfg.optimizer))
        api_model = ctx.wrap(api_model, "api_model") if api_model else ctx.model("api_model", cfg.policy)
        self.registry = registry or build_api_registry(cfg.apis, model=api_model, ledger=ctx.ledger, cache_dir="cache")
        self.registry.ledger = ctx.ledger
        if judge is None and cfg.judge is not None:
            from ads.quality.judge import Judge

            judge = Judge(ctx.model("judge", cfg.judge))
        self.policy = Policy(self.policy_model, cfg.loop, cfg.seed, judge)
        self.optimizer = Optimizer(self.optimizer_model, self.registry, cfg.loop, cfg.seed)
        self.train, self.test = tasks if tasks is not None else build_task_sets(cfg.tasks)
        d = ctx.run_dir
        self.trajectories = JsonlStore(d / "trajectories.jsonl")
        self.acquired = JsonlStore(d / "acquired_data.jsonl")
        self.acquired.path.touch()  # present even when every accepted plan was "fetch nothing"
        self.evals = JsonlStore(d / "eval.jsonl")
        self.memory = ExemplarMemory()
        # what a Ray worker needs to build its own copy of these components (ads/executor.py)
        self.worker_factory = ADSWorkerFactory(cfg, dict(policy_model=policy_model, optimizer_model=optimizer_model,
                                                         api_model=api_model_arg, judge=judge_arg,
                                                         registry=registry))
        self._no_data: dict[str, tuple[float, str]] = {}
        self.lora = LoraUpdates(self)  # loop.policy_update / optimizer_update: lora (ads_lora.py)
        atomic_write_json(d / "tasks.json", {"train": [t.to_dict() for t in self.train],
                                             "test": [t.to_dict() for t in self.test]})

    # -- pieces -------------------------------------------------------------------------
    def no_data_score(self, task: Task) -> tuple[float, str]:
        if task.id not in self._no_data:
            ans = self.policy.answer(task, "")
            self._no_data[task.id] = (ans.score, ans.text)
        return self._no_data[task.id]

    def run_plan(self, task: Task, traj: Trajectory) -> dict[str, Any]:
        if traj.ok:
            execute(traj, self.registry, task_text(task))
        context = render_context(traj.observations, self.cfg.loop.context_chars)
        base, _ = self.no_data_score(task)
        if traj.calls and traj.ok:
            ans = self.policy.answer(task, context)
            score, answer = ans.score, ans.text
        else:  # no data: the policy is unchanged
            score, answer = base, self._no_data[task.id][1]
        reward = (score - base) - self.cfg.loop.lambda_cost * traj.cost if traj.ok else None
        return {"calls": [c.to_dict() for c in traj.calls], "raw": traj.raw, "parse_error": traj.parse_error,
                "observations": [{"api": o.api, "ok": o.ok, "cost": o.cost, "error": o.error, "text": o.text[:1500],
                                  "payload": o.payload} for o in traj.observations],
                "cost": traj.cost, "answer": answer, "score_with": score, "score_without": base,
                "gain": round(score - base, 4), "reward": None if reward is None else round(reward, 4)}

    # -- training -----------------------------------------------------------------------
    def _restore_memory(self) -> None:
        pos = {t.id: i for i, t in enumerate(self.train)}
        for r in self.trajectories:
            if r.get("accepted"):
                self.memory.add(r["task_id"], r["prompt"], json.dumps({"calls": r["calls"]}, ensure_ascii=False),
                                version=(int(r["iteration"]), pos.get(r["task_id"], 10**9)))

    def train_iteration(self, it: int) -> dict[str, Any]:
        cfg = self.cfg.loop
        done = self.trajectories.ids()
        rows: list[dict[str, Any]] = []
        bar = tqdm(total=len(self.train), desc=f"iteration {it}: sampling trajectories", unit="task",
                   dynamic_ncols=True)
        pos = {t.id: i for i, t in enumerate(self.train)}
        for start in range(0, len(self.train), cfg.task_batch):
            items = []
            for task in self.train[start:start + cfg.task_batch]:
                ids = [f"it{it}-{task.id}-s{s}" for s in range(cfg.trajectories_per_task)]
                if all(i in done for i in ids):  # done before a restart: its records, the null plan's too
                    keep = {*ids, f"it{it}-{task.id}-null"}
                    rows += [r for r in self.trajectories if r["id"] in keep]
                    bar.update(1)
                    continue
                # the memory as it stood when this batch started (with task_batch 1: after the previous task)
                exemplars = self.memory.nearest(task.prompt, cfg.exemplars, exclude=task.id, before=(it, start))
                items.append({"it": it, "task": task, "ids": ids, "exemplars": exemplars,
                              "no_data": self._no_data.get(task.id)})
            results = self.ctx.executor().imap(train_task_work, items, env=self, factory=self.worker_factory,
                                               ledger=self.ctx.ledger)
            for item, (samples, no_data) in zip(items, results):
                task, exemplars = item["task"], item["exemplars"]
                if no_data is not None:
                    self._no_data[task.id] = no_data
                rows += self._accept_and_write(it, task, samples, exemplars, done, version=(it, pos[task.id]))
                bar.update(1)
                bar.set_postfix(accepted=sum(r["accepted"] and not r.get("null_plan") for r in rows))
        bar.close()
        return self._train_metrics(it, rows)

    def _accept_and_write(self, it: int, task: Task, samples: list[dict[str, Any]], exemplars: list[tuple[str, str]],
                          done: set[str], version: tuple[int, int]) -> list[dict[str, Any]]:
        """Rejection sampling over one task's samples; writes its records and updates the memory."""
        cfg = self.cfg.loop
        valid = [r for r in samples if r["reward"] is not None]
        candidates = valid + ([{"id": None, "reward": 0.0, "cost": 0.0, "calls": []}] if cfg.null_plan_candidate else [])
        best = max(candidates, key=lambda r: (r["reward"], -r["cost"])) if candidates else None
        accepted_id = None
        accepted_null = False
        if best is not None and best["reward"] >= cfg.accept_threshold:
            if best["id"] is None:
                accepted_null = True
            else:
                accepted_id = best["id"]
        records = []
        for r in samples:
            rec = {**r, "iteration": it, "task_id": task.id, "family": task.family, "prompt": task.prompt,
                   "gold": task.gold, "accepted": r["id"] == accepted_id, "exemplars_used": len(exemplars)}
            records.append(rec)
        if accepted_null:  # record the learned "fetch nothing" decision as its own trajectory
            records.append({"id": f"it{it}-{task.id}-null", "iteration": it, "task_id": task.id,
                            "family": task.family, "prompt": task.prompt, "gold": task.gold, "calls": [],
                            "raw": "<null plan>", "parse_error": None, "observations": [], "cost": 0.0,
                            "reward": 0.0, "gain": 0.0, "accepted": True, "null_plan": True,
                            "exemplars_used": len(exemplars)})
        # acquired data first, trajectories last: a trajectory record marks the task as done
        for rec in records:
            if rec["accepted"]:
                for j, obs in enumerate(rec["observations"]):
                    aid = f"{rec['id']}-d{j}"
                    if obs["ok"] and aid not in self.acquired:
                        self.acquired.append({"id": aid, "iteration": it, "task_id": task.id,
                                              "family": task.family, "api": obs["api"],
                                              "arguments": rec["calls"][j]["arguments"], "text": obs["text"],
                                              "payload": obs["payload"], "reward": rec["reward"]})
        for rec in records:
            if rec["id"] not in done:
                self.trajectories.append(rec)
            if rec["accepted"]:
                self.memory.add(task.id, task.prompt, json.dumps({"calls": rec["calls"]}, ensure_ascii=False),
                                version=version)
        return records

    def _train_metrics(self, it: int, rows: list[dict[str, Any]]) -> dict[str, Any]:
        sampled = [r for r in rows if not r.get("null_plan")]
        rewards = [r["reward"] for r in sampled if r["reward"] is not None]
        by_task: dict[str, list[dict]] = {}
        for r in rows:
            by_task.setdefault(r["task_id"], []).append(r)
        best = [max((r["reward"] for r in rs if r["reward"] is not None), default=None) for rs in by_task.values()]
        best = [b for b in best if b is not None]
        led = self.ctx.ledger.totals(iteration=it)
        return {
            "iteration": it,
            "tasks": len(by_task),
            "trajectories": len(sampled),
            "parse_failures": sum(r["parse_error"] is not None for r in sampled),
            "mean_reward": round(sum(rewards) / len(rewards), 4) if rewards else None,
            "mean_best_reward": round(sum(best) / len(best), 4) if best else None,
            "accepted_data_plans": sum(bool(r["accepted"]) and not r.get("null_plan") for r in rows),
            "accepted_null_plans": sum(bool(r.get("null_plan")) for r in rows),
            "acceptance_rate": round(sum(any(r["accepted"] for r in rs) for rs in by_task.values())
                                     / max(1, len(by_task)), 4),
            "api_cost": round(sum(r["cost"] for r in sampled), 4),
            "total_tokens": led["total_tokens"],
            "memory_size": len(self.memory.items),
        }

    # -- evaluation ---------------------------------------------------------------------
    def plan_for(self, method: str, task: Task, learned_cost: float,
                 exemplars: list[tuple[str, str]] | None = None) -> Trajectory | None:
        if method == "no_data":
            return None
        if method == "learned":
            if exemplars is None:
                exemplars = self.memory.nearest(task.prompt, self.cfg.loop.exemplars)
            return self.optimizer.propose(task, exemplars, sample=0, temperature=0.0)
        if method == "random_equal_cost":
            rng = random.Random(f"{self.cfg.seed}:{task.id}:{learned_cost}")
            return random_plan(task, self.registry, learned_cost, rng)
        return retrieve_plan(task, self.registry)

    def evaluate(self, it: int) -> dict[str, Any]:
        done = self.evals.ids()
        stored = {r["id"]: r for r in self.evals if r["id"] in done} if done else {}
        self._no_data.clear()  # recompute (from the cache) so each evaluation charges its no-data calls
        # the memory as it stood after training iteration `it` (a resumed run restores later entries too)
        items = [{"it": it, "task": task,
                  "exemplars": self.memory.nearest(task.prompt, self.cfg.loop.exemplars, before=(it + 1, 0)),
                  "stored": {m: stored[e] for m in METHODS if (e := f"eval-it{it}-{m}-{task.id}") in stored}}
                 for task in self.test]
        results: list[dict[str, Any]] = []
        out = self.ctx.executor().imap(eval_task_work, items, env=self, factory=self.worker_factory,
                                       ledger=self.ctx.ledger)
        bar = tqdm(out, total=len(items), desc=f"iteration {it}: evaluating on held-out tasks", unit="task",
                   dynamic_ncols=True)
        for recs in bar:
            for rec in recs:
                if rec["id"] not in done:
                    self.evals.append(rec)
            results += recs
        return summarize_eval(it, results)

    def eval_task(self, it: int, task: Task, exemplars: list[tuple[str, str]],
                  stored: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
        """The four methods on one held-out task ("no_data" first: its scope gets the no-data call)."""
        self._no_data.pop(task.id, None)
        if "no_data" in stored:  # resumed after it was written: its answer stands, and the tokens
            # of that call belong to no_data's record, not to the next method's
            self._no_data[task.id] = (stored["no_data"]["score"], stored["no_data"]["answer"])
        learned_cost = 0.0
        recs = []
        for method in METHODS:
            eid = f"eval-it{it}-{method}-{task.id}"
            rec = stored.get(method)
            if rec is None:
                scope = f"eval:{method}:{task.id}"
                with ledger_scope(iteration=f"eval-{it}", task_id=scope), self.ctx.ledger.measure() as spent:
                    base, base_answer = self.no_data_score(task)
                    traj = self.plan_for(method, task, learned_cost, exemplars)
                    if traj is None:
                        out = {"calls": [], "cost": 0.0, "answer": base_answer, "score_with": base,
                               "parse_error": None}
                    else:
                        out = self.run_plan(task, traj)
                tokens = spent["total_tokens"] + spent["replayed_tokens"]  # what the method needs
                rec = {"id": eid, "iteration": it, "method": method, "task_id": task.id, "family": task.family,
                       "score": out["score_with"], "no_data_score": base, "cost": out["cost"],
                       "tokens": tokens, "answer": out["answer"][:500], "calls": out["calls"],
                       "parse_error": out.get("parse_error"), "gold": task.gold}
            if method == "learned":
                learned_cost = rec["cost"]
            recs.append(rec)
        return recs

    def train_task(self, it: int, task: Task, ids: list[str], exemplars: list[tuple[str, str]]) -> list[dict[str, Any]]:
        """The k sampled trajectories of one training task, executed and scored (nothing written)."""
        cfg = self.cfg.loop
        with ledger_scope(iteration=it, task_id=task.id):
            samples = []
            for s, tid in enumerate(ids):
                traj = self.optimizer.propose(task, exemplars, s, cfg.optimizer_temperature)
                samples.append({"id": tid, **self.run_plan(task, traj)})
        return samples


    # -- driver -------------------------------------------------------------------------
    def models_in_use(self) -> dict[str, str]:
        return {"policy": self.policy_model.model_id, "optimizer": self.optimizer_model.model_id}

    def run(self) -> dict[str, Any]:
        self._restore_memory()
        training, evaluation = [], []
        if self.cfg.loop.evaluate_before_training:
            evaluation.append({**self.evaluate(0), "models": self.models_in_use()})
        for it in range(1, self.cfg.loop.iterations + 1):
            tm = self.train_iteration(it)
            if self.lora.enabled:  # train / load this iteration's adapters and serve them from now on
                tm.update(self.lora.after_iteration(it))
            training.append(tm)
            self.ctx.tracker.log({f"train/{k}": v for k, v in tm.items() if isinstance(v, (int, float))}, step=it)
            self.ctx.save_state({"completed_iteration": it, "memory_size": len(self.memory.items)})
            ev = {**self.evaluate(it), "models": self.models_in_use()}
            evaluation.append(ev)
            self.ctx.tracker.log(flatten_eval(ev), step=it)
        return {"training": training, "evaluation": evaluation}


# --- work items for the executor (ads/executor.py) ----------------------------------------------
def train_task_work(env: ActiveDataSearch, item: dict[str, Any]) -> tuple[list[dict[str, Any]], Any]:
    """One training task on whichever process holds `env`; returns its samples and no-data answer."""
    task = item["task"]
    if item["no_data"] is not None:  # the driver's knowledge, so no worker repeats a no-data call
        env._no_data[task.id] = tuple(item["no_data"])
    else:
        env._no_data.pop(task.id, None)
    samples = env.train_task(item["it"], task, item["ids"], item["exemplars"])
    return samples, env._no_data.get(task.id)


def eval_task_work(env: ActiveDataSearch, item: dict[str, Any]) -> list[dict[str, Any]]:
    return env.eval_task(item["it"], item["task"], item["exemplars"], item["stored"])


class ADSWorkerFactory:
    """Builds a Ray worker's own ActiveDataSearch from the config (and any injected test components):
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

        comps = dict(self.components)
        if comps.get("registry") is not None:  # each worker points its own registry copy at its own ledger
            comps["registry"] = copy.copy(comps["registry"])
        ctx = RunContext.for_worker(self.cfg)
        env = ActiveDataSearch(self.cfg, ctx, tasks=([], []), **comps)
        lora = getattr(env, "lora", None)
        if lora is not None and getattr(lora, "enabled", False):
            # adapters are trained and swapped in by the driver after each iteration; workers would not see them
            raise RuntimeError("loop.policy_update/optimizer_update 'lora' runs with executor.kind 'local' only")
        return env


def summarize_eval(it: int, results: list[dict[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {"iteration": it, "methods": {}}
    for method in METHODS:
        rs = [r for r in results if r["method"] == method]
        if not rs:
            continue
        n = len(rs)
        fams: dict[str, list[float]] = {}
        for r in rs:
            fams.setdefault(r["family"], []).append(r["score"])
        out["methods"][method] = {
            "n": n,
            "mean_score": round(sum(r["score"] for r in rs) / n, 4),
            "win_rate": round(sum(r["score"] > r["no_data_score"] for r in rs) / n, 4),
            "tie_rate": round(sum(r["score"] == r["no_data_score"] for r in rs) / n, 4),
            "loss_rate": round(sum(r["score"] < r["no_data_score"] for r in rs) / n, 4),
            "mean_cost": round(sum(r["cost"] for r in rs) / n, 4),
            "mean_tokens": round(sum(r["tokens"] for r in rs) / n, 1),
            "parse_failures": sum(r.get("parse_error") is not None for r in rs),
            "by_family": {f: round(sum(v) / len(v), 4) for f, v in sorted(fams.items())},
        }
    return out


def flatten_eval(ev: dict[str, Any]) -> dict[str, float]:
    flat = {}
    for method, m in ev["methods"].items():
        for k in ("mean_score", "win_rate", "mean_cost", "mean_tokens"):
            flat[f"eval/{method}/{k}"] = m[k]
    return flat
