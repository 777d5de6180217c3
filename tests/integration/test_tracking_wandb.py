"""W&B runs offline by default, writes its run folder, makes no network connection, never blocks."""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent.parent
SCRIPT = """
import sys
sys.path.insert(0, {root!r})
from pathlib import Path
from ads.config import TrackingConfig
from ads.tracking import Tracker
tr = Tracker(Path(sys.argv[1]), "wbtest", TrackingConfig(), {{"seed": 1, "token": "do-not-log-me"}})
tr.log({{"loss": 1.0}}, step=1)
tr.log({{"loss": 0.5}}, step=2)
tr.finish()
print("WANDB_DIR", tr.wandb_dir)
"""


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("WANDB_")}
    return env


def _run(tmp_path: Path, prefix: list[str]) -> tuple[subprocess.CompletedProcess, float]:
    script = tmp_path / "track.py"
    script.write_text(SCRIPT.format(root=str(ROOT)))
    t0 = time.time()
    proc = subprocess.run([*prefix, sys.executable, str(script), str(tmp_path / "run")], capture_output=True,
                          text=True, timeout=180, env=_env())
    return proc, time.time() - t0


def _check_outputs(tmp_path: Path, proc: subprocess.CompletedProcess) -> None:
    assert proc.returncode == 0, proc.stderr[-2000:]
    runs = list((tmp_path / "run" / "wandb").glob("offline-run-*"))
    assert len(runs) == 1 and list(runs[0].glob("*.wandb")), "no offline W&B run written"
    assert (tmp_path / "run" / "metrics.jsonl").read_text().count("loss") == 2
    for f in (tmp_path / "run").rglob("*"):
        if f.is_file():
            assert b"do-not-log-me" not in f.read_bytes(), f"secret-like value leaked into {f}"


@pytest.mark.skipif(shutil.which("strace") is None, reason="strace not installed; the no-network test below still runs")
def test_offline_wandb_makes_no_network_connection(tmp_path):
    log = tmp_path / "strace.log"
    proc, _ = _run(tmp_path, ["strace", "-f", "-qq", "-e", "trace=connect,sendto,sendmsg", "-o", str(log)])
    _check_outputs(tmp_path, proc)
    inet = [ln for ln in log.read_text().splitlines() if re.search(r"AF_INET6?\b", ln)]
    external = [ln for ln in inet if not re.search(r'inet_addr\("127\.|inet_pton\(AF_INET6, "::1"', ln)]
    assert not external, "network connection attempted:\n" + "\n".join(external[:5])


def test_offline_wandb_does_not_block_without_any_network(tmp_path):
    if subprocess.run(["unshare", "-rn", "true"], capture_output=True).returncode != 0:
        pytest.fail("unshare -rn is needed to cut the network for this test (util-linux)")
    proc, elapsed = _run(tmp_path, ["unshare", "-rn"])
    _check_outputs(tmp_path, proc)
    assert elapsed < 60, f"tracking took {elapsed:.0f}s without network"
