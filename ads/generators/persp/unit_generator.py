"""The perspectives generator on the contract: one item per (input x perspective) unit.

Every unit is independent of the others (calls are seeded by the unit id), so the whole run
is a single round and the runner may run its units on any executor: results come back in
unit order and the runner appends each one to responses.jsonl, skipping on resume the units
already stored there. A unit whose model calls keep failing is not stored (it is listed in
the summary's `failed_units`), so the next `--resume` tries it again. dataset.json, the
plots and the report are built from the stored records at the end (persp/dataset_file.py).
"""
from __future__ import annotations

import time
from collections import defaultdict
from typing import Any, Callable, Iterator

from ads.config import ConfigError
from ads.generators.persp.dataset_file import assemble, write_dataset
from ads.generators.persp.engine import Engine, TokenCounter, UnitFailed, estimate_tokens, unit_id
from ads.generators.persp.inputs import TaskInput, load_items, sample_tasks
from ads.generators.persp.provider import choose
from ads.generators.persp.run_report import print_report, write_plots
from ads.generators.persp.settings import Perspective, PerspectivesConfig, effective
from ads.harness.contract import Commit, Generator, Item, Store
from ads.harness.runner import run_generator
from ads.run import RunContext
from ads.store import JsonlStore, atomic_write_json
from models.base import Model

RESPONSES = "responses.jsonl"


def build_engine(cfg: PerspectivesConfig, ctx: RunContext, perspectives: list[Perspective], *,
                 model: Model | None = None, judge_model: Model | None = None,
                 sleep: Callable[[float], None] = time.sleep) -> tuple[Engine, str, str]:
    """The unit engine on `ctx`'s models (the driver's, or a Ray/threads worker's own): (engine, provider, how)."""
    if model is None:
        choice = choose(cfg.models.generator, cfg.api_provider, cfg.models_dir)
        provider, provider_how = choice.provider, choice.how
        gen = ctx.model("generator", choice.model)
    else:
        provider, provider_how = "injected", f"a {type(model).__name__} passed in code"
        gen = ctx.wrap(model, "generator")
    judge = None
    if cfg.quality.judge.enabled:
        from ads.quality import Judge, JudgeConfig
        from ads.quality.judge import FAITHFULNESS_CRITERIA

        if judge_model is not None:
            jm = ctx.wrap(judge_model, "judge")
        elif cfg.models.judge is not None:
            jm = ctx.model("judge", cfg.models.judge)
        elif model is not None:
            jm = ctx.wrap(model, "judge")
        else:  # the generator's own model: the pool loads it once for both roles
            jm = ctx.model("judge", choice.model)
        jc = JudgeConfig(criteria=list(cfg.quality.judge.criteria or FAITHFULNESS_CRITERIA),
                         max_attempts=cfg.quality.judge.max_attempts, max_tokens=cfg.quality.judge.max_tokens)
        judge = Judge(jm, jc)
    from ads.quality import ValidatorSuite

    suite = ValidatorSuite.from_config(cfg.quality.validators, judge_model=judge.model if judge else None)
    engine = Engine(model=gen, task_description=cfg.task_description, perspectives=perspectives,
                    max_tokens=cfg.models.generator.max_tokens, temperature=cfg.models.generator.temperature, seed=cfg.seed,
                    retry=cfg.retry, quality=cfg.quality, suite=suite, judge=judge, output=cfg.output_format,
                    sleep=sleep, client_retries=has_client_retries(gen))
    return engine, provider, provider_how


def has_client_retries(model: Any) -> bool:
    """Does the backend retry transient failures itself? The OpenAI-compatible client does (its
    `max_retries`, with backoff and Retry-After); retrying its final ModelError again here
    multiplied the attempts (3 x 5 = 15 HTTP requests per call), so then the client is the only layer."""
    from ads.generators.persp.engine import _find_attr

    return _find_attr(model, "max_retries") is not None or _find_attr(model, "members") is not None


# --- units on the executor (ads/executor.py) -------------------------------------------------------
class _UnitEnv:
    """What a unit needs: an engine; `ledger` is a worker's in-memory ledger (None: the driver's engine,
    whose models charge the run's ledger directly)."""

    def __init__(self, engine: Engine, ledger: Any = None):
        self.engine, self.ledger = engine, ledger


def unit_work(env: _UnitEnv, unit: tuple[TaskInput, int]) -> tuple[bool, Any]:
    """(True, record) or (False, why) for one (input, perspective) unit; a failed unit is left for resume."""
    t, i = unit
    try:
        return True, env.engine.run_unit(t, i)
    except UnitFailed as e:
        return False, str(e)


class _SharedEngine:
    """Local threads: every thread uses the driver's engine (one model copy, as the old thread pool did)."""

    def __init__(self, env: _UnitEnv):
        self.env = env

    def __call__(self) -> _UnitEnv:
        return self.env


class PerspWorkerFactory:
    """A Ray actor's / thread's own engine: its own models from the config (or the injected test models),
    its own request cache handle and an in-memory ledger whose entries the executor sends to the driver."""

    def __init__(self, cfg: PerspectivesConfig, model: Model | None = None, judge_model: Model | None = None):
        self.cfg, self.model, self.judge_model = cfg, model, judge_model

    def __call__(self) -> _UnitEnv:
        ctx = RunContext.for_worker(self.cfg)
        engine, _, _ = build_engine(self.cfg, ctx, effective(self.cfg)[0], model=self.model,
                                    judge_model=self.judge_model)
        return _UnitEnv(engine, ctx.ledger)


class PerspectivesGenerator(Generator):
    """Items are (input, perspective) units, all in one round; see the module docstring."""

    kind = "perspectives"
    config_class = PerspectivesConfig
    stores = (Store(RESPONSES),)
    progress_unit, progress_desc = "resp", "perspectives"

    def __init__(self, cfg: PerspectivesConfig, ctx: RunContext, stores: dict[str, JsonlStore], *,
                 model: Model | None = None, judge_model: Model | None = None,
                 sleep: Callable[[float], None] = time.sleep):
        super().__init__(cfg, ctx, stores)
        self.responses = stores[RESPONSES]
        self.perspectives, n_samples = effective(cfg)
        items = load_items(cfg.data_config.input_data_path, cfg.task_type)
        self.tasks = sample_tasks(items, n_samples, cfg.seed, cfg.data_config.shuffle,
                                  cfg.data_config.max_input_chars)
        # `model` / `judge_model`: backends built in code (tests); they are still cached and ledgered
        self.engine, self.provider, self.provider_how = build_engine(cfg, ctx, self.perspectives, model=model,
                                                                     judge_model=judge_model, sleep=sleep)
        n_ctx = cfg.models.generator.n_ctx if self.provider == "local" else None
        self.estimate = estimate_tokens(TokenCounter(self.engine.model), cfg.task_description, self.perspectives,
                                        self.tasks, cfg.models.generator.max_tokens, n_ctx)
        self._factory = PerspWorkerFactory(cfg, model, judge_model)
        self._env = _UnitEnv(self.engine)
        self.failures: list[dict[str, str]] = []
        self.counts: dict[str, int] = defaultdict(int)
        self.already = 0
        self.dataset: dict[str, Any] | None = None

    @property
    def units_total(self) -> int:
        return len(self.tasks) * len(self.perspectives)

    def _local(self) -> bool:
        ex = getattr(self.cfg, "executor", None)
        return ex is None or ex.kind == "local"

    # -- resume -----------------------------------------------------------------------------
    def restore(self) -> None:
        """Refuse stored units made from other inputs, then write what this run will work from.

        A unit's record keeps the hash of its input: when the input file changed since the
        interrupted run, its stored responses answer texts the run no longer has."""
        by_task = {t.id: t for t in self.tasks}
        stored = self.responses.read()
        for r in stored:
            t = by_task.get(r["task_id"])
            if t is not None and r.get("input_sha") != t.sha:
                raise ConfigError(f"{self.responses.path}: record {r['id']} was made from a different input than "
                                  f"{self.cfg.data_config.input_data_path} now holds (the file changed since the "
                                  f"interrupted run); use --overwrite to start again")
        self.already = len({r["id"] for r in stored})
        atomic_write_json(self.ctx.run_dir / "inputs.json", [t.to_dict() for t in self.tasks])
        atomic_write_json(self.ctx.run_dir / "estimate.json", self.estimate)
        stored_ids = self.responses.ids()
        pending = sum(unit_id(t.id, i) not in stored_ids for t in self.tasks for i in range(len(self.perspectives)))
        self._threads = self.cfg.models.generator.max_concurrency if self._local() and pending > 1 else 1

    def executor(self) -> Any:
        """executor.kind local with `model_config.max_concurrency` > 1: the units run on that many
        threads sharing the driver's engine, so an HTTP endpoint has that many requests in flight."""
        if self._threads > 1:
            from ads.executor import ThreadExecutor

            return ThreadExecutor(workers=self._threads)
        return self.ctx.executor()

    # -- work -------------------------------------------------------------------------------
    def rounds(self) -> Iterator[list[Item]]:
        yield [Item(unit_id(t.id, i), (t, i)) for t in self.tasks for i in range(len(self.perspectives))]

    work = staticmethod(unit_work)

    def env(self) -> _UnitEnv:
        return self._env

    def worker_factory(self) -> Callable[[], _UnitEnv]:
        # local threads share the driver's engine; threads / Ray workers build their own from the config
        return _SharedEngine(self._env) if self._local() else self._factory

    def commit(self, item: Item, result: tuple[bool, Any]) -> Commit:
        ok, out = result
        c = self.counts
        records = {}
        if ok:
            records[RESPONSES] = [out]
            c[out["status"]] += 1
            c["completion_tokens"] += out["usage"]["completion_tokens"]
            c["prompt_tokens"] += out["usage"]["prompt_tokens"]
        else:
            self.failures.append({"id": item.id, "error": out})
            c["failed"] += 1
        c["done"] += 1
        step = self.already + c["done"]
        return Commit(records=records, progress=1, step=step,
                      metrics={"units_done": step, "ok": c["ok"], "rejected": c["rejected"], "failed": c["failed"],
                               "prompt_tokens": c["prompt_tokens"], "completion_tokens": c["completion_tokens"]},
                      postfix={"ok": c["ok"], "rejected": c["rejected"], "failed": c["failed"]})

    def end_round(self, items: list[Item]) -> Commit:
        return Commit(state={"units_total": self.units_total, "units_done": len(self.responses.ids()),
                             "units_failed": len(self.failures)})

    # -- progress and results -----------------------------------------------------------------
    def announce(self) -> str:
        cfg, est = self.cfg, self.estimate
        return (f"{cfg.task_type}: {len(self.tasks)} inputs x {len(self.perspectives)} perspectives on "
                f"{cfg.models.generator.model_name} ({self.provider}: {self.provider_how}); estimated "
                f"{est['prompt_tokens']} prompt + <= {est['max_completion_tokens']} completion tokens in "
                f"{est['calls']} calls [{est['method']}]"
                + (f"; {est['units_over_context']} units may not fit n_ctx" if est["units_over_context"] else ""))

    def progress_total(self) -> int:
        return self.units_total

    def progress_done(self) -> int:
        return self.already

    def summary(self) -> dict[str, Any]:
        records = {r["id"]: r for r in self.responses}
        self.dataset, quality = assemble(self.cfg, self.tasks, self.perspectives, records, self.provider,
                                         self.estimate, self.ctx, self.failures)
        out, copy = write_dataset(self.cfg, self.dataset, self.ctx.run_dir)
        write_plots(self.ctx.run_dir, self.perspectives, quality, self.tasks)
        md = self.dataset["metadata"]
        return {"dataset": str(out), "copy": str(copy) if copy else None, "provider": self.provider,
                "inputs": len(self.tasks), "perspectives": len(self.perspectives), "quality": quality,
                "estimated_tokens": self.estimate, "token_usage": md["token_usage"], "api_calls": md["api_calls"],
                "failed_units": self.failures}

    def report(self, summary: dict[str, Any]) -> None:
        assert self.dataset is not None  # summary() ran first
        print_report(self.cfg.task_type, summary["run_id"], summary["quality"], self.dataset, summary["dataset"])


def run(cfg: PerspectivesConfig, ctx: RunContext, *, model: Model | None = None, judge_model: Model | None = None,
        sleep: Callable[[float], None] = time.sleep, progress: bool = True) -> dict[str, Any]:
    """Generate (or finish generating) the dataset of one config into ctx.run_dir.

    `progress`: True shows the runner's bar (on a terminal), False never."""
    return run_generator(PerspectivesGenerator, cfg, ctx, progress=None if progress else False, model=model,
                         judge_model=judge_model, sleep=sleep)
