"""Judge calibration: does this judge model tell a good item from a bad one, before a run relies on it?

Issue 24: with the local judges every self-evolving item scored 8-10 and nothing counted as novel,
and a tool-use conversation whose user turn was written as the assistant was judged good. A judge
that cannot separate good from bad turns its gate into noise. `main.py judge-check CONFIG` measures
that, per judge use (`tool_use`, `self_evolving`, `recipe`), on the small labelled sets that
`ads.quality.planted_sets` builds from real data by controlled corruption, each scored here with
that use's own judge.

Reported per use: ROC AUC of the judge's score against the label (0.5 = chance; ties count one
half), accuracy of the run's own pass threshold, mean score of good and bad items, and how many
judgments failed (unparseable; never raised). A use `separates` when AUC >= `min_auc` (0.75 by
default). Corruptions are code-made on purpose: they are controlled, so a judge that misses them
misses an obvious case, not a debatable one.
"""
from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

from ads.quality.planted_sets import Item, recipe_items, self_evolving_items, tool_use_items

USES = ("tool_use", "self_evolving", "recipe")


@dataclass
class Scored:
    item: Item
    score: float | None  # None: the judgment failed
    passed: bool | None
    novel: bool | None = None


@dataclass
class UseReport:
    use: str
    judge_model: str
    n: int
    good: int
    bad: int
    failures: int
    auc: float | None
    accuracy: float | None
    threshold: float
    mean_good: float | None
    mean_bad: float | None
    separates: bool
    novelty_accuracy: float | None = None
    novel_rate: float | None = None
    by_corruption: dict[str, float] = field(default_factory=dict)  # mean score per corruption

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def auc(scores: list[float], labels: list[int]) -> float | None:
    """P(score of a random good item > score of a random bad one), ties one half (Mann-Whitney)."""
    pos = [s for s, y in zip(scores, labels) if y == 1]
    neg = [s for s, y in zip(scores, labels) if y == 0]
    if not pos or not neg:
        return None
    wins = sum(1.0 if p > q else 0.5 if p == q else 0.0 for p in pos for q in neg)
    return round(wins / (len(pos) * len(neg)), 4)


def report(use: str, model_id: str, scored: list[Scored], threshold: float, min_auc: float) -> UseReport:
    ok = [s for s in scored if s.score is not None]
    a = auc([s.score for s in ok], [s.item.label for s in ok])  # type: ignore[misc]
    acc = round(sum(1 for s in ok if bool(s.passed) == bool(s.item.label)) / len(ok), 4) if ok else None

    def mean(xs: list[float]) -> float | None:
        return round(sum(xs) / len(xs), 3) if xs else None
    corr: dict[str, list[float]] = {}
    for s in ok:
        if s.item.corruption:
            corr.setdefault(s.item.corruption, []).append(s.score)  # type: ignore[arg-type]
    nov = [s for s in scored if s.item.novel is not None and s.novel is not None]
    return UseReport(
        use=use, judge_model=model_id, n=len(scored), good=sum(1 for s in scored if s.item.label == 1),
        bad=sum(1 for s in scored if s.item.label == 0), failures=len(scored) - len(ok), auc=a, accuracy=acc,
        threshold=threshold, mean_good=mean([s.score for s in ok if s.item.label == 1]),  # type: ignore[misc]
        mean_bad=mean([s.score for s in ok if s.item.label == 0]),  # type: ignore[misc]
        separates=a is not None and a >= min_auc,
        novelty_accuracy=round(sum(1 for s in nov if s.novel == s.item.novel) / len(nov), 4) if nov else None,
        novel_rate=round(sum(1 for s in nov if s.novel) / len(nov), 4) if nov else None,
        by_corruption={k: mean(v) for k, v in sorted(corr.items())})  # type: ignore[misc]


# --- scoring with each generator's own judge -------------------------------------------------
def score_tool_use(items: list[Item], model: Any, threshold: float = 3.5, judge_attempts: int = 2) -> list[Scored]:
    from ads.generators.tools.quality import ToolJudge

    j = ToolJudge(model, max_attempts=judge_attempts)
    out = []
    for it in items:
        s = j.score(it.payload, seed=0, sample_id=f"judge-check:{it.id}")
        v = s.get("mean_score") if s.get("ok") else None
        out.append(Scored(it, v, None if v is None else v >= threshold))
    return out


def score_self_evolving(items: list[Item], model: Any, threshold: float = 6.5, **judge_kw: Any) -> list[Scored]:
    from ads.generators.evolve.task_judge import TaskJudge

    j = TaskJudge(model, **judge_kw)
    out = []
    for it in items:
        p = it.payload
        v = j.evaluate(p["task"], p["answer"], p["similar"], seed=0, sample_id=f"judge-check:{it.id}")
        out.append(Scored(it, v.score if v.ok else None, None if not v.ok else v.score >= threshold,  # type: ignore[operator]
                          v.novel if v.ok else None))
    return out


def score_recipe(items: list[Item], model: Any, threshold: float = 5.0, criteria: list[Any] | None = None,
                 max_attempts: int = 2) -> list[Scored]:
    from ads.quality.judge import Judge, JudgeConfig

    cfg = JudgeConfig(max_attempts=max_attempts) if not criteria else \
        JudgeConfig(criteria=criteria, max_attempts=max_attempts)
    j = Judge(model, cfg)
    out = []
    for it in items:
        r = j.judge(it.payload["text"], instruction=it.payload["instruction"], sample_id=f"judge-check:{it.id}")
        out.append(Scored(it, r.overall if r.ok else None, None if not r.ok else r.overall >= threshold))  # type: ignore[operator]
    return out


def check_use(use: str, model: Any, *, n_good: int = 10, seed: int = 0, threshold: float | None = None,
              min_auc: float = 0.75, criteria: list[Any] | None = None, judge_kw: dict[str, Any] | None = None,
              progress: Callable[[str], None] | None = None) -> UseReport:
    """Build the labelled set for one use, score it with `model` through that use's judge, report."""
    model_id = getattr(model, "model_id", "unknown")
    jk = dict(judge_kw or {})
    if use == "tool_use":
        items, _ = tool_use_items(n_good, seed)
        thr = 3.5 if threshold is None else threshold
        scored = score_tool_use(items, model, thr, **jk)
    elif use == "self_evolving":
        items = self_evolving_items(n_good, seed)
        thr = 6.5 if threshold is None else threshold
        scored = score_self_evolving(items, model, thr, **jk)
    elif use == "recipe":
        items = recipe_items(n_good, seed)
        thr = 5.0 if threshold is None else threshold
        scored = score_recipe(items, model, thr, criteria, **jk)
    else:
        raise ValueError(f"unknown judge use {use!r}; choose from {USES}")
    if progress:
        progress(f"{use}: {len(items)} items scored by {model_id}")
    return report(use, model_id, scored, thr, min_auc)


# --- command line: main.py judge-check CONFIG -------------------------------------------------
@dataclass
class Plan:
    """What a config asks of its judge: which model, for which uses, with which threshold and rubric."""

    kind: str
    judge: Any  # ModelConfig
    uses: list[str]
    threshold: dict[str, float]
    criteria: list[Any] | None = None
    judge_kw: dict[str, dict[str, Any]] = field(default_factory=dict)


def plan_for(cfg: Any) -> Plan:
    from ads.config import ConfigError

    kind = cfg.kind
    if kind == "tool_use":
        return Plan(kind, cfg.models.judge or cfg.models.assistant, ["tool_use"], {"tool_use": cfg.threshold},
                    judge_kw={"tool_use": {"judge_attempts": cfg.judge_attempts}})
    if kind == "self_evolving":
        return Plan(kind, cfg.models.judge or cfg.models.generator, ["self_evolving"], {"self_evolving": cfg.min_score},
                    judge_kw={"self_evolving": {"temperature": cfg.judge_temp, "max_tokens": cfg.judge_max_tokens,
                                                "max_attempts": cfg.judge_attempts,
                                                "rationale_chars": cfg.judge_rationale_chars}})
    if kind == "bandit":
        specs = [v for v in cfg.validators if getattr(v, "type", None) == "judge_score"]
        if cfg.models.judge is None:
            raise ConfigError(f"{cfg.name}: this recipe configures no judge (no `models.judge:`), so there is "
                              f"nothing to check")
        spec = specs[0] if specs else None
        return Plan(kind, cfg.models.judge, ["recipe"], {"recipe": spec.min_score if spec else 5.0},
                    judge_kw={"recipe": {"max_attempts": spec.max_attempts if spec else 2}})
    raise ConfigError(f"judge-check: a {kind!r} config has no judge use to check; it works on tool_use, "
                      "self_evolving and bandit configs")


def _load(path: str, overrides: list[str]) -> Any:
    from ads.cli import _resolve_kind
    from ads.config import ConfigError, load_config, read_yaml

    data = read_yaml(Path(path))
    kind = data.get("kind", "ads")
    if not isinstance(kind, str):
        raise ConfigError(f"{path}: key 'kind' must be a string")
    cfg_cls, _ = _resolve_kind(kind)
    return load_config(cfg_cls, path, overrides)


def main(argv: list[str] | None = None) -> int:
    """main.py judge-check CONFIG: exit 0 when every checked use separates, 1 when one does not, 2 on bad input."""
    import argparse
    import sys

    from ads.config import ConfigError
    from ads.report import print_table

    p = argparse.ArgumentParser(prog="main.py judge-check", description="How well the config's judge model "
                                "separates planted good items from planted bad ones, per judge use (issue 24).")
    p.add_argument("config", help="a tool_use, self_evolving or bandit YAML")
    p.add_argument("--use", action="append", choices=USES, help="judge use(s) to check (default: the config's own)")
    p.add_argument("--n", type=int, default=10, help="good items per use; each has one corrupted copy (default 10)")
    p.add_argument("--model", help="check this judge model instead of the config's")
    p.add_argument("--min-auc", type=float, default=0.75, help="AUC at or above which a judge separates (0.75)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", help="JSON report (default results/judge_check/<config>-<model>.json)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    args = p.parse_args(argv)
    from ads.guard import run_guarded

    def body() -> int:
        if args.n < 1:
            raise ConfigError("--n must be >= 1")
        if not 0 <= args.min_auc <= 1:
            raise ConfigError("--min-auc must be within [0, 1]")
        cfg = _load(args.config, args.set)
        pl = plan_for(cfg)
        judge_cfg = pl.judge.model_copy(update={"name": args.model}) if args.model else pl.judge
        from models.caching import CachingModel, RequestCache
        from models.registry import ModelPool

        model = ModelPool(cfg.models_dir).get(judge_cfg)
        if cfg.cache.enabled:
            model = CachingModel(model, RequestCache(cfg.cache.path))
        model_id = getattr(model, "model_id", judge_cfg.name)
        reports = []
        for use in args.use or pl.uses:
            own = use in pl.uses
            r = check_use(use, model, n_good=args.n, seed=args.seed, threshold=pl.threshold.get(use),
                          min_auc=args.min_auc, criteria=pl.criteria if own else None,
                          judge_kw=pl.judge_kw.get(use) if own else None,
                          progress=lambda m: print(m, file=sys.stderr))
            r.judge_model = model_id
            reports.append(r)
        rows = [[r.use, r.judge_model, f"{r.good}+{r.bad}", str(r.failures), str(r.auc), str(r.accuracy),
                 f"{r.threshold:g}", str(r.mean_good), str(r.mean_bad),
                 "-" if r.novelty_accuracy is None else f"{r.novelty_accuracy} ({r.novel_rate} novel)",
                 "yes" if r.separates else "NO"] for r in reports]
        print_table("Judge check", ["use", "judge", "good+bad", "failed", "AUC", "accuracy", "threshold", "mean good",
                                    "mean bad", "novelty acc.", "separates"], rows)
        for r in reports:
            if r.by_corruption:
                print(f"{r.use}: mean score per corruption: " + ", ".join(f"{k}={v}" for k, v in r.by_corruption.items()))
        out = Path(args.out) if args.out else Path(cfg.results_dir) / "judge_check" / \
            f"{Path(args.config).stem}-{re.sub(r'[^A-Za-z0-9_.-]+', '_', model_id)}.json"
        from ads.store import atomic_write_json

        out.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_json(out, {"config": str(args.config), "judge_model": model_id, "min_auc": args.min_auc,
                                "n_good": args.n, "seed": args.seed, "reports": [r.to_dict() for r in reports]})
        print(f"wrote {out}")
        bad = [r.use for r in reports if not r.separates]
        if bad:
            print(f"the judge {model_id} does not separate good from bad for: {', '.join(bad)} "
                  f"(AUC below {args.min_auc}); a run gating on it gates on noise", file=sys.stderr)
            return 1
        return 0

    return run_guarded(body)


def separates(results_dir: str | Path, model_id: str, use: str) -> bool | None:
    """The latest judge-check verdict for this judge model and use, if one was recorded (None: never checked)."""
    d = Path(results_dir) / "judge_check"
    best: tuple[float, bool] | None = None
    for f in d.glob("*.json") if d.is_dir() else []:
        try:
            data = json.loads(f.read_text())
        except (OSError, ValueError):
            continue
        if data.get("judge_model") != model_id:
            continue
        for r in data.get("reports") or []:
            if r.get("use") == use and (best is None or f.stat().st_mtime > best[0]):
                best = (f.stat().st_mtime, bool(r.get("separates")))
    return None if best is None else best[1]
