"""SIGKILL-and-resume harness shared by the kill tests of every generator.

A reference run goes first with a fresh request cache; its model calls (real SmolLM2, seeded)
then replay from a copy of that cache in every killed run, so kills land at random points of a
run that takes seconds instead of minutes, and the uninterrupted outputs are known exactly.
Kill points are drawn by progress (records on disk, plus a random delay), not by wall time, so
they land inside the run however loaded the machine is.
What is under test is the write path: append-only stores, state files and --resume.
"""
from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
# Fields that legitimately differ between two runs of the same seed (clocks, cache flags).
VOLATILE = {"ts", "t", "time", "wall_s", "latency_s", "cached", "elapsed_s", "generated_at", "created_at",
            "timestamp", "started", "finished", "duration_s", "replayed_tokens", "run_dir", "run_id", "path",
            "generation_time", "generation_time_s", "seconds", "tokens_per_s", "resumed"}


@dataclass
class GeneratorSpec:
    """A kill-loop case: a config run with small settings. What is compared comes from the
    generator's contract (ads/harness/contract.py): every store it declares, by its id field."""

    name: str
    argv: list[str]                      # after `main.py generate`
    records: list[str] = field(default_factory=list)  # filled from the generator's stores
    id_field: str = "id"
    id_fields: dict[str, str] = field(default_factory=dict)  # filled from the stores' id fields
    # Per file: which rows are outputs. Bookkeeping rows that only a resumed run writes (a
    # "run_start" marker, say) are left out of the comparison; every output row must match.
    keep: dict[str, Any] = field(default_factory=dict)
    files: list[str] = field(default_factory=list)  # JSON outputs compared whole
    # Fields that count compute actually spent: a killed run re-does unrecorded work (from the
    # cache), so these may honestly differ from an uninterrupted run's.
    volatile: set[str] = field(default_factory=set)
    timeout_s: float = 900
    ci: bool = True      # False: only in the `-m slow` loop (a reference run too long for CI)
    ci_kills: int = 1    # kills in the CI run (the slow loop runs ten)

    def __post_init__(self) -> None:
        from ads.harness.kinds import generator_class

        stores = generator_class(self.kind).stores
        self.records = [s.file for s in stores]
        self.id_fields = {s.file: s.id_field for s in stores}

    @property
    def kind(self) -> str:
        from ads.config import read_yaml

        data = read_yaml(ROOT / self.argv[0])
        return data.get("kind", "perspectives" if "agent_perspectives" in data else "ads")


def strip(obj: Any, extra: frozenset[str] | set[str] = frozenset()) -> Any:
    if isinstance(obj, dict):
        return {k: strip(v, extra) for k, v in obj.items() if k not in VOLATILE and k not in extra}
    if isinstance(obj, list):
        return [strip(v, extra) for v in obj]
    if isinstance(obj, float):
        return round(obj, 6)
    return obj


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _cmd(spec: GeneratorSpec, results: Path, cache: Path, extra: list[str]) -> list[str]:
    return [sys.executable, "main.py", "generate", *spec.argv, "--set", f"results_dir={results}",
            "--set", f"cache.path={cache}", "--set", "tracking.wandb=false", *extra]


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONUNBUFFERED": "1", "WANDB_MODE": "disabled"}


def run_to_end(spec: GeneratorSpec, results: Path, cache: Path, extra: list[str] = ()) -> float:
    t0 = time.perf_counter()
    p = subprocess.run(_cmd(spec, results, cache, list(extra)), cwd=ROOT, env=_env(), capture_output=True,
                       text=True, timeout=spec.timeout_s, stdin=subprocess.DEVNULL)
    assert p.returncode == 0, f"{spec.name}: exit {p.returncode}\n{p.stdout[-2000:]}\n{p.stderr[-3000:]}"
    return time.perf_counter() - t0


def records_on_disk(spec: GeneratorSpec, results: Path) -> int:
    """Complete lines in the record files of the (single) run folder under `results`."""
    n = 0
    if results.exists():
        for d in results.iterdir():
            for name in spec.records:
                try:
                    n += (d / name).read_bytes().count(b"\n")
                except (FileNotFoundError, NotADirectoryError):
                    pass
    return n


def kill_at(spec: GeneratorSpec, results: Path, cache: Path, after_records: int, jitter_s: float) -> bool:
    """Start a run; once `after_records` record lines are on disk, wait `jitter_s` and SIGKILL it.
    Returns whether it was still running (really killed)."""
    p = subprocess.Popen(_cmd(spec, results, cache, []), cwd=ROOT, env=_env(), stdout=subprocess.DEVNULL,
                         stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL)
    t0 = time.perf_counter()
    try:
        while p.poll() is None and (not results.exists() or records_on_disk(spec, results) < after_records):
            assert time.perf_counter() - t0 < spec.timeout_s, f"{spec.name}: the killed run hung"
            time.sleep(0.01)
        p.wait(timeout=jitter_s)
        return False
    except subprocess.TimeoutExpired:
        p.send_signal(signal.SIGKILL)
        p.wait()
        return True
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()


def run_dir(results: Path) -> Path:
    dirs = [d for d in results.iterdir() if d.is_dir()]
    assert len(dirs) == 1, f"expected one run folder in {results}, found {dirs}"
    return dirs[0]


def outputs(spec: GeneratorSpec, d: Path) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name in spec.records:
        rows = [r for r in read_jsonl(d / name) if name not in spec.keep or spec.keep[name](r)]
        key = spec.id_fields.get(name, spec.id_field)
        ids = [r[key] for r in rows]
        assert len(ids) == len(set(ids)), f"{spec.name}: duplicated records in {name}"
        out[name] = {i: strip(r, spec.volatile) for i, r in zip(ids, rows)}
    for name in spec.files:
        out[name] = strip(json.loads((d / name).read_text()), spec.volatile)
    return out


def check_ledger(d: Path) -> None:
    rows = read_jsonl(d / "ledger.jsonl")
    summary_path = d / "ledger_summary.json"
    if summary_path.exists():
        s = json.loads(summary_path.read_text())["run"]
        assert s["total_tokens"] == sum((r.get("prompt_tokens") or 0) + (r.get("completion_tokens") or 0) for r in rows)


def kill_and_resume(spec: GeneratorSpec, tmp: Path, kills: int, seed: int = 0,
                    replay: bool = True) -> list[tuple[int, float]]:
    """Reference run, then `kills` trials: kill at a random point, resume to the end, compare.

    A random point: after a random number k of the reference's record lines (0 <= k < all of
    them) are on disk, plus a random 1 ms - 1.5 s (shortened when the run finishes within it),
    so kills land between records, inside a model call or a write, and in the bookkeeping
    after the last record. `replay`: also check first that a
    plain run from the cached calls reproduces the reference (a determinism check that tells a
    non-deterministic generator apart from a resume bug; the kill trials imply it).
    """
    cache = tmp / "reference.sqlite"
    run_to_end(spec, tmp / "ref", cache)
    reference = outputs(spec, run_dir(tmp / "ref"))
    total = records_on_disk(spec, tmp / "ref")
    assert total and any(reference[n] for n in spec.records), f"{spec.name}: the reference run wrote no records"
    if replay:
        run_to_end(spec, tmp / "replay", _copy(cache, tmp / "replay.sqlite"))
        got = outputs(spec, run_dir(tmp / "replay"))
        assert got == reference, f"{spec.name}: a cached replay differs: {first_difference(reference, got)}"
    rng = random.Random(seed)
    points, resumed = [], 0
    for i in range(kills):
        results, c = tmp / f"kill{i}", _copy(cache, tmp / f"kill{i}.sqlite")
        # log-uniform 1 ms .. 1.5 s: replayed calls write records milliseconds apart, while the
        # summary and plots after the last record take seconds; each scale gets its share of kills
        after, jitter = rng.randrange(total), round(10 ** rng.uniform(-3, 0.18), 4)
        killed = kill_at(spec, results, c, after, jitter)
        while not killed and jitter > 0.001:  # it finished within the delay: the same point, sooner
            shutil.rmtree(results, ignore_errors=True)
            jitter = round(jitter / 4, 4)
            killed = kill_at(spec, results, c, after, jitter)
        points.append((after, jitter))
        if killed and results.exists() and any(results.iterdir()):
            run_to_end(spec, results, c, ["--resume"])
            resumed += 1
        else:  # killed before the folder existed, or it finished first: a plain run
            shutil.rmtree(results, ignore_errors=True)
            run_to_end(spec, results, c)
        d = run_dir(results)
        got = outputs(spec, d)
        assert got == reference, f"{spec.name}: outputs differ after a kill at {after} records + {jitter}s: " \
                                 f"{first_difference(reference, got)}"
        check_ledger(d)
    # a kill loop in which no run was ever killed mid-way and resumed has tested nothing
    assert resumed >= (kills + 1) // 2, f"{spec.name}: only {resumed} of {kills} trials were killed and resumed " \
                                        f"(points {points})"
    return points


def first_difference(a: Any, b: Any, where: str = "") -> str:
    if isinstance(a, dict) and isinstance(b, dict):
        if set(a) != set(b):
            return f"{where}: keys only in expected {sorted(set(a) - set(b))[:5]}, only in got {sorted(set(b) - set(a))[:5]}"
        for k in a:
            if a[k] != b[k]:
                return first_difference(a[k], b[k], f"{where}/{k}")
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        for i, (x, y) in enumerate(zip(a, b)):
            if x != y:
                return first_difference(x, y, f"{where}[{i}]")
    return f"{where}: expected {str(a)[:200]!r}, got {str(b)[:200]!r}"


def _copy(src: Path, dst: Path) -> Path:
    shutil.copy(src, dst)
    return dst
