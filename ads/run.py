"""Everything one run owns: its folder, resolved config, ledger, cache, tracker and models.

The run id is the config name plus a hash of the resolved config, so the same config and
seed always land in the same folder, and `--resume` finds what an interrupted run wrote.
Models are loaded once per run (shared between roles) and wrapped outside-in as
ledger(role) -> request cache -> backend, so a cache hit is recorded as a cached call.
"""
from __future__ import annotations

import importlib.metadata
import platform
import random
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ads.config import ModelConfig, RunConfig, config_hash, dump_yaml
from ads.ledger import CostLedger, LedgeredModel
from ads.runlock import (MARKER, RunExists, RunLock, RunLocked, clear_folder,  # noqa: F401 (re-exported)
                          has_content, is_harness_folder, mark, remove_folder)
from ads.store import atomic_write_json, atomic_write_text, read_json
from ads.tracking import Tracker, redact_argv, scrub
from models.base import FatalModelError, Model
from models.caching import CachingModel, RequestCache
from models.registry import ModelPool

PACKAGES = ("torch", "transformers", "peft", "accelerate", "datasets", "llama_cpp_python", "bm25s", "rank_bm25",
            "scikit-learn", "wandb", "datasketch", "pydantic", "sentence-transformers", "numpy")


class NoModelCallSucceeded(FatalModelError):
    """A run whose every model call failed: it ends with an error instead of a summary of zeros."""


def package_versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            pass
    return out


def print_compute(totals: dict[str, Any]) -> None:
    """One line on the prompt tokens the models actually evaluated (ads/ledger.py), when reported."""
    if totals.get("computed_prompt_ratio") is None:
        return
    print(f"[compute] prompt tokens computed {totals['prompt_tokens_computed']:,} of "
          f"{totals['prompt_tokens_requested']:,} requested ({totals['computed_prompt_ratio']:.0%}); "
          f"prefill {totals['prefill_s']:.1f} s, decode {totals['decode_s']:.1f} s")


def run_id_for(cfg: RunConfig) -> str:
    return f"{cfg.name}-{config_hash(cfg)[:8]}"


@dataclass
class RunContext:
    cfg: RunConfig
    run_dir: Path
    run_id: str
    resume: bool
    ledger: CostLedger
    tracker: Tracker
    cache: RequestCache | None
    pool: ModelPool
    started: float = field(default_factory=time.time)
    _wrapped: dict[str, Model] = field(default_factory=dict)
    _executor: Any = None
    _lock: RunLock | None = None  # held while this process writes run_dir (ads/runlock.py)
    _created: bool = False  # this invocation made run_dir: abort() may remove it

    @classmethod
    def create(cls, cfg: RunConfig, *, resume: bool = False, overwrite: bool = False,
               run_dir: str | Path | None = None) -> "RunContext":
        run_id = run_id_for(cfg)
        run_dir = Path(run_dir) if run_dir else Path(cfg.results_dir) / run_id
        if run_dir.exists() and not run_dir.is_dir():
            raise RunExists(f"{run_dir} exists and is not a folder; choose another results_dir / output folder")
        # The cache first: a bad cache.path is a user error that must leave no run folder behind.
        cache = RequestCache(cfg.cache.path) if cfg.cache.enabled else None
        existed = run_dir.exists()
        if overwrite and has_content(run_dir) and not is_harness_folder(run_dir):
            raise RunExists(f"{run_dir} was not created by this harness (no {MARKER} marker); --overwrite "
                            f"deletes only run folders it made: remove it yourself or choose another folder")
        lock = RunLock(run_dir).acquire()  # a second process on this folder stops here (RunLocked)
        try:
            if has_content(run_dir):
                if overwrite:
                    clear_folder(run_dir)
                elif not resume:
                    done = (run_dir / "summary.json").exists()
                    raise RunExists(
                        f"{run_dir} already holds {'a finished' if done else 'an interrupted'} run of this config; "
                        f"pass --resume to {'reuse it' if done else 'continue it'} or --overwrite to start again")
            mark(run_dir, run_id=run_id)
        except BaseException:
            lock.release()
            if cache is not None:
                cache.close()
            raise
        resolved = cfg.model_dump(mode="json", by_alias=True)  # as written: aliased keys (`schema:`) validate again
        atomic_write_text(run_dir / "config.yaml", dump_yaml(cfg.model_validate(scrub(resolved))))
        prev = read_json(run_dir / "run_info.json", {}) or {}
        atomic_write_json(run_dir / "run_info.json", {
            "run_id": run_id, "seed": cfg.seed, "config_hash": config_hash(cfg),
            "argv": redact_argv(sys.argv), "packages": package_versions(), "platform": platform.platform(),
            "started": prev.get("started", time.time()), "resumed": prev.get("resumed", 0) + (1 if resume and prev else 0),
        })
        random.seed(cfg.seed)
        try:
            import numpy as np

            np.random.seed(cfg.seed % (2**32))
        except ImportError:  # pragma: no cover
            pass
        ledger = CostLedger(run_dir / "ledger.jsonl")
        tracker = Tracker(run_dir, run_id, cfg.tracking, resolved, resume=resume)
        return cls(cfg=cfg, run_dir=run_dir, run_id=run_id, resume=resume, ledger=ledger, tracker=tracker,
                   cache=cache, pool=ModelPool(cfg.models_dir), _lock=lock, _created=not existed)

    @classmethod
    def for_worker(cls, cfg: RunConfig) -> "RunContext":
        """A Ray worker's context: its own models and request cache, an in-memory ledger whose entries
        go back to the driver with each result (ads/executor.py), and a scratch folder, not the run's."""
        import tempfile

        cache = RequestCache(cfg.cache.path) if cfg.cache.enabled else None
        return cls(cfg=cfg, run_dir=Path(tempfile.mkdtemp(prefix="ads-worker-")), run_id="worker", resume=False,
                   ledger=CostLedger(None), tracker=None, cache=cache,  # type: ignore[arg-type]
                   pool=ModelPool(cfg.models_dir))

    def model(self, role: str, mcfg: ModelConfig) -> Model:
        """The model for a role, loaded once, cached and charged to the ledger under that role."""
        if role not in self._wrapped:
            base = self.pool.get(mcfg, role)
            self._wrapped[role] = self.wrap(base, role)
        return self._wrapped[role]

    def wrap(self, model: Model, role: str) -> Model:
        inner: Model = CachingModel(model, self.cache) if self.cache is not None else model
        return LedgeredModel(inner, self.ledger, role)

    def executor(self) -> Any:
        """The run's `ads.executor.Executor` (cfg.executor; local by default), started on first use
        and closed by finish() / abort()."""
        if self._executor is None:
            from ads.executor import make_executor

            self._executor = make_executor(getattr(self.cfg, "executor", None))
        return self._executor

    def is_run_executor(self, executor: Any) -> bool:
        """Whether `executor` is this run's own (closed by finish/abort), not one a generator made."""
        return executor is self._executor

    def close_executor(self) -> None:
        if self._executor is not None:
            ex, self._executor = self._executor, None
            ex.close()

    def state_path(self) -> Path:
        return self.run_dir / "state.json"

    def load_state(self) -> dict[str, Any] | None:
        return read_json(self.state_path()) if self.resume else None

    def save_state(self, state: dict[str, Any]) -> None:
        atomic_write_json(self.state_path(), state)

    def has_records(self) -> bool:
        """True once any output record exists (the ledger, metrics and W&B do not count)."""
        bookkeeping = {"ledger.jsonl", "metrics.jsonl"}
        return any(p.stat().st_size > 0 for p in self.run_dir.glob("*.jsonl") if p.name not in bookkeeping)

    def abort(self) -> bool:
        """After a user error: delete the folder if this invocation created it and no record was
        written, so a typo in a model name leaves nothing behind. Returns whether it was removed."""
        self.close_executor()
        self.tracker.finish()
        if self.cache is not None:
            self.cache.close()
        if self.resume or self.has_records() or not self._created:
            self.release()
            return False
        self.release()
        return remove_folder(self.run_dir)  # only a folder carrying the harness marker

    def release(self) -> None:
        """Let other processes have the run folder (finish() and abort() call this)."""
        if self._lock is not None:
            self._lock.release()

    def finish(self, summary: dict[str, Any]) -> dict[str, Any]:
        model_calls = self.ledger.totals(kind="model")
        if model_calls["model_calls"] and model_calls["failed_calls"] == model_calls["model_calls"]:
            # Every call failed: scores of zero would read as a result (a "TIES" verdict on nothing).
            raise NoModelCallSucceeded(
                f"run {self.run_id}: all {model_calls['model_calls']} model calls failed, none succeeded; no result "
                f"is reported (see {self.run_dir / 'ledger.jsonl'} and the warnings above)")
        summary = {**summary, "run_id": self.run_id, "run_dir": str(self.run_dir),
                   "wall_s": round(time.time() - self.started, 1), "ledger": self.ledger.summary()}
        atomic_write_json(self.run_dir / "ledger_summary.json", self.ledger.summary())
        atomic_write_json(self.run_dir / "summary.json", summary)
        print_compute(summary["ledger"]["run"])
        self.tracker.summary(summary)  # nested figures flattened to a/b/c keys
        self.tracker.finish()
        self.close_executor()
        if self.cache is not None:
            self.cache.close()
        self.release()
        return summary
