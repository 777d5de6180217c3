"""How well each kind of query finds a task's own article, and how much of it a passage keeps.

No model runs: this measures the retrieval side of the ADS comparison, to explain it. For every
task of an ADS config (trained and new), the BM25 index of the run answers:
  {task}       the task's train instructions joined, what a plan's `{task}` argument becomes
               (the plan the learned optimizer's exemplars teach);
  title        the article's title;
  instruction  each train instruction's text (what always_retrieve sends);
  random       the random baseline's arguments: `random_plan` itself, 5 plans per task at cost 2,
               each retrieval call's query;
and prints the share of queries whose top-1 and top-k (the config's top_k) include the task's
source article, with a bootstrap 95% interval over queries. Last, the share of held-out gold
answers that lie inside the first `passage_chars` characters of their article (what a retrieved
passage keeps), for a few lengths: answers past the cut cannot be reached by any retrieval.

    .venv/bin/python bench/task_queries.py                         # configs/default.yaml
    .venv/bin/python bench/task_queries.py configs/ads_seed_cpu.yaml --set tasks.seed=1
"""
from __future__ import annotations

import argparse
import random
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from ads.active_search.instruction_sets import build_task_sets  # noqa: E402
from ads.active_search.loop import ADSConfig  # noqa: E402
from ads.active_search.planning import random_plan  # noqa: E402
from ads.active_search.significance import bootstrap_ci  # noqa: E402
from ads.config import ConfigError, load_config  # noqa: E402
from apis.factory import build_api_registry, build_index  # noqa: E402
from models.fake import FakeModel  # noqa: E402


def rate(hits: list[bool]) -> str:
    if not hits:
        return "-"
    lo, hi = bootstrap_ci([float(h) for h in hits])
    return f"{sum(hits) / len(hits):.3f} [{lo:.2f}, {hi:.2f}] (n={len(hits)})"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("config", nargs="?", default=str(ROOT / "configs" / "default.yaml"))
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    args = ap.parse_args()
    try:
        cfg = load_config(ADSConfig, args.config, args.set)
    except ConfigError as e:
        sys.exit(f"error: {e}")
    index = build_index(cfg.apis, cache_dir=ROOT / "cache", verbose=False)
    registry = build_api_registry(cfg.apis, model=FakeModel(["x"]), index=index)
    k = cfg.apis.retrieval.top_k
    trained, held = build_task_sets(cfg.tasks)
    tasks = [t for t in trained + held if t.family == "wiki"]  # tasks with one source article
    found: dict[str, tuple[list[bool], list[bool]]] = {}

    def probe(kind: str, query: str, source: str) -> None:
        titles = [h.doc.id for h in index.search(query, k)]
        one, top = found.setdefault(kind, ([], []))
        one.append(titles[:1] == [source])
        top.append(source in titles)

    for n, task in enumerate(tasks):
        source = task.train[0].source
        probe("{task}", task.query_text(), source)
        probe("title", task.meta.get("title", source), source)
        for ins in task.train:
            probe("instruction", ins.content()[:400], source)
        for s in range(5):
            plan = random_plan(task, registry, 2.0, random.Random(f"{cfg.seed}:{n}:{s}"))
            for call in plan.calls:
                if call.name == "information_retrieval":
                    probe("random", call.arguments["query"], source)
    print(f"{args.config}: {len(tasks)} wiki tasks, top_k {k}")
    print(f"{'query':<12} {'source article at rank 1':<34} source article in top {k}")
    for kind, (one, top) in found.items():
        print(f"{kind:<12} {rate(one):<34} {rate(top)}")
    held_out = [(i, t.sources.get(i.source, "")) for t in tasks for i in t.held_out if i.gold]
    print("held-out answers inside a passage's first N characters of their article:")
    for chars in sorted({300, 500, 700, cfg.apis.retrieval.passage_chars, 1500}):
        inside = [i.gold.lower() in text[: chars + len(i.source) + 2].lower() for i, text in held_out]
        print(f"  N = {chars:<5} {rate(inside)}" + ("   <- this config" if chars == cfg.apis.retrieval.passage_chars
                                                    else ""))


if __name__ == "__main__":
    main()
