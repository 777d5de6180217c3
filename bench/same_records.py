"""Does a change keep every generator's records? Run each kill-loop spec at a git revision and
in the working tree, and compare the records file by file.

    .venv/bin/python bench/same_records.py                   # all CI specs, before = HEAD
    .venv/bin/python bench/same_records.py --before ea737be bandit tool_use

The "before" run (in a temporary `git worktree` of the revision) computes its model calls with
a fresh request cache; the "after" run starts from a copy of that cache. So when the new code
sends the same requests it gets the same completions and must write the same records; a
request it changes is computed afresh and shows up as a difference. Records are compared by
id with the kill loop's rules (tests/integration/killing.py: clocks, cache flags and token
counts of replayed calls left out). Exit 1 when any spec differs.
"""
from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests" / "integration")]

from killing import _env, first_difference, outputs, run_dir  # noqa: E402
from test_kill_resume import SPECS  # noqa: E402


def run_spec(spec, cwd: Path, results: Path, cache: Path) -> float:
    cmd = [sys.executable, "main.py", "generate", *spec.argv, "--set", f"results_dir={results}",
           "--set", f"cache.path={cache}", "--set", "tracking.wandb=false",
           "--set", f"models_dir={ROOT / 'cache' / 'models'}"]
    t0 = time.perf_counter()
    p = subprocess.run(cmd, cwd=cwd, env={**_env(), "PYTHONPATH": str(cwd)}, capture_output=True, text=True,
                       stdin=subprocess.DEVNULL, timeout=spec.timeout_s)
    if p.returncode != 0:
        raise SystemExit(f"{spec.name} in {cwd} exited {p.returncode}:\n{p.stderr[-3000:]}")
    return time.perf_counter() - t0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("names", nargs="*", help=f"specs (default: the CI ones): {sorted(SPECS)}")
    ap.add_argument("--before", default="HEAD", help="git revision to compare against (default HEAD)")
    args = ap.parse_args()
    names = args.names or sorted(n for n, s in SPECS.items() if s.ci)
    unknown = set(names) - set(SPECS)
    if unknown:
        raise SystemExit(f"unknown spec(s) {sorted(unknown)}; choose from {sorted(SPECS)}")
    rev = subprocess.run(["git", "rev-parse", "--short", args.before], cwd=ROOT, capture_output=True, text=True,
                         check=True).stdout.strip()
    tmp = Path(tempfile.mkdtemp(prefix="same-records-"))
    tree = tmp / "before-tree"
    subprocess.run(["git", "worktree", "add", "--detach", str(tree), rev], cwd=ROOT, check=True, capture_output=True)
    bad = 0
    try:
        for name in names:
            spec = SPECS[name]
            cache = tmp / f"{name}.sqlite"
            t_before = run_spec(spec, tree, tmp / f"{name}-before", cache)
            shutil.copy(cache, tmp / f"{name}-after.sqlite")
            t_after = run_spec(spec, ROOT, tmp / f"{name}-after", tmp / f"{name}-after.sqlite")
            a = outputs(spec, run_dir(tmp / f"{name}-before"))
            b = outputs(spec, run_dir(tmp / f"{name}-after"))
            n = sum(len(a[f]) for f in spec.records)
            if a == b:
                print(f"{name:<16} same records ({n} in {', '.join(spec.records)}; files {', '.join(spec.files)}) "
                      f"before {rev} {t_before:.0f} s, after {t_after:.0f} s")
            else:
                bad += 1
                print(f"{name:<16} DIFFERENT: {first_difference(a, b)}")
    finally:
        subprocess.run(["git", "worktree", "remove", "--force", str(tree)], cwd=ROOT, capture_output=True)
        shutil.rmtree(tmp, ignore_errors=True)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
