"""W&B for an export (issue 23, item 5): the dataset as an artifact, a table of sample records
(accepted and rejected, with reasons), the run's PNG plots, the card's figures and every
numeric summary metric (nested ones flattened as `a/b/c`).

It works on the run's own W&B run (`ads.tracking.Tracker.wandb_run`, offline unless the user
says otherwise) and, like the tracker, it never fails or blocks a run: any error is one printed
warning and the run goes on.
"""
from __future__ import annotations

from ads.tracking import flatten  # noqa: F401  (one flattening for the summary and the export)

from pathlib import Path
from typing import Any

SAMPLES = 20  # accepted and rejected records each in the sample table
COLUMNS = ["id", "accepted", "reject_reason", "judge_score", "instruction", "response"]


def sample_rows(rows: list[dict[str, Any]], n: int = SAMPLES) -> list[list[Any]]:
    acc = [r for r in rows if r["accepted"]][:n]
    rej = [r for r in rows if not r["accepted"]][:n]
    return [[r["id"], r["accepted"], r["reject_reason"], r["judge_score"], r["instruction"][:2000],
             r["response"][:2000]] for r in acc + rej]


def log_export(wandb_run: Any, res: dict[str, Any], run_dir: str | Path, summary: dict[str, Any] | None = None) -> bool:
    """Artifact + sample table + plots + figures on `wandb_run`; False (with one warning) on any error."""
    if wandb_run is None:
        return False
    try:
        import wandb

        from ads.export.core import load_run

        run_dir = Path(run_dir)
        loaded = load_run(run_dir)
        stats = res.get("stats", {})
        art = wandb.Artifact(name=f"{res['generator']}-dataset-{run_dir.name}".replace("_", "-"), type="dataset",
                             description=f"{res['generator']} export of {run_dir.name} (dataset card: README.md)",
                             metadata={"counts": res["counts"], "splits": res["splits"],
                                       "near_duplicates": stats.get("near_duplicates"),
                                       "judge_scores": stats.get("judge_scores"), "partial": res["partial"]})
        art.add_dir(res["out"])
        wandb_run.log_artifact(art)
        table = wandb.Table(columns=COLUMNS, data=sample_rows(loaded.rows))
        logged: dict[str, Any] = {"export/samples": table}
        for png in sorted(run_dir.glob("*.png")):
            logged[f"plots/{png.stem}"] = wandb.Image(str(png))
        wandb_run.log(logged)
        figures = flatten({"export": {"counts": {k: v for k, v in res["counts"].items()},
                                      "near_duplicate_rate": (stats.get("near_duplicates") or {}).get("rate"),
                                      "judge": stats.get("judge_scores") or {},
                                      "diversity": stats.get("diversity") or {}}})
        figures.update(flatten(summary or {}))
        for k, v in figures.items():
            wandb_run.summary[k] = v
        return True
    except Exception as e:  # noqa: BLE001 - W&B is a convenience; the run and the export stand without it
        print(f"[export] W&B logging skipped ({type(e).__name__}: {e})")
        return False


def log_export_offline(run_dir: str | Path, res: dict[str, Any]) -> bool:
    """`main.py export --wandb`: a W&B run of its own in RUN_DIR (offline unless WANDB_MODE says otherwise)."""
    from ads.config import TrackingConfig
    from ads.export.core import read_config
    from ads.store import read_json
    from ads.tracking import Tracker

    run_dir = Path(run_dir)
    tracker = Tracker(run_dir, f"{run_dir.name}-export", TrackingConfig(wandb=True), read_config(run_dir))
    try:
        return log_export(tracker.wandb_run, res, run_dir, read_json(run_dir / "summary.json", {}) or {})
    finally:
        tracker.finish()
