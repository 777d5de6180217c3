"""Tool-use conversation generator: ToolBench-format schemas in, multi-turn multi-step tool-use
conversations out (issue 10).

`main.py generate configs/tool_use.yaml` runs `run(cfg, ctx)`: build the registry and graphs,
then for each conversation index plan a chain (steered away from what the corpus already
holds), let the user proxy and assistant talk through the offline executor, validate, judge
and repair, and append the record to `conversations.jsonl`. Every index gets exactly one
record (passed or not), so `--resume` after a kill skips the ids on disk and the embedding
memory and novelty pool are rebuilt from them: nothing is lost or written twice.

`main.py tools {build,generate,evaluate,validate,metrics,inspect}` is the command line of the
design document; see `main()`.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any, Literal

from pydantic import Field

from ads.config import ConfigError, ModelConfig, RunConfig, Strict, load_config
from ads.generators.tools.conversation import DialogueSettings
from ads.generators.tools.ingest import ToolFileError
from ads.generators.tools.metrics import coverage, coverage_lines, diversity, evaluation_report, inspect_lines
from ads.generators.tools.pipeline import Built, ToolUsePipeline, build_all
from ads.generators.tools.quality import RECORD_SCHEMA, StructuralValidator
from ads.generators.tools.sampler import ALL_MODES, ChainPlan
from ads.generators.tools.turns import ChainValidator, TurnValidator
from ads.quality.validators import JsonSchemaValidator, ValidatorSpec
from ads.report import print_table
from ads.store import JsonlStore, atomic_write_json

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_CONFIG = REPO_ROOT / "configs" / "tool_use.yaml"
Mode = Literal["sequential", "multi_tool", "clarification_first", "parallel", "mixed"]


class ToolSources(Strict):
    paths: list[str] = ["data/toolbench"]  # files or folders of ToolBench / NESTFUL / OpenAI JSON (data/README.md)
    nestful: bool = True  # add the 39 NESTFUL RapidAPI specs shipped in the nestful-wrapper package


class ToolUseConfig(RunConfig):
    kind: Literal["tool_use"] = "tool_use"
    name: str = "tool-use"
    tools: ToolSources = ToolSources()
    model: ModelConfig = ModelConfig(name="qwen2.5-coder-0.5b-instruct", n_ctx=4096)
    user_model: ModelConfig | None = None  # None: the assistant's model plays the user too
    judge: ModelConfig | None = None  # None: the assistant's model judges
    n: int = Field(6, ge=1)
    mode: Mode = "mixed"
    min_steps: int = Field(2, ge=1, le=6)
    max_steps: int = Field(3, ge=1, le=6)
    candidates: int = Field(4, ge=1, le=32)  # chains proposed per conversation for steering
    corpus_memory: bool = True
    memory_k: int = Field(3, ge=1, le=50)  # steering: mean similarity to the k nearest remembered chains
    evaluate: bool = True
    threshold: float = Field(3.5, ge=1, le=5)
    max_repairs: int = Field(2, ge=0, le=5)  # design document: a surgical repair, then a full rewrite
    judge_attempts: int = Field(2, ge=1, le=5)
    max_arg_attempts: int = Field(2, ge=1, le=5)
    temperature: float = Field(0.7, ge=0)
    max_tokens: int = Field(120, ge=32)  # arguments JSON; prose turns have their own small limits
    novelty_threshold: float | None = Field(0.8, gt=0, le=1)
    use_examples: bool = False  # show a real ToolBench query to the user proxy (tiny models copy its topic)
    validators: list[ValidatorSpec] = []
    output: str | None = None  # default: <run folder>/conversations.jsonl


def build_pipeline(cfg: ToolUseConfig, built: Built, model: Any, judge_model: Any = None, user_model: Any = None,
                   embedder: Any = None) -> ToolUsePipeline:
    return ToolUsePipeline(
        built, model, judge_model=judge_model, user_model=user_model, seed=cfg.seed, mode=cfg.mode,
        min_steps=cfg.min_steps, max_steps=cfg.max_steps, candidates=cfg.candidates, corpus_memory=cfg.corpus_memory,
        embedder=embedder, evaluate=cfg.evaluate, threshold=cfg.threshold, max_repairs=cfg.max_repairs,
        novelty_threshold=cfg.novelty_threshold, validators=cfg.validators, use_examples=cfg.use_examples,
        judge_attempts=cfg.judge_attempts, memory_k=cfg.memory_k,
        settings=DialogueSettings(temperature=cfg.temperature, max_arg_attempts=cfg.max_arg_attempts,
                                  max_tokens=cfg.max_tokens))


def resolve_paths(paths: list[str]) -> list[str]:
    """A relative tool path is read from the working directory, else from the repository root,
    so the default `data/toolbench` (in this repository) works wherever the command is started."""
    out = []
    for p in paths:
        q = Path(p).expanduser()
        if not q.is_absolute() and not q.exists() and (REPO_ROOT / q).exists():
            q = REPO_ROOT / q
        out.append(str(q))
    return out


def load_built(cfg: ToolUseConfig) -> Built:
    try:
        return build_all(resolve_paths(cfg.tools.paths), cfg.tools.nestful)
    except ToolFileError as e:
        raise ConfigError(f"tool file error: {e}") from None


def write_artifacts(built: Built, out_dir: Path) -> dict[str, Any]:
    out_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_json(out_dir / "registry.json", built.reg.to_dict())
    atomic_write_json(out_dir / "heterogeneous_graph.json", built.hetero.to_dict())
    atomic_write_json(out_dir / "projected_graph.json", built.projected.to_dict())
    manifest = {"registry": built.reg.stats, "heterogeneous_graph": {"nodes": built.hetero.count_by_type(),
                                                                    "edges": len(built.hetero.edges)},
                "projected_graph": built.projected.stats(), "built_at": time.time()}
    atomic_write_json(out_dir / "build_manifest.json", manifest)
    return manifest


def run(cfg: ToolUseConfig, ctx: Any, *, model: Any = None, judge_model: Any = None, embedder: Any = None,
        progress: bool = True, verbose: bool = False) -> dict[str, Any]:
    """`verbose` (tools generate --verbose): print one line per rejected conversation, with its gates."""
    if cfg.min_steps > cfg.max_steps:
        raise ConfigError(f"min_steps ({cfg.min_steps}) is above max_steps ({cfg.max_steps})")
    t0 = time.time()
    built = load_built(cfg)
    manifest = write_artifacts(built, ctx.run_dir / "artifacts")
    reg = built.reg
    print(f"tools: {reg.stats['endpoints']} endpoints in {reg.stats['tools']} tools, {reg.stats['categories']} "
          f"categories ({reg.stats['duplicates_merged']} duplicates merged); projected graph "
          f"{manifest['projected_graph']['edges']}")
    injected_model, injected_judge = model is not None, judge_model is not None  # tests: workers get copies
    model = model or ctx.model("assistant", cfg.model)
    user_model = ctx.model("user", cfg.user_model) if cfg.user_model else None
    judge_model = judge_model or (ctx.model("judge", cfg.judge) if cfg.judge else ctx.model("judge", cfg.model))
    pipe = build_pipeline(cfg, built, model, judge_model, user_model, embedder)

    out_path = Path(cfg.output) if cfg.output else ctx.run_dir / "conversations.jsonl"
    store = JsonlStore(out_path, id_field="conversation_id")
    done = {r["conversation_id"]: r for r in store}
    for r in done.values():  # rebuild steering memory and novelty pool exactly as they were
        pipe.remember(ChainPlan.from_dict(r["metadata"]["plan"]))
        if r.get("passed") and pipe.novelty is not None:
            pipe.novelty.add(r["conversation_id"], next(m["content"] for m in r["messages"] if m["role"] == "user"))
    if done:
        print(f"resuming: {len(done)} of {cfg.n} conversations already in {out_path}")
    ids = [f"conv_{cfg.seed}_{i:04d}" for i in range(cfg.n)]
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=cfg.n, initial=sum(1 for i in ids if i in done), desc="conversations", unit="conv")
    # Steering depends only on the plans remembered so far, never on conversation outputs: plans are
    # chosen here in order, a chunk at a time, and the chunk's conversations are built and checked
    # (validators, judge) on the executor's workers. The repair loop's novelty check against earlier
    # passed conversations, the novelty pool and the appends stay here, in order (pipe.produce with
    # the workers' attempts), so records equal the local run's.
    ex = ctx.executor()
    stateful = [v.name for v in pipe.suite.validators if hasattr(v, "commit")]
    routed = ex.kind != "local" and not stateful
    if ex.kind != "local" and stateful:
        print(f"validators {stateful} remember what passed: conversations are built in the driver, one at a time")
    todo = [(i, cid) for i, cid in enumerate(ids) if cid not in done]
    chunk = 2 * ex.workers if routed else 1
    factory = ToolUseWorkerFactory(cfg, model if injected_model else None, judge_model if injected_judge else None,
                                   embedder if cfg.validators else None) if routed else None
    for start in range(0, len(todo), chunk):
        planned = []
        for i, cid in todo[start:start + chunk]:
            plan, steer = pipe.plan(i)
            pipe.remember(plan)
            planned.append((i, cid, plan, steer))
        attempts = ex.imap(speculate_work, [(cid, plan) for _, cid, plan, _ in planned], env=None, factory=factory,
                           ledger=ctx.ledger) if routed else iter([None] * len(planned))
        for (i, cid, plan, steer), pre in zip(planned, attempts):
            rec = pipe.produce(cid, plan, precomputed=pre)
            rec["metadata"]["corpus_memory_enabled"] = cfg.corpus_memory
            rec["metadata"]["steering"] = steer
            store.append(rec)
            done[cid] = rec
            _log_and_save(ctx, cfg, i, cid, rec, done, bar)
            if verbose:
                print(decision_line(rec), file=sys.stderr if bar is not None else sys.stdout)
    if bar is not None:
        bar.close()

    records = [done[c] for c in ids if c in done]
    return finish(cfg, ctx, built, records, out_path, time.time() - t0)


def _log_and_save(ctx: Any, cfg: ToolUseConfig, i: int, cid: str, rec: dict[str, Any], done: dict[str, Any],
              bar: Any) -> None:
    """Metrics and state after conversation i was appended."""
    js = rec.get("judge_scores") or {}
    ctx.tracker.log({"conversation": i, "passed": int(rec["passed"]), "mean_score": js.get("mean_score"),
                     "num_tool_calls": rec["metadata"]["num_tool_calls"], "repairs": rec["metadata"]["repairs"],
                     "grounding_rate": rec["metadata"]["memory_grounding_rate"],
                     "distinct_endpoints_so_far": len({e for r in done.values()
                                                       for e in r["metadata"]["endpoint_ids"]})}, step=i)
    ctx.save_state({"done": len(done), "last": cid})
    if bar is not None:
        bar.update(1)
        bar.set_postfix(passed=sum(1 for r in done.values() if r.get("passed")))


# --- conversations on the executor (ads/executor.py) ----------------------------------------------
def speculate_work(env: Any, item: tuple[str, ChainPlan]) -> list[dict[str, Any]]:
    """A worker builds and checks one conversation's attempts (ToolUsePipeline.speculate)."""
    cid, plan = item
    return env.pipe.speculate(cid, plan)


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
        # injected (test) models are used as given, as run() does: not cached, not ledgered
        model = self.model if self.model is not None else ctx.model("assistant", cfg.model)
        user_model = ctx.model("user", cfg.user_model) if cfg.user_model else None
        judge = self.judge_model or (ctx.model("judge", cfg.judge) if cfg.judge else ctx.model("judge", cfg.model))
        return _ToolUseEnv(build_pipeline(cfg, load_built(cfg), model, judge, user_model, self.embedder), ctx)


def decision_line(rec: dict[str, Any]) -> str:
    """One line per conversation for --verbose: the decision, the gates, the repairs and why."""
    js = rec.get("judge_scores") or {}
    md = rec["metadata"]
    line = (f"{rec['conversation_id']}: {'passed' if rec.get('passed') else 'REJECTED'} mean={js.get('mean_score')} "
            f"repairs={md.get('repairs', 0)} {md.get('repair_kinds') or ''}".rstrip())
    if not rec.get("passed"):
        reasons = (rec.get("validation") or {}).get("reasons") or {}
        why = "; ".join(f"{k}: {v}" for k, v in reasons.items())
        line += f" gates={js.get('failed_gates')}" + (f" ({why[:300]})" if why else "")
    return line


def _sum_counts(records: list[dict[str, Any]]) -> dict[str, int]:
    c: Counter = Counter()
    for r in records:
        c.update(r["metadata"].get("counts", {}))
    return dict(sorted(c.items()))


def finish(cfg: ToolUseConfig, ctx: Any, built: Built, records: list[dict[str, Any]], out_path: Path,
           elapsed: float) -> dict[str, Any]:
    reg = built.reg
    div = diversity(records, len(reg.tools()), len(reg.endpoints))
    cov = coverage(records, reg.categories(), reg.endpoints)
    report = evaluation_report(records, cfg.threshold)
    counts = _sum_counts(records)
    atomic_write_json(ctx.run_dir / "evaluation_report.json", report)
    atomic_write_json(ctx.run_dir / "diversity.json", {"diversity": div, "coverage": cov})
    write_plots(ctx.run_dir, records)
    from ads.export.at_end import export_at_end

    export_at_end(ctx, {"evaluation": report, "diversity": div})  # RUN_DIR/export (HF dataset + card), W&B
    # main.py judge-check's last verdict on this judge (issue 24): None when it was never checked
    from ads.quality.calibration import separates

    judge_name = (cfg.judge or cfg.model).name
    judge_ok = separates(cfg.results_dir, judge_name, "tool_use") if cfg.evaluate else None
    summary = ctx.finish({"conversations": len(records), "output": str(out_path), "passed": report["passed"],
                          "judge_separates": judge_ok,
                          "pass_rate": report["pass_rate"], "mean_score": report["mean_score"],
                          "mean_quality_ok": report["mean_quality_ok"], "evaluation": report, "diversity": div,
                          "coverage": cov, "counts": counts, "generation_s": round(elapsed, 1)})
    for line in coverage_lines(cov):
        print(line)
    rows = [[k, str(v)] for k, v in div.items()]
    print_table(f"Diversity ({len(records)} conversations)", ["metric", "value"], rows)
    ms = report["mean_scores"]
    print_table("Evaluation", ["n", "passed", "judged", "mean score (1-5)", "tool corr.", "completion", "natural.",
                               "repairs", "failed gates"],
                [[str(report["n"]), str(report["passed"]), str(report["judged"]), str(report["mean_score"]),
                  str(ms["tool_correctness"]), str(ms["task_completion"]), str(ms["naturalness"]),
                  str(report["repairs"]), json.dumps(report["failed_gates"])]])
    print("counts: " + ", ".join(f"{k}={v}" for k, v in counts.items()))
    if judge_ok is False:
        print(f"warning: judge-check found that the judge {judge_name} does not separate good from bad "
              f"conversations (see {cfg.results_dir}/judge_check/); its scores gate on noise", file=sys.stderr)
    elif cfg.evaluate and judge_ok is None:
        print(f"note: the judge {judge_name} has not been checked; run main.py judge-check on this config")
    led = summary["ledger"]["run"]
    print(f"ledger: {led['model_calls']} model calls ({led['cached_calls']} cached), {led['total_tokens']} tokens; "
          f"{len(records)} conversations in {out_path} ({elapsed:.0f} s)")
    return summary


def write_plots(run_dir: Path, records: list[dict[str, Any]]) -> None:
    from ads.tracking import plot_curves

    if not records:
        return
    xs = list(range(1, len(records) + 1))
    seen_e, seen_t, ye, yt = set(), set(), [], []
    for r in records:
        seen_e.update(r["metadata"]["endpoint_ids"])
        seen_t.update(r["metadata"]["tool_ids_used"])
        ye.append(len(seen_e))
        yt.append(len(seen_t))
    plot_curves(run_dir / "coverage.png", "Cumulative coverage", {"endpoints": (xs, ye), "tools": (xs, yt)},
                xlabel="conversation", ylabel="distinct so far")
    scored = [(i + 1, r["judge_scores"]["mean_score"]) for i, r in enumerate(records)
              if (r.get("judge_scores") or {}).get("ok")]
    if scored:
        run_mean, tot = [], 0.0
        for k, (_, s) in enumerate(scored, 1):
            tot += s
            run_mean.append(tot / k)
        plot_curves(run_dir / "quality.png", "Judge mean score (1-5)",
                    {"per conversation": ([x for x, _ in scored], [s for _, s in scored]),
                     "running mean": ([x for x, _ in scored], run_mean)}, xlabel="conversation", ylabel="score")


# --- command line: main.py tools ... ------------------------------------------------------------
def _read_jsonl(path: str) -> list[dict[str, Any]]:
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"{p}: no such file")
    return JsonlStore(p, id_field="conversation_id").read()


def _cfg(args: argparse.Namespace, overrides: list[str] | None = None) -> ToolUseConfig:
    return load_config(ToolUseConfig, args.config, list(args.set or []) + (overrides or []))


def cmd_build(args: argparse.Namespace) -> int:
    cfg = _cfg(args, [f"tools.paths={json.dumps(args.data)}"] if args.data else None)
    built = load_built(cfg)
    m = write_artifacts(built, Path(args.artifacts))
    print(json.dumps(m, indent=2))
    print(f"wrote registry.json, heterogeneous_graph.json, projected_graph.json, build_manifest.json to {args.artifacts}")
    return 0


def cmd_generate(args: argparse.Namespace) -> int:
    from ads.run import RunContext

    ov = []
    for flag, key in (("n", "n"), ("seed", "seed"), ("mode", "mode"), ("output", "output")):
        v = getattr(args, flag)
        if v is not None:
            ov.append(f"{key}={v}")
    if args.evaluate:
        ov.append("evaluate=true")
    if args.no_evaluate:
        ov.append("evaluate=false")
    if args.no_corpus_memory:
        ov.append("corpus_memory=false")
    cfg = with_judge(_cfg(args, ov), args.judge_model)
    out = Path(cfg.output) if cfg.output else None
    if out is not None and out.is_file() and out.stat().st_size > 0 and not args.resume:
        if not args.overwrite:
            raise ConfigError(f"{out} already holds conversations; add --resume to continue it or --overwrite "
                              "to replace it")
        out.unlink()
    ctx = RunContext.create(cfg, resume=args.resume, overwrite=args.overwrite)
    print(f"run {ctx.run_id}: writing to {ctx.run_dir}" + (" (resuming)" if args.resume else ""))
    if args.verbose:
        run(cfg, ctx, verbose=True)
    else:
        run(cfg, ctx)
    return 0


def with_judge(cfg: ToolUseConfig, name: str | None) -> ToolUseConfig:
    """--judge-model / evaluate --model: the judge is the assistant's model config under another name
    (a registry name, a .gguf path or a served model id), so context and threads carry over."""
    if not name:
        return cfg
    if not name.strip():
        raise ConfigError("--judge-model/--model: empty model name")
    base = cfg.judge or cfg.model
    return cfg.model_copy(update={"judge": base.model_copy(update={"name": name.strip()})})


def _models(cfg: ToolUseConfig) -> tuple[Any, Any]:
    from models.caching import CachingModel, RequestCache
    from models.registry import ModelPool

    pool = ModelPool(cfg.models_dir)
    cache = RequestCache(cfg.cache.path) if cfg.cache.enabled else None
    wrap = (lambda m: CachingModel(m, cache)) if cache is not None else (lambda m: m)
    model = wrap(pool.get(cfg.model))
    judge = wrap(pool.get(cfg.judge)) if cfg.judge else model
    return model, judge


def cmd_evaluate(args: argparse.Namespace) -> int:
    ov = [f"threshold={args.threshold}"] if args.threshold is not None else []
    ov += [f"max_repairs={args.max_repairs}"] if args.max_repairs is not None else []
    cfg = with_judge(_cfg(args, ov + ["evaluate=true"]), args.model)
    records = _read_jsonl(args.input)
    built = load_built(cfg)
    model, judge = _models(cfg)
    pipe = build_pipeline(cfg, built, model, judge)
    pipe.novelty = None  # evaluation judges each conversation on its own, repairs included
    out = JsonlStore(args.output, id_field="conversation_id")
    done = out.ids()
    for r in records:
        if r["conversation_id"] in done:
            continue
        r = {k: v for k, v in r.items() if k not in ("judge_scores", "passed", "validation")}
        earlier = int(r["metadata"].get("repairs", 0) or 0)
        failed, reasons, scores = pipe.check(r)
        r = pipe.conclude(r, failed, reasons, scores, novelty=False)
        if args.repair and not r["passed"] and cfg.max_repairs > 0:
            # surgical repair of the failing turns with the judge's and validators' feedback, then rewrites
            plan = ChainPlan.from_dict(r["metadata"]["plan"])
            initial = {"rec": r, "failed": failed, "reasons": reasons, "scores": scores, "counts": {}}
            keep = {k: r["metadata"][k] for k in ("corpus_memory_enabled", "steering") if k in r["metadata"]}
            fixed = pipe.produce(r["conversation_id"], plan, start_attempt=int(r["metadata"].get("attempt", 0)),
                                 max_repairs=cfg.max_repairs, initial=initial)
            fixed["metadata"].update(keep)
            fixed["metadata"]["repair_kept"] = fixed is not r
            fixed["metadata"]["repairs"] += earlier
            r = fixed
        out.append(r)
        if args.verbose:
            print(decision_line(r))
    evaluated = out.read()
    report = evaluation_report(evaluated, cfg.threshold)
    rp = Path(args.output).with_name("evaluation_report.json")
    atomic_write_json(rp, report)
    print(json.dumps(report, indent=2))
    print(f"wrote {args.output} and {rp}")
    if not report["mean_quality_ok"]:
        print(f"mean quality {report['mean_score']} is below the threshold {cfg.threshold}", file=sys.stderr)
        return 2
    return 0


def cmd_validate(args: argparse.Namespace) -> int:
    cfg = _cfg(args)
    built = load_built(cfg)
    schema, struct = JsonSchemaValidator("record_schema", RECORD_SCHEMA), StructuralValidator(built.reg)
    rules = [ChainValidator(built.reg, built.projected), TurnValidator()]
    bad = 0
    records = _read_jsonl(args.input)
    for r in records:
        problems = []
        s = schema.check(r)
        if not s.passed:
            problems.append(f"record_schema: {s.reason}")
        else:
            problems += struct.issues(r)
            problems += [f"{v.name}: {res.reason}" for v in rules if not (res := v.check(r)).passed]
        if problems:
            bad += 1
            print(f"{r.get('conversation_id', '?')}: INVALID")
            for p in problems:
                print(f"  - {p}")
    print(f"{len(records) - bad}/{len(records)} conversations structurally valid")
    return 1 if bad else 0


def cmd_metrics(args: argparse.Namespace) -> int:
    cfg = _cfg(args)
    built = load_built(cfg)
    cols, header = [], ["metric"]
    for path in args.input:
        recs = _read_jsonl(path)
        cols.append(diversity(recs, len(built.reg.tools()), len(built.reg.endpoints)))
        header.append(Path(path).name)
    keys = list(cols[0])
    print_table("Diversity", header, [[k, *[str(c[k]) for c in cols]] for k in keys])
    if args.json:
        print(json.dumps(dict(zip(args.input, cols)), indent=2))
    return 0


def cmd_inspect(args: argparse.Namespace) -> int:
    records = _read_jsonl(args.input)
    if args.id:
        records = [r for r in records if r["conversation_id"] == args.id]
        if not records:
            print(f"no conversation {args.id!r} in {args.input}", file=sys.stderr)
            return 2
    for r in records[: args.limit]:
        print("\n".join(inspect_lines(r, args.verbose)))
        if args.verbose:
            print()
    n = len(records)
    ok = sum(1 for r in records if r.get("passed"))
    warn = sum(len(r["metadata"].get("grounding_warnings", [])) for r in records)
    print(f"{ok}/{n} passed; {warn} grounding warnings")
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="main.py tools", description="Tool-use conversation generator (ToolBench schemas)")
    sub = p.add_subparsers(dest="cmd", required=True)

    def common(sp: argparse.ArgumentParser) -> None:
        sp.add_argument("--config", default=str(DEFAULT_CONFIG), help="tool_use YAML (tool sources, models)")
        sp.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a config value")

    sp = sub.add_parser("build", help="ingest tools; write registry and graph artifacts")
    common(sp)
    sp.add_argument("--data", nargs="+", help="tool files or folders (default: the config's tools.paths)")
    sp.add_argument("--artifacts", default="artifacts/tool_use")
    sp = sub.add_parser("generate", help="generate conversations (a run folder under results/)")
    common(sp)
    sp.add_argument("--n", type=int)
    sp.add_argument("--seed", type=int)
    sp.add_argument("--mode", choices=ALL_MODES)
    sp.add_argument("--output", default="output/conversations.jsonl",
                    help="conversations JSONL (the design document's default); the run folder keeps the rest")
    g = sp.add_mutually_exclusive_group()
    g.add_argument("--evaluate", action="store_true", help="judge each conversation inline (the default config does)")
    g.add_argument("--no-evaluate", action="store_true")
    sp.add_argument("--no-corpus-memory", action="store_true", help="disable cross-conversation steering")
    sp.add_argument("--judge-model", help="judge model (registry name, .gguf path or served id); default: the "
                                          "config's judge, else the assistant's model")
    sp.add_argument("--verbose", action="store_true", help="print each rejected conversation with its gates")
    g2 = sp.add_mutually_exclusive_group()
    g2.add_argument("--resume", action="store_true")
    g2.add_argument("--overwrite", action="store_true")
    sp = sub.add_parser("evaluate", help="judge a JSONL (optionally repair); exit 2 when mean quality fails")
    common(sp)
    sp.add_argument("--input", required=True)
    sp.add_argument("--output", default="output/evaluated.jsonl")
    sp.add_argument("--repair", action="store_true")
    sp.add_argument("--threshold", type=float)
    sp.add_argument("--max-repairs", type=int, help="repairs per failing conversation (default: the config's, 2)")
    sp.add_argument("--model", help="judge model (registry name, .gguf path or served id)")
    sp.add_argument("--verbose", action="store_true", help="print each conversation's decision")
    sp = sub.add_parser("validate", help="structural validation only (no model)")
    common(sp)
    sp.add_argument("--input", required=True)
    sp = sub.add_parser("metrics", help="diversity: entropy and Jaccard dissimilarity (several inputs side by side)")
    common(sp)
    sp.add_argument("--input", required=True, nargs="+")
    sp.add_argument("--json", action="store_true")
    sp = sub.add_parser("inspect", help="per-conversation breakdown; --verbose shows argument lineage")
    sp.add_argument("--input", required=True)
    sp.add_argument("--verbose", action="store_true")
    sp.add_argument("--id")
    sp.add_argument("--limit", type=int, default=1000)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    fn = {"build": cmd_build, "generate": cmd_generate, "evaluate": cmd_evaluate, "validate": cmd_validate,
          "metrics": cmd_metrics, "inspect": cmd_inspect}[args.cmd]
    from ads.guard import run_guarded

    return run_guarded(lambda: fn(args))


if __name__ == "__main__":
    sys.exit(main())
