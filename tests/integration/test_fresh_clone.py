"""A fresh clone is self-contained (issue 23, item 6): nothing the tool-use generator or its tests
read lies outside the repository.

The repository is `git clone`d into a temporary folder that has no sibling folders (so a path
outside the repository resolves to nothing) and the tool-use unit tests run there with this
test's own Python. What is tested is the committed HEAD, exactly what a person who clones the
project gets: a file that exists only in the working tree (forgotten `git add`) makes this fail.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _git(*args: str, cwd: Path) -> str:
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True).stdout


@pytest.fixture(scope="module")
def clone(tmp_path_factory) -> Path:
    if shutil.which("git") is None or not (ROOT / ".git").exists():
        pytest.skip("not a git checkout: nothing to clone")
    parent = tmp_path_factory.mktemp("lonely")
    dest = parent / "repo"
    _git("clone", "--quiet", "--no-hardlinks", str(ROOT), str(dest), cwd=parent)
    return dest


def _env() -> dict[str, str]:
    # nothing from this checkout may leak into the clone's imports
    return {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTEST_ADDOPTS")}


def test_the_clone_has_no_siblings_and_imports_its_own_code(clone):
    assert [p.name for p in clone.parent.iterdir()] == ["repo"]
    out = subprocess.run([sys.executable, "-c", "import ads, ads.generators.tool_use as t; print(ads.__file__); "
                          "print(t.ToolUseConfig().tools.paths)"],
                         cwd=clone, env=_env(), capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    mod_file, paths = out.stdout.splitlines()
    assert Path(mod_file).resolve().is_relative_to(clone.resolve())  # the clone's code, not this checkout's
    assert "data/toolbench" in paths


def test_no_default_config_names_a_path_outside_the_repository(clone):
    from ads.config import load_config
    from ads.generators.tool_use import ToolUseConfig, resolve_paths

    cfg = load_config(ToolUseConfig, clone / "configs" / "tool_use.yaml", [])
    for p in [*resolve_paths(cfg.tools.paths), *resolve_paths(ToolUseConfig().tools.paths)]:
        q = Path(p) if Path(p).is_absolute() else ROOT / p
        assert q.resolve().is_relative_to(ROOT.resolve()), p
    assert (clone / "data" / "toolbench" / "data_example" / "instruction" / "G1_query.json").is_file()
    assert (clone / "data" / "README.md").is_file()


def test_tool_use_unit_tests_pass_in_a_fresh_clone(clone):
    out = subprocess.run([sys.executable, "-m", "pytest", "tests/unit/test_tool_use.py", "-q", "-x",
                          "-p", "no:cacheprovider"], cwd=clone, env=_env(), capture_output=True, text=True,
                         timeout=900)
    tail = "\n".join((out.stdout + out.stderr).splitlines()[-25:])
    assert out.returncode == 0, tail
    assert " passed" in tail and "error" not in tail.splitlines()[-1]
