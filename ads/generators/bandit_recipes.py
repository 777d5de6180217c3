"""Bandit-routed recipe generator: read the spec, act, learn from quality feedback (issue 7).

A recipe (configs/recipes/*.yaml) says what data is wanted. The run extracts a context from
it, builds arms (direct-LLM at conservative/balanced/creative temperatures, plus PCFG
templater arms when the recipe has a grammar), then loops in batches until the target
count of accepted items: the router picks an arm, the arm generates a batch, the validator
suite accepts or rejects each item, and the batch reward (validators and quality scores,
optionally the downstream classifier's gain on real labels) goes back to the router.

Run folder: samples.jsonl (every attempt, with its validation and reward), dataset.jsonl
(accepted records), iterations.jsonl (one line per router pull), state.json (the feedback
state: pulls, reward sums, iteration, collected), summary.json and arms.csv (per-arm pulls,
mean reward, acceptance), arm_choices.png (arm chosen per iteration), arm_pulls.png,
arm_values.png, feedback.png, metrics.jsonl, ledger.jsonl.

Resume after SIGKILL (`--resume`): every attempt is appended (fsync'd) the moment it is
judged, an iteration is logged only after its whole batch, and state.json is saved after
that. A resumed run loads state.json and replays any logged iteration it lacks, re-commits
accepted items into the stateful validators (novelty), makes the same router choice for
the unfinished iteration (the router is seeded per iteration), reuses that iteration's
stored attempts and generates only the missing ones, so no record is lost or repeated.
"""
from __future__ import annotations

import time
from collections import Counter, defaultdict
from typing import Any, Iterator, Literal

from pydantic import Field, field_validator

from ads.config import ConfigError, ModelConfig, RunConfig, Strict
from ads.generators.bandit.arms import Arm, Attempt, build_arms
from ads.generators.bandit.checks import DistinctSlotsValidator, FacetMentionValidator
from ads.generators.bandit.plots import write_plots
from ads.generators.bandit.recipe import Context, RecipeSpec, extract_context
from ads.generators.bandit.reward import (RewardConfig, batch_reward, downstream_batch_reward, item_reward,
                                          make_scorer)
from ads.generators.bandit.router import FeedbackState, Router, RouterConfig
from ads.harness.contract import Commit, Generator, Item, Store
from ads.harness.runner import run_generator
from ads.quality.diversity import diversity_report
from ads.quality.validator_specs import ValidatorSpec, build_validators
from ads.quality.validators import SuiteResult, ValidatorSuite, validation_counts
from ads.report import print_table
from ads.run import RunContext
from ads.store import JsonlStore
from models.base import Model

__all__ = ["BanditConfig", "BanditGenerator", "run"]

DEFAULT_PROFILES = {"conservative": 0.2, "balanced": 0.7, "creative": 1.2}


class ArmsConfig(Strict):
    profiles: dict[str, float] = Field(default_factory=lambda: dict(DEFAULT_PROFILES))  # name -> temperature
    include: list[str] | None = None  # arm names ("naive:creative") or families ("templater"); None: all
    # naive arms: plain prose when the model writes only `text` (auto), or always one JSON object
    naive_output: Literal["auto", "text", "json"] = "auto"

    @field_validator("profiles")
    @classmethod
    def _temps(cls, v: dict[str, float]) -> dict[str, float]:
        if not v:
            raise ValueError("give at least one profile, e.g. {balanced: 0.7}")
        bad = {k: t for k, t in v.items() if not 0 <= t <= 2.5}
        if bad:
            raise ValueError(f"temperatures must be in [0, 2.5], got {bad}")
        return v


class LoopConfig(Strict):
    batch_size: int = Field(4, ge=1, le=64)
    max_iterations: int = Field(40, ge=1)
    max_tokens: int = Field(200, ge=16)


class BanditModels(Strict):
    generator: ModelConfig = ModelConfig()
    judge: ModelConfig | None = None  # needed only by judge_* validators


class BanditConfig(RunConfig):
    LEGACY_ROLE_KEYS = {"model": "generator", "judge": "judge"}

    kind: Literal["bandit"] = "bandit"
    name: str = "bandit"
    models: BanditModels = BanditModels()
    recipe: RecipeSpec
    validators: list[ValidatorSpec] = []
    arms: ArmsConfig = ArmsConfig()
    router: RouterConfig = RouterConfig()
    loop: LoopConfig = LoopConfig()
    reward: RewardConfig = RewardConfig()


# --- generation on the executor (ads/executor.py) -----------------------------------------------
def generate_item_work(env: Any, item: dict[str, Any]) -> tuple[Attempt, float]:
    """Generate one item with the given arm on whichever process holds `env` (its model, context, arms)."""
    t0 = time.perf_counter()
    att = env.arms[item["arm"]].generate(env.model, env.context, item["id"], seed=env.cfg.seed,
                                         max_tokens=env.cfg.loop.max_tokens)
    return att, time.perf_counter() - t0


class BanditGenerator(Generator):
    """Rounds are router pulls: the arm of a round depends on the rewards of the rounds before it."""

    kind = "bandit"
    config_class = BanditConfig
    stores = (Store("samples.jsonl"), Store("dataset.jsonl"), Store("iterations.jsonl", id_field="iteration"))
    progress_unit, progress_desc = "item", "accepted"

    def __init__(self, cfg: BanditConfig, ctx: RunContext, stores: dict[str, JsonlStore], model: Model | None = None):
        super().__init__(cfg, ctx, stores)
        self.context: Context = extract_context(cfg.recipe, cfg.validators)
        try:
            arms = build_arms(self.context, cfg.arms.profiles, cfg.arms.include, cfg.arms.naive_output)
        except ValueError as e:
            raise ConfigError(str(e)) from None
        self.arms: dict[str, Arm] = {a.name: a for a in arms}
        if not self.arms:
            raise ConfigError(f"arms.include {cfg.arms.include} keeps no arm; available families: "
                              f"{self.context.arm_families}, profiles: {sorted(cfg.arms.profiles)}")
        needs_judge = any(v.type in ("judge_faithfulness", "judge_score") for v in cfg.validators)
        if needs_judge and cfg.models.judge is None:
            raise ConfigError("validators use a judge: set `models.judge:` (a model config) in the recipe")
        # `model`: a backend built in code (tests pass a FakeModel); it is still cached and ledgered
        self.model = ctx.wrap(model, "generator") if model is not None else ctx.model("generator", cfg.models.generator)
        judge_model = ctx.model("judge", cfg.models.judge) if needs_judge and cfg.models.judge else None
        self.suite = ValidatorSuite(build_validators(cfg.validators, judge_model=judge_model)
                                    + [FacetMentionValidator(f) for f in self.context.mention_facets]
                                    + ([DistinctSlotsValidator()] if self.context.grammar is not None else []))
        self.router = Router(cfg.router, cfg.seed)
        self._factory = BanditWorkerFactory(cfg, model)  # what a Ray/threads worker builds (generation only)
        self.samples, self.dataset = stores["samples.jsonl"], stores["dataset.jsonl"]
        self.iterations = stores["iterations.jsonl"]
        ds = cfg.reward.downstream
        if (ds.enabled or ds.report) and ds.label_field not in cfg.recipe.facets \
                and ds.label_field not in cfg.recipe.format.fields:
            raise ConfigError(f"reward.downstream.label_field {ds.label_field!r} is neither a facet nor a format field "
                              f"of the recipe (facets: {sorted(cfg.recipe.facets)})")
        # the scorer the reward uses (enabled) and the final report (enabled or report) come from one object
        self.reporter = make_scorer(ds, cfg.seed) if (ds.enabled or ds.report) else None
        self.scorer = self.reporter if ds.enabled else None
        self.state = FeedbackState(list(self.arms))
        self.resumed_items = 0

    def worker_factory(self) -> BanditWorkerFactory:
        return self._factory

    # -- resume ---------------------------------------------------------------------------
    def restore(self) -> None:
        """Feedback state from state.json, brought up to date with the iteration log.

        state.json is written after an iteration's log line, so it is either current or one
        iteration behind (a kill between the two writes); the log lines past it are replayed.
        """
        iters = sorted(self.iterations.read(), key=lambda r: r["iteration"])
        for i, rec in enumerate(iters):
            if rec["iteration"] != i:
                raise RuntimeError(f"{self.iterations.path}: iteration {i} missing (found {rec['iteration']})")
        saved = (self.ctx.load_state() or {}).get("feedback")
        if saved is not None:
            st = FeedbackState.from_dict(saved)
            if st.arms != list(self.arms) or st.iteration > len(iters):
                raise RuntimeError(f"{self.ctx.state_path()} does not match this run (arms {st.arms}, "
                                   f"iteration {st.iteration}; log has {len(iters)} iterations)")
            self.state = st
        behind = iters[self.state.iteration:]
        for rec in behind:
            self.state.update(rec["arm"], rec["reward"], rec["accepted"])
        if behind:  # write the caught-up state now: a run killed after its last iteration has no later save
            self.ctx.save_state({"feedback": self.state.to_dict(), "context": self.context.to_dict()})
        self.iter_log = iters
        self.sample_log = self.samples.read()
        done_ids = self.dataset.ids()
        for s in self.sample_log:  # a kill between the two appends: finish the second
            if s["accepted"] and s["id"] not in done_ids:
                self.dataset.append(self._dataset_record(s))
        for s in self.sample_log:  # stateful validators remember what was accepted
            if s["accepted"]:
                for v in self.suite.validators:
                    if hasattr(v, "commit"):
                        v.commit(s["record"], s["id"])
        self.resumed_items = len(self.sample_log)

    @staticmethod
    def _dataset_record(s: dict[str, Any]) -> dict[str, Any]:
        return {"id": s["id"], **s["record"], "arm": s["arm"], "iteration": s["iteration"], "reward": s["reward"]}

    # -- one item, one batch --------------------------------------------------------------
    def _attempt(self, arm: Arm, item_id: str, iteration: int, generated: tuple[Attempt, float]) -> dict[str, Any]:
        """Validate one generated item (in the driver: the novelty validator remembers what passed)."""
        att, gen_s = generated
        t0 = time.perf_counter()
        result: SuiteResult | None = None
        if att.record is not None:
            result = self.suite.run({"id": item_id, **att.record}, item_id=item_id)
        reward = item_reward(self.cfg.reward, self.suite, result)
        return {"id": item_id, "iteration": iteration, "arm": arm.name, "temperature": arm.temperature,
                "malformed": att.record is None, "error": att.error, "accepted": bool(result and result.passed),
                "failed": result.failed if result else ["malformed"], "reward": reward,
                "record": att.record, "validation": result.to_dict() if result else None,
                "raw": att.raw[:1000] if att.record is None else "", "meta": att.meta,
                "tokens": att.prompt_tokens + att.completion_tokens, "latency_s": round(att.latency_s, 3),
                "wall_s": round(gen_s + time.perf_counter() - t0, 3)}

    def rounds(self) -> Iterator[list[Item]]:
        """One router pull per round, until the target count of accepted items or the iteration cap.

        The batch's items are independent given the arm (facets are drawn per item id, calls
        seeded by it), so they are generated on the executor; validation (novelty remembers what
        passed), the writes and the router update stay in the driver, in item order. A resumed
        run's stored attempts of an unfinished iteration are reused (the router is seeded per
        iteration, so it picks the same arm) and only the missing ones are generated."""
        target, cap = self.cfg.recipe.target_count, self.cfg.loop.max_iterations
        while self.state.collected < target and self.state.iteration < cap:
            it = self.state.iteration
            self._choice = self.router.choose(self.state)
            self._t0 = time.perf_counter()
            n = min(self.cfg.loop.batch_size, target - self.state.collected)
            ids = [f"it{it:04d}-{j:02d}" for j in range(n)]
            for s in self.sample_log:
                if s["iteration"] == it and s["id"] in ids and s["arm"] != self._choice.arm:
                    raise RuntimeError(f"resume mismatch: {s['id']} was made by {s['arm']}, "
                                       f"router now picks {self._choice.arm}")
            yield [Item(i, {"arm": self._choice.arm, "id": i}) for i in ids]

    work = staticmethod(generate_item_work)

    def commit(self, item: Item, result: tuple[Attempt, float]) -> Commit:
        s = self._attempt(self.arms[self._choice.arm], item.id, self.state.iteration, result)
        self.sample_log.append(s)
        records = {"samples.jsonl": [s]}
        if s["accepted"]:
            records["dataset.jsonl"] = [self._dataset_record(s)]
        return Commit(records=records, progress=1 if s["accepted"] else 0)

    def end_round(self, items: list[Item]) -> Commit:
        it, choice = self.state.iteration, self._choice
        arm = self.arms[choice.arm]
        by_id = {s["id"]: s for s in self.sample_log if s["iteration"] == it}
        batch = [by_id[i.id] for i in items]
        accepted = sum(s["accepted"] for s in batch)
        rewards = [s["reward"] for s in batch]
        acc = ds = None
        if self.scorer is not None:
            last = self.iter_log[-1] if self.iter_log else None
            prev = last["dataset_accuracy"] if last and last["collected"] > 0 else None  # None: no data before
            acc = self.scorer.accuracy(self.dataset.read())
            ds = downstream_batch_reward(self.cfg.reward.downstream, prev, acc, accepted)
        reward = batch_reward(self.cfg.reward, rewards, ds)
        rec = {"iteration": it, "arm": arm.name, "reason": choice.reason, "epsilon": choice.epsilon, "n": len(items),
               "accepted": accepted, "malformed": sum(s["malformed"] for s in batch),
               "item_reward": round(sum(rewards) / len(rewards), 6), "downstream_reward": ds,
               "dataset_accuracy": acc, "reward": reward, "collected": self.state.collected + accepted,
               "wall_s": round(time.perf_counter() - self._t0, 2)}
        if choice.samples is not None:  # thompson: the posterior draws behind the choice
            rec["thompson_draws"] = choice.samples
        self.iter_log.append(rec)
        self.state.update(arm.name, reward, accepted)
        metrics = {**{k: v for k, v in rec.items() if k not in ("iteration", "thompson_draws")},
                   **{f"thompson/{a}": v for a, v in (choice.samples or {}).items()},
                   **{f"pulls/{a}": p for a, p in self.state.pulls.items()}}
        return Commit(records={"iterations.jsonl": [rec]}, metrics=metrics, step=it,
                      state={"feedback": self.state.to_dict(), "context": self.context.to_dict()},
                      postfix={"arm": rec["arm"], "reward": f"{rec['reward']:.2f}"})

    def announce(self) -> str:
        return (f"recipe {self.cfg.recipe.domain!r}: target {self.cfg.recipe.target_count}, arms {list(self.arms)}, "
                f"router {self.cfg.router.strategy}" + (f"; resuming at iteration {self.state.iteration} with "
                                                        f"{self.state.collected} accepted" if self.resumed_items else ""))

    def progress_total(self) -> int:
        return self.cfg.recipe.target_count

    def progress_done(self) -> int:
        return self.state.collected

    def report(self, summary: dict[str, Any]) -> None:
        print_summary(summary)

    # -- summary ----------------------------------------------------------------------------
    def arm_stats(self) -> list[dict[str, Any]]:
        per: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for s in self.sample_log:
            per[s["arm"]].append(s)
        rows = []
        for name, arm in self.arms.items():
            ss = per.get(name, [])
            n = len(ss)
            fails = Counter(f for s in ss if not s["accepted"] for f in s["failed"][:1])
            rows.append({"arm": name, "family": arm.family, "temperature": arm.temperature,
                         "pulls": self.state.pulls[name],
                         "mean_reward": None if self.state.mean(name) is None else round(self.state.mean(name), 4),
                         "items": n, "accepted": sum(s["accepted"] for s in ss),
                         "malformed": sum(s["malformed"] for s in ss),
                         "acceptance_rate": round(sum(s["accepted"] for s in ss) / n, 4) if n else None,
                         "top_rejection": fails.most_common(1)[0][0] if fails else None})
        return rows

    def summary(self) -> dict[str, Any]:
        arms = self.arm_stats()
        n = len(self.sample_log)
        accepted = [s for s in self.sample_log if s["accepted"]]
        pulled = [a for a in arms if a["pulls"]]
        best = max(pulled, key=lambda a: (a["mean_reward"] or 0)) if pulled else None
        most = max(arms, key=lambda a: a["pulls"])
        texts = [s["record"]["text"] for s in accepted]
        key = self.context.label_facet
        labels = [str(s["record"].get(key)) for s in accepted] if key else None
        out: dict[str, Any] = {
            "recipe": {"domain": self.cfg.recipe.domain, "target_count": self.cfg.recipe.target_count},
            "context": self.context.to_dict(),
            "iterations": self.state.iteration, "attempts": n, "accepted": len(accepted),
            "target_reached": len(accepted) >= self.cfg.recipe.target_count,
            "acceptance_rate": round(len(accepted) / n, 4) if n else None,
            "malformed": sum(s["malformed"] for s in self.sample_log),
            "arms": arms, "best_arm_by_mean_reward": best["arm"] if best else None,
            "most_pulled_arm": most["arm"], "router": self.cfg.router.model_dump(),
            "validator_counts": validation_counts([s["validation"] for s in self.sample_log if s["validation"]]),
            "diversity": diversity_report(texts, labels, num_categories=len(self.context.facets[key]) if key else None)
            if texts else {},
            "resumed_from_items": self.resumed_items,
        }
        if self.reporter is not None:
            out["downstream_heldout"] = self.reporter.report([s["record"] for s in accepted])
        out["plots"] = write_plots(self.ctx.run_dir, self.iter_log, list(self.arms))
        write_arm_table(self.ctx.run_dir / "arms.csv", arms)
        return out


class _GenerationEnv:
    """A worker's generation-only env: its own generator model (cached, ledgered in memory), context, arms."""

    def __init__(self, cfg: BanditConfig, model: Model | None):
        self.cfg = cfg
        self.ctx = RunContext.for_worker(cfg)
        self.model = self.ctx.wrap(model, "generator") if model is not None else self.ctx.model("generator", cfg.models.generator)
        self.context = extract_context(cfg.recipe, cfg.validators)
        self.arms = {a.name: a for a in build_arms(self.context, cfg.arms.profiles, cfg.arms.include,
                                                   cfg.arms.naive_output)}


class BanditWorkerFactory:
    def __init__(self, cfg: BanditConfig, model: Model | None = None):
        self.cfg, self.model = cfg, model

    def __call__(self) -> _GenerationEnv:
        return _GenerationEnv(self.cfg, self.model)


ARM_COLUMNS = ["arm", "family", "temperature", "pulls", "mean_reward", "items", "accepted", "malformed",
               "acceptance_rate", "top_rejection"]


def write_arm_table(path: Any, arms: list[dict[str, Any]]) -> None:
    """The per-arm summary as CSV next to summary.json (for spreadsheets and the README)."""
    import csv
    import io

    from ads.store import atomic_write_text

    buf = io.StringIO()
    w = csv.DictWriter(buf, ARM_COLUMNS, extrasaction="ignore", lineterminator="\n")
    w.writeheader()
    w.writerows(arms)
    atomic_write_text(path, buf.getvalue())


def print_summary(summary: dict[str, Any]) -> None:
    rows = [[a["arm"], f"{a['temperature']:.2f}", str(a["pulls"]),
             "-" if a["mean_reward"] is None else f"{a['mean_reward']:.3f}", str(a["items"]), str(a["accepted"]),
             str(a["malformed"]), "-" if a["acceptance_rate"] is None else f"{a['acceptance_rate']:.2f}",
             a["top_rejection"] or "-"] for a in summary["arms"]]
    print_table(f"Arms after {summary['iterations']} iterations ({summary['run_id']})",
                ["arm", "temp", "pulls", "mean reward", "items", "accepted", "malformed", "accept rate",
                 "top rejection"], rows)
    print(f"accepted {summary['accepted']}/{summary['attempts']} attempts (acceptance rate "
          f"{summary['acceptance_rate']}), {summary['malformed']} malformed; most pulls: {summary['most_pulled_arm']}; "
          f"best mean reward: {summary['best_arm_by_mean_reward']}; wall {summary['wall_s']} s")
    if "downstream_heldout" in summary:
        d = summary["downstream_heldout"]
        print(f"downstream: classifier trained on the {d['synthetic']['used']} accepted texts scores "
              f"{d['synthetic_accuracy']:.3f} on {d['heldout_n']} {d.get('source', 'real held-out texts')} "
              f"(majority {d['majority_accuracy']:.3f}, trained on real {d['real_upper_bound']:.3f})")
    print(f"outputs in {summary['run_dir']}")


def run(cfg: BanditConfig, ctx: RunContext, model: Model | None = None) -> dict[str, Any]:
    return run_generator(BanditGenerator, cfg, ctx, model=model)
