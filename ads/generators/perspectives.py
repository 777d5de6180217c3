"""Multi-perspective generation: each input answered by several configured agent perspectives.

For translation, summarization or peer review, every input (a sentence, an article, a paper)
gets one response per perspective: faithful ones and deliberately manipulated ones ("Low
Effort", "Fabricated Detail", ...), for downstream evaluation experiments. A perspective may
have a reading step (notes taken on the input) that runs before its strategy step.

Run it three ways:
* `main.py generate configs/perspectives/summarization_wiki.yaml [--set test=true] [--resume]`;
* `python -m ads.generators.perspectives CONFIG [--test] [--resume]` (also `--config CONFIG`, the
  original tool's spelling; seed-style JSON configs without `kind` load as they are);
* `run_pipeline(config, test=True)` -> summary dict, or the original object API
  `PerspectivesPipeline(config).run()` / `await PerspectivesPipeline(config).generate_dataset()`.

Outputs in the run folder: `dataset.json` (the seed's format: task_type, task_description,
agent_perspectives, tasks[{context, responses, preparations}], metadata{model_config,
api_provider, data_config, generation_time, token_usage, api_calls, estimated_tokens}, plus
per-response statuses, an estimate-vs-actual check and quality figures), `responses.jsonl`
(one record per input x perspective, appended as each finishes; `--resume` after a kill skips
what is there and the dataset is assembled from it), `inputs.json`, `estimate.json`, the
ledger/metrics/summary files and two PNG plots.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from collections import defaultdict
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Literal

from pydantic import ConfigDict, Field, model_validator

from ads.config import ConfigError, RunConfig, apply_overrides, read_yaml, validate
from ads.generators.persp.config import (DataConfig, OutputFormat, Perspective, PerspModelConfig, Provider,
                                         QualityConfig, RetryConfig)
from ads.generators.persp.engine import Engine, TokenCounter, UnitFailed, estimate_tokens, unit_id
from ads.generators.persp.inputs import TaskInput, check_input_path, load_items, sample_tasks
from ads.generators.persp.provider import choose
from ads.run import RunContext
from ads.store import JsonlStore, atomic_write_json
from models.base import Model

TEST_SAMPLES, TEST_PERSPECTIVES = 10, 4


class PerspectivesConfig(RunConfig):
    model_config = ConfigDict(extra="forbid", strict=True, validate_assignment=True, populate_by_name=True)

    kind: Literal["perspectives"] = "perspectives"
    name: str = "perspectives"
    task_type: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_\-]+$")
    task_description: str = Field(min_length=1)
    generator: PerspModelConfig = Field(default_factory=PerspModelConfig, alias="model_config")
    agent_perspectives: list[Perspective] = Field(min_length=1)
    data_config: DataConfig
    add_references: bool = False  # prepend the input's reference as a first "Reference" agent
    api_provider: Provider = "auto"
    output_format: OutputFormat | None = None  # structured responses (json_schema) instead of text
    test: bool = False  # the original --test: 10 samples, first 4 perspectives
    retry: RetryConfig = RetryConfig()
    quality: QualityConfig = QualityConfig()
    output_dir: str | None = None  # also write [task_type]_[model]_[timestamp].json here (e.g. data/agents)

    @model_validator(mode="after")
    def _input_exists(self) -> "PerspectivesConfig":
        # Checked when the config loads, so a missing file is one error before any run folder or
        # model exists. The message names the file and the format to put there.
        check_input_path(self.data_config.input_data_path, self.task_type)
        return self


# --- run -----------------------------------------------------------------------------------------
def effective(cfg: PerspectivesConfig) -> tuple[list[Perspective], int]:
    if cfg.test:  # the original tool's --test: 10 samples whatever sample_size says, first 4 perspectives
        return cfg.agent_perspectives[:TEST_PERSPECTIVES], TEST_SAMPLES
    return list(cfg.agent_perspectives), cfg.data_config.sample_size


def build_engine(cfg: PerspectivesConfig, ctx: RunContext, perspectives: list[Perspective], *,
                 model: Model | None = None, judge_model: Model | None = None,
                 sleep: Callable[[float], None] = time.sleep) -> tuple[Engine, str, str]:
    """The unit engine on `ctx`'s models (the driver's, or a Ray/threads worker's own): (engine, provider, how)."""
    if model is None:
        choice = choose(cfg.generator, cfg.api_provider, cfg.models_dir)
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
        elif cfg.quality.judge.model is not None:
            jm = ctx.model("judge", cfg.quality.judge.model)
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
                    max_tokens=cfg.generator.max_tokens, temperature=cfg.generator.temperature, seed=cfg.seed,
                    retry=cfg.retry, quality=cfg.quality, suite=suite, judge=judge, output=cfg.output_format,
                    sleep=sleep, client_retries=has_client_retries(gen))
    return engine, provider, provider_how


def has_client_retries(model: Any) -> bool:
    """Does the backend retry transient failures itself? The OpenAI-compatible client does (its
    `max_retries`, with backoff and Retry-After); retrying its final ModelError again here
    multiplied the attempts (3 x 5 = 15 HTTP requests per call), so then the client is the only layer."""
    from ads.generators.persp.engine import _find_attr

    return _find_attr(model, "max_retries") is not None or _find_attr(model, "members") is not None


def run(cfg: PerspectivesConfig, ctx: RunContext, *, model: Model | None = None, judge_model: Model | None = None,
        sleep: Callable[[float], None] = time.sleep, progress: bool = True) -> dict[str, Any]:
    """Generate (or finish generating) the dataset of one config into ctx.run_dir.

    `model` / `judge_model` inject a backend (tests); they are still cached and ledgered.
    """
    perspectives, n_samples = effective(cfg)
    items = load_items(cfg.data_config.input_data_path, cfg.task_type)
    tasks = sample_tasks(items, n_samples, cfg.seed, cfg.data_config.shuffle, cfg.data_config.max_input_chars)
    engine, provider, provider_how = build_engine(cfg, ctx, perspectives, model=model, judge_model=judge_model,
                                                  sleep=sleep)
    gen = engine.model

    d = ctx.run_dir
    atomic_write_json(d / "inputs.json", [t.to_dict() for t in tasks])
    counter = TokenCounter(gen)
    n_ctx = cfg.generator.n_ctx if provider == "local" else None
    estimate = estimate_tokens(counter, cfg.task_description, perspectives, tasks, cfg.generator.max_tokens, n_ctx)
    atomic_write_json(d / "estimate.json", estimate)
    print(f"{cfg.task_type}: {len(tasks)} inputs x {len(perspectives)} perspectives on {cfg.generator.model_name} "
          f"({provider}: {provider_how}); estimated {estimate['prompt_tokens']} prompt + <= "
          f"{estimate['max_completion_tokens']} completion tokens in {estimate['calls']} calls "
          f"[{estimate['method']}]" + (f"; {estimate['units_over_context']} units may not fit n_ctx"
                                       if estimate["units_over_context"] else ""))

    store = JsonlStore(d / "responses.jsonl")
    by_task = {t.id: t for t in tasks}
    done = {r["id"]: r for r in store}
    for r in done.values():
        t = by_task.get(r["task_id"])
        if t is not None and r.get("input_sha") != t.sha:
            raise ConfigError(f"{store.path}: record {r['id']} was made from a different input than "
                              f"{cfg.data_config.input_data_path} now holds (the file changed since the interrupted "
                              f"run); use --overwrite to start again")
    pending = [(t, i) for t in tasks for i in range(len(perspectives)) if unit_id(t.id, i) not in done]
    failures = _execute(cfg, engine, pending, store, ctx, total=len(tasks) * len(perspectives), already=len(done),
                        factory=PerspWorkerFactory(cfg, model, judge_model), progress=progress)

    records = {r["id"]: r for r in store}
    dataset, quality = assemble(cfg, tasks, perspectives, records, provider, estimate, ctx, failures)
    out = d / "dataset.json"
    atomic_write_json(out, dataset)
    copy = None
    if cfg.output_dir:
        stamp = datetime.now().strftime("%Y%m%d_%H%M%S")
        model_slug = Path(cfg.generator.model_name).name.replace("/", "_")
        copy = Path(cfg.output_dir) / f"{cfg.task_type}_{model_slug}_{stamp}.json"
        atomic_write_json(copy, dataset)
    write_plots(ctx, perspectives, quality, records, tasks)
    ctx.save_state({"units_total": len(tasks) * len(perspectives), "units_done": len(records),
                    "units_failed": len(failures)})
    from ads.export.at_end import export_at_end

    export_at_end(ctx, {"quality": quality})  # RUN_DIR/export (HF dataset + card), W&B artifact
    summary = ctx.finish({"dataset": str(out), "copy": str(copy) if copy else None, "provider": provider,
                          "inputs": len(tasks), "perspectives": len(perspectives), "quality": quality,
                          "estimated_tokens": estimate, "token_usage": dataset["metadata"]["token_usage"],
                          "api_calls": dataset["metadata"]["api_calls"], "failed_units": failures})
    print_report(cfg, ctx, quality, dataset, out)
    return summary


def _execute(cfg: PerspectivesConfig, engine: Engine, pending: list[tuple[TaskInput, int]], store: JsonlStore,
             ctx: RunContext, *, total: int, already: int, factory: "PerspWorkerFactory",
             progress: bool) -> list[dict[str, str]]:
    """Run the (independent) units on the executor; records are appended by this thread in unit order.

    executor.kind local: `generator.max_concurrency` threads share this engine (one model, as before;
    1: in this thread). threads / ray: `executor.workers` workers, each with its own engine built from
    the config (ads/executor.py). A kill loses only the units not yet written (their finished calls
    replay from the cache)."""
    from tqdm import tqdm

    from ads.executor import ThreadExecutor

    failures: list[dict[str, str]] = []
    bar = tqdm(total=total, initial=already, desc="perspectives", unit="resp", disable=not progress,
               dynamic_ncols=True)
    counts: dict[str, int] = defaultdict(int)
    done_now = 0
    own = None
    ex = ctx.executor()
    if ex.kind == "local":
        factory = _SharedEngine(_UnitEnv(engine))  # type: ignore[assignment]
        if cfg.generator.max_concurrency > 1 and len(pending) > 1:
            ex = own = ThreadExecutor(workers=cfg.generator.max_concurrency)
    try:
        results = ex.imap(unit_work, pending, env=_UnitEnv(engine), factory=factory, ledger=ctx.ledger)
        for (t, i), (ok, out) in zip(pending, results):
            if not ok:
                failures.append({"id": unit_id(t.id, i), "error": out})
                counts["failed"] += 1
            else:
                store.append(out)
                counts[out["status"]] += 1
                counts["completion_tokens"] += out["usage"]["completion_tokens"]
                counts["prompt_tokens"] += out["usage"]["prompt_tokens"]
            done_now += 1
            bar.update(1)
            bar.set_postfix(ok=counts["ok"], rejected=counts["rejected"], failed=counts["failed"])
            ctx.tracker.log({"units_done": already + done_now, "ok": counts["ok"], "rejected": counts["rejected"],
                             "failed": counts["failed"], "prompt_tokens": counts["prompt_tokens"],
                             "completion_tokens": counts["completion_tokens"]}, step=already + done_now)
    finally:
        if own is not None:
            own.close()
    bar.close()
    return failures


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


# --- the dataset file ----------------------------------------------------------------------------
def assemble(cfg: PerspectivesConfig, tasks: list[TaskInput], perspectives: list[Perspective],
             records: dict[str, dict[str, Any]], provider: str, estimate: dict[str, Any], ctx: RunContext,
             failures: list[dict[str, str]]) -> tuple[dict[str, Any], dict[str, Any]]:
    from ads.quality import NoveltyFilter, diversity_report
    from ads.quality.text import shingles

    agents = [p.model_dump() for p in perspectives]
    if cfg.add_references:
        agents = [{"condition": "Reference", "reading": None, "strategy": None, "temperature": None}] + agents
    out_tasks = []
    per = {p.condition: defaultdict(float) for p in perspectives}
    texts: dict[str, list[str]] = {p.condition: [] for p in perspectives}
    judged: dict[str, list[float]] = {p.condition: [] for p in perspectives}
    for t in tasks:
        responses, preps, statuses, flags, scores = [], [], [], [], []
        if cfg.add_references:
            responses.append(t.reference)
            preps.append(None)
            statuses.append("reference" if t.reference is not None else "missing")
            flags.append(None)
            scores.append(None)
        nov = NoveltyFilter(cfg.quality.novelty_threshold, k=3)  # per input: near-duplicates among siblings
        input_shingles = shingles(t.input, 3)
        for i, p in enumerate(perspectives):
            r = records.get(unit_id(t.id, i))
            st = r["status"] if r else "missing"
            resp = r["response"] if r else None
            responses.append(resp)
            preps.append(r["preparation"] if r else None)
            statuses.append(st)
            stats = per[p.condition]
            stats[st] += 1
            flag = None
            if isinstance(resp, (str, dict)):
                text = resp if isinstance(resp, str) else json.dumps(resp, ensure_ascii=False)
                texts[p.condition].append(text)
                stats["words"] += len(text.split())
                # containment, not Jaccard: a response that copies the first half of the input is a copy
                own = shingles(text, 3)
                chk = nov.check_and_add(f"p{i}", text)
                if len(own & input_shingles) / max(1, len(own)) >= cfg.quality.novelty_threshold:
                    flag = "copy_of_input"
                    stats["copy_of"] += 1
                elif not chk.is_novel:
                    flag = f"near_duplicate_of_{perspectives[int(chk.nearest_id[1:])].condition}"
                    stats["near_duplicate_of"] += 1
            flags.append(flag)
            j = (r or {}).get("judge")
            score = j.get("overall") if j and j.get("ok") else None
            if score is not None:
                judged[p.condition].append(score)
            scores.append(score)
        task_out = {"id": t.id, "context": t.input, "reference": t.reference, "responses": responses,
                    "preparations": preps, "statuses": statuses, "flags": flags,
                    "metadata": {**t.extra, "truncated": t.truncated}}
        if cfg.quality.judge.enabled:
            task_out["judge_scores"] = scores
        out_tasks.append(task_out)

    quality: dict[str, Any] = {"by_perspective": {}}
    for p in perspectives:
        s = per[p.condition]
        n_resp = len(texts[p.condition])
        quality["by_perspective"][p.condition] = {
            "ok": int(s["ok"]), "rejected": int(s["rejected"]), "missing": int(s["missing"]),
            "mean_words": round(s["words"] / n_resp, 1) if n_resp else None,
            "copy_of_input": int(s["copy_of"]), "near_duplicate": int(s["near_duplicate_of"]),
            "judge_mean": round(sum(judged[p.condition]) / len(judged[p.condition]), 3) if judged[p.condition] else None,
            "judged": len(judged[p.condition]),
            "diversity": diversity_report(texts[p.condition]) if n_resp >= 2 else None,
        }
    all_recs = list(records.values())
    reasons = defaultdict(int)
    for r in all_recs:
        for reason in r.get("reasons", []):
            reasons[reason.split(":")[0]] += 1
    quality["totals"] = {"units": len(tasks) * len(perspectives), "ok": sum(r["status"] == "ok" for r in all_recs),
                         "rejected": sum(r["status"] == "rejected" for r in all_recs),
                         "retried": sum(r["attempts"] > 1 for r in all_recs), "failed_this_run": len(failures),
                         "rejection_reasons": dict(reasons)}

    check = estimate_check(estimate, perspectives, tasks, records)
    led = ctx.ledger
    g, j = led.totals(role="generator"), led.totals(role="judge")
    metadata = {
        "model_config": cfg.generator.model_dump(mode="json"),
        "api_provider": provider,
        "data_config": cfg.data_config.model_dump(mode="json"),
        "generation_time": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "token_usage": {"prompt_tokens": g["prompt_tokens"], "completion_tokens": g["completion_tokens"],
                        "total_tokens": g["total_tokens"], "replayed_from_cache_tokens": g["replayed_tokens"],
                        "judge_total_tokens": j["total_tokens"]},
        "api_calls": {"total_calls": g["model_calls"], "cached_calls": g["cached_calls"],
                      "failed_calls": g["failed_calls"], "judge_calls": j["model_calls"]},
        "estimated_tokens": estimate,
        "estimate_check": check,
        "test_mode": cfg.test, "seed": cfg.seed, "run_id": ctx.run_id,
        "add_references": cfg.add_references,
        "output_format": cfg.output_format.model_dump(mode="json") if cfg.output_format else None,
        "quality": quality,
    }
    dataset = {"task_type": cfg.task_type, "task_description": cfg.task_description, "agent_perspectives": agents,
               "tasks": out_tasks, "metadata": metadata}
    return dataset, quality


def estimate_check(estimate: dict[str, Any], perspectives: list[Perspective], tasks: list[TaskInput],
                   records: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """The pre-generation estimate next to what the first pass of each unit actually took.

    Quality retries are extra calls the estimate cannot foresee, so they are compared
    separately; for perspectives with a reading step the estimate is an upper bound.
    """
    by: dict[str, Any] = {}
    actual = retries_prompt = completion = 0
    for i, p in enumerate(perspectives):
        recs = [records[k] for k in (unit_id(t.id, i) for t in tasks) if k in records]
        a = sum(r["usage"].get("first_pass_prompt_tokens", 0) for r in recs)
        by[p.condition] = {"estimated_prompt_tokens": estimate["prompt_tokens_by_perspective"].get(p.condition),
                           "actual_first_pass_prompt_tokens": a, "units": len(recs),
                           "estimate_is": "upper bound (reading notes unknown)" if p.reading else "exact"}
        actual += a
        for r in recs:
            u = r["usage"]
            if not u.get("cached_calls"):  # all computed: what is not first pass went to quality retries
                retries_prompt += max(0, u["prompt_tokens"] - u.get("first_pass_prompt_tokens", 0))
            completion += u["completion_tokens"]
    complete = all(v["units"] == len(tasks) for v in by.values())
    return {"complete": complete, "estimated_prompt_tokens": estimate["prompt_tokens"],
            "actual_first_pass_prompt_tokens": actual,
            "ratio_actual_to_estimate": round(actual / estimate["prompt_tokens"], 4) if estimate["prompt_tokens"] else None,
            "quality_retry_prompt_tokens": retries_prompt,
            "max_completion_tokens_estimated": estimate["max_completion_tokens"],
            "completion_tokens_computed": completion, "by_perspective": by,
            "note": "completion_tokens_computed and quality_retry_prompt_tokens leave out calls replayed from the cache"}


def write_plots(ctx: RunContext, perspectives: list[Perspective], quality: dict[str, Any],
                records: dict[str, dict[str, Any]], tasks: list[TaskInput]) -> None:
    from ads.tracking import plot_curves

    xs = list(range(1, len(perspectives) + 1))
    by = quality["by_perspective"]
    series = {"accepted fraction": (xs, [by[p.condition]["ok"] / max(1, len(tasks)) for p in perspectives])}
    if any(by[p.condition]["judge_mean"] is not None for p in perspectives):
        series["judge mean / 10"] = (xs, [(by[p.condition]["judge_mean"] or 0) / 10 for p in perspectives])
    plot_curves(ctx.run_dir / "perspectives.png", "Per perspective (x = index in agent_perspectives)", series,
                xlabel="perspective", ylabel="fraction")
    words = (xs, [by[p.condition]["mean_words"] or 0 for p in perspectives])
    plot_curves(ctx.run_dir / "response_length.png", "Mean response length per perspective", {"words": words},
                xlabel="perspective", ylabel="words")


def print_report(cfg: PerspectivesConfig, ctx: RunContext, quality: dict[str, Any], dataset: dict[str, Any],
                 out: Path) -> None:
    from ads.report import print_table

    rows = []
    for i, (cond, s) in enumerate(quality["by_perspective"].items(), 1):
        div = s["diversity"] or {}
        rows.append([str(i), cond, f"{s['ok']}/{s['rejected']}/{s['missing']}", str(s["mean_words"]),
                     str(s["copy_of_input"]), str(s["near_duplicate"]),
                     "-" if s["judge_mean"] is None else f"{s['judge_mean']:.2f} (n={s['judged']})",
                     str(div.get("distinct_2", "-"))])
    print_table(f"{cfg.task_type}: responses per perspective ({ctx.run_id})",
                ["#", "condition", "ok/rejected/missing", "mean words", "copies input", "near-dup of sibling",
                 "judge mean", "distinct-2"], rows)
    md = dataset["metadata"]
    tu, ac, est = md["token_usage"], md["api_calls"], md["estimated_tokens"]
    print(f"tokens: {tu['prompt_tokens']} prompt + {tu['completion_tokens']} completion computed "
          f"({tu['replayed_from_cache_tokens']} replayed from cache); estimated before generation: "
          f"{est['prompt_tokens']} prompt, <= {est['max_completion_tokens']} completion; "
          f"{ac['total_calls']} calls ({ac['cached_calls']} cached, {ac['failed_calls']} failed)")
    chk = md["estimate_check"]
    parts = [f"{cond} {v['actual_first_pass_prompt_tokens']}/{v['estimated_prompt_tokens']}"
             for cond, v in chk["by_perspective"].items()]
    print(f"estimate check (actual/estimated first-pass prompt tokens): total "
          f"{chk['actual_first_pass_prompt_tokens']}/{chk['estimated_prompt_tokens']} "
          f"(ratio {chk['ratio_actual_to_estimate']}); " + ", ".join(parts))
    q = quality["totals"]
    print(f"units: {q['ok']} ok, {q['rejected']} rejected ({q['rejection_reasons']}), {q['retried']} retried, "
          f"{q['failed_this_run']} failed this run" + (" (rerun with --resume to retry them)"
                                                       if q["failed_this_run"] else "") + f"; dataset: {out}")


# --- Python API and the original command line ----------------------------------------------------
def load_perspectives_config(source: str | Path | dict[str, Any], overrides: list[str] | None = None,
                             test: bool | None = None) -> PerspectivesConfig:
    """A config from a JSON or YAML file, or a dict; seed-style files need no `kind`."""
    if isinstance(source, dict):
        data, where = dict(source), "<dict config>"
    else:
        path = Path(source)
        if path.suffix == ".json":
            if not path.is_file():
                raise ConfigError(f"{path}: config file not found")
            try:
                data = json.loads(path.read_text(encoding="utf-8"))
            except json.JSONDecodeError as e:
                raise ConfigError(f"{path}: not valid JSON: {e.msg} at line {e.lineno} column {e.colno}") from None
            if not isinstance(data, dict):
                raise ConfigError(f"{path}: the top level must be an object of keys")
        else:
            data = read_yaml(path)
        where = str(path)
    data.setdefault("kind", "perspectives")
    data = apply_overrides(data, overrides or [])
    if test is not None:
        data["test"] = test
    return validate(PerspectivesConfig, data, where)


def run_pipeline(config: str | Path | dict[str, Any] | PerspectivesConfig, *, test: bool | None = None,
                 overrides: list[str] | None = None, resume: bool = False, overwrite: bool = False,
                 run_dir: str | Path | None = None, model: Model | None = None, judge_model: Model | None = None,
                 sleep: Callable[[float], None] = time.sleep, progress: bool = True) -> dict[str, Any]:
    """Python API: generate the dataset of a config (JSON/YAML path, dict or PerspectivesConfig).

    Returns the run summary; `summary["dataset"]` is the path of the assembled dataset JSON.
    `resume=True` continues an interrupted run in its folder, skipping the units already stored.
    `model` injects a backend (it is still cached and ledgered), e.g. a FakeModel in tests.
    """
    if isinstance(config, PerspectivesConfig):
        cfg = config
        if overrides or test is not None:
            data = apply_overrides(cfg.model_dump(mode="json"), overrides or [])
            if test is not None:
                data["test"] = test
            cfg = validate(PerspectivesConfig, data, "<config object>")
    else:
        cfg = load_perspectives_config(config, overrides, test=test)
    ctx = RunContext.create(cfg, resume=resume, overwrite=overwrite, run_dir=run_dir)
    return run(cfg, ctx, model=model, judge_model=judge_model, sleep=sleep, progress=progress)


class PerspectivesPipeline:
    """The original tool's object API: `PerspectivesPipeline(config, test=True).run()` returns the
    dataset path; `await pipeline.generate_dataset()` does the same from asyncio."""

    def __init__(self, config: str | Path | dict[str, Any] | PerspectivesConfig, *, test: bool | None = None,
                 resume: bool = False, overwrite: bool = False, run_dir: str | Path | None = None,
                 model: Model | None = None, judge_model: Model | None = None, progress: bool = True):
        self.config, self.test = config, test
        self.resume, self.overwrite, self.run_dir = resume, overwrite, run_dir
        self.model, self.judge_model, self.progress = model, judge_model, progress
        self.summary: dict[str, Any] | None = None

    def run(self) -> Path:
        self.summary = run_pipeline(self.config, test=self.test, resume=self.resume, overwrite=self.overwrite,
                                    run_dir=self.run_dir, model=self.model, judge_model=self.judge_model,
                                    progress=self.progress)
        return Path(self.summary["dataset"])

    async def generate_dataset(self) -> Path:
        return await asyncio.to_thread(self.run)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m ads.generators.perspectives",
                                description="Multi-perspective data generation (translation, summarization, "
                                            "peer review) from a JSON or YAML config.")
    p.add_argument("config_path", nargs="?", metavar="CONFIG", help="JSON or YAML config")
    p.add_argument("--config", dest="config_opt", metavar="CONFIG", help="same, as an option (the original tool's spelling)")
    p.add_argument("--test", action="store_true", help=f"{TEST_SAMPLES} samples, first {TEST_PERSPECTIVES} perspectives")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config value, e.g. --set model_config.max_tokens=64")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--resume", action="store_true", help="continue an interrupted run in its folder")
    g.add_argument("--overwrite", action="store_true", help="delete the run's folder and start again")
    args = p.parse_args(argv)
    config = args.config_opt or args.config_path
    if not config or (args.config_opt and args.config_path):
        p.error("give exactly one config: CONFIG or --config CONFIG")
    from ads.guard import run_guarded

    def body() -> int:
        summary = run_pipeline(config, test=True if args.test else None, overrides=args.set, resume=args.resume,
                               overwrite=args.overwrite, progress=not args.no_progress)
        print(f"Dataset saved to: {summary['dataset']}")
        return 0

    return run_guarded(body)


if __name__ == "__main__":
    sys.exit(main())
