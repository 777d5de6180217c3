"""The ways into the perspectives pipeline that the original tool had, kept for its users.

`run_pipeline(config)` and `PerspectivesPipeline(config).run()` take a JSON or YAML path, a
dict or a PerspectivesConfig (seed-style files need no `kind`), and `python -m
ads.generators.perspectives CONFIG` (or `--config CONFIG`) is the original command line. All
of them end in the one runner, exactly as `main.py generate CONFIG` does.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import time
from pathlib import Path
from typing import Any, Callable

from ads.cli import add_run_flags
from ads.config import ConfigError, apply_overrides, read_yaml, validate
from ads.generators.persp.settings import TEST_PERSPECTIVES, TEST_SAMPLES, PerspectivesConfig
from ads.generators.persp.unit_generator import run
from ads.guard import run_guarded
from ads.run import RunContext
from models.base import Model

Config = str | Path | dict[str, Any] | PerspectivesConfig


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


def run_pipeline(config: Config, *, test: bool | None = None, overrides: list[str] | None = None,
                 resume: bool = False, overwrite: bool = False, run_dir: str | Path | None = None,
                 model: Model | None = None, judge_model: Model | None = None,
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
    try:
        return run(cfg, ctx, model=model, judge_model=judge_model, sleep=sleep, progress=progress)
    finally:
        ctx.close_executor()  # a run that raised still hands back its threads / Ray workers


class PerspectivesPipeline:
    """The original tool's object API: `PerspectivesPipeline(config, test=True).run()` returns the
    dataset path; `await pipeline.generate_dataset()` does the same from asyncio."""

    def __init__(self, config: Config, *, test: bool | None = None, resume: bool = False, overwrite: bool = False,
                 run_dir: str | Path | None = None, model: Model | None = None, judge_model: Model | None = None,
                 progress: bool = True):
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
    p.add_argument("--config", dest="config_opt", metavar="CONFIG",
                   help="same, as an option (the original tool's spelling)")
    p.add_argument("--test", action="store_true",
                   help=f"{TEST_SAMPLES} samples, first {TEST_PERSPECTIVES} perspectives")
    add_run_flags(p)
    p.add_argument("--no-progress", action="store_true",
                   help="no progress bar (it shows on a terminal otherwise)")
    args = p.parse_args(argv)
    config = args.config_opt or args.config_path
    if not config or (args.config_opt and args.config_path):
        p.error("give exactly one config: CONFIG or --config CONFIG")

    def body() -> int:
        summary = run_pipeline(config, test=True if args.test else None, overrides=args.set, resume=args.resume,
                               overwrite=args.overwrite, progress=not args.no_progress)
        print(f"Dataset saved to: {summary['dataset']}")
        return 0

    return run_guarded(body)
