"""Real run folders of every generator, made cheaply with scripted FakeModels (for the export,
show and fine-tune-data tests). Each builder runs the generator's own `run()` the way its unit
tests do, so the JSONL files are written exactly as the generator writes them; ADS, whose output
files are being redesigned, gets its `training_data.jsonl` written by hand in the agreed format.
"""
from __future__ import annotations

import json
from pathlib import Path

from models.fake import FakeModel


def tool_use_run(tmp_path: Path, n: int = 4) -> Path:
    from test_tool_use import HashEmbedder, _cfg, schema_model

    from ads.generators.tool_use import run
    from ads.run import RunContext

    cfg = _cfg(tmp_path, n=n)
    ctx = RunContext.create(cfg, run_dir=tmp_path / "tool_use")
    m = schema_model(1)
    run(cfg, ctx, model=m, judge_model=m, embedder=HashEmbedder(), progress=False)
    return ctx.run_dir


def bandit_run(tmp_path: Path, target: int = 6) -> Path:
    from test_bandit_loop import by_temperature, config

    from ads.generators.bandit_recipes import run
    from ads.run import RunContext

    cfg = config(tmp_path, recipe={"target_count": target}, loop={"batch_size": 3, "max_iterations": 8,
                                                                    "max_tokens": 64})
    ctx = RunContext.create(cfg, run_dir=tmp_path / "bandit")
    run(cfg, ctx, model=FakeModel(by_temperature))
    return ctx.run_dir


def self_evolving_run(tmp_path: Path) -> Path:
    from test_self_evolving import make

    from ads.generators.self_evolving import run

    cfg, ctx, parts = make(tmp_path, plan={1: "malformed", 2: "lowscore"}, accept_target=3, max_attempts=6,
                           run_dir=tmp_path / "self_evolving")
    run(cfg, ctx, **parts)
    return ctx.run_dir


def perspectives_run(tmp_path: Path) -> Path:
    from test_perspectives import base_config, responder

    from ads.generators import perspectives as P

    cfg = base_config(tmp_path, quality={"validators": [{"type": "length", "min_words": 12, "max_words": 80}],
                                         "max_attempts": 1})

    def fn(messages, kw):  # the Careful Reader's summaries are too short: rejected by the length validator
        if "Using your notes" in messages[-1]["content"]:
            return "Too short."
        return responder(messages, kw)

    summary = P.run_pipeline(cfg, model=FakeModel(fn), progress=False)
    return Path(summary["run_dir"])


ADS_ROWS = [
    {"id": "p1", "task_id": "t1", "family": "wiki_name", "kind": "passage",
     "text": "The Nile is a major river in north-eastern Africa, flowing into the Mediterranean Sea.",
     "instruction": None, "response": None, "api": "wiki_search", "arguments": {"query": "longest river", "k": 3},
     "cost": 1.5, "iteration": 0},
    {"id": "d1", "task_id": "t1", "family": "wiki_name", "kind": "demonstration", "text": None,
     "instruction": "Which river flows into the Mediterranean from north-eastern Africa?", "response": "The Nile.",
     "api": "wiki_search", "arguments": {"query": "Nile"}, "cost": 2.0, "iteration": 1},
    {"id": "q1", "task_id": "t2", "family": "gsm8k", "kind": "qa", "text": None,
     "instruction": "Tom has 3 apples and buys 4 more. How many apples does he have?",
     "response": "3 + 4 = 7. The answer is 7.", "api": None, "arguments": None, "cost": 0.5, "iteration": 1},
]


def ads_run(tmp_path: Path, rows: list[dict] | None = None) -> Path:
    d = tmp_path / "ads"
    d.mkdir(parents=True, exist_ok=True)
    (d / "config.yaml").write_text("kind: ads\nname: ads-test\nseed: 5\nmodel: {name: smollm2-135m, n_ctx: 2048}\n",
                                   encoding="utf-8")
    (d / "training_data.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows or ADS_ROWS), encoding="utf-8")
    return d


BUILDERS = {"tool_use": tool_use_run, "bandit": bandit_run, "self_evolving": self_evolving_run,
            "perspectives": perspectives_run, "ads": ads_run}
