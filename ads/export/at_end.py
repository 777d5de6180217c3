"""The export every generator writes at the end of its run, before `ctx.finish` closes W&B.

RUN_DIR/export gets the save_to_disk folder and parquet files (accepted in `train`, rejected in
`rejected`) and the dataset card; the run's W&B run gets the artifact, the sample table, the
plots and the flattened summary. An export problem never fails the run that made the records:
it is one printed line, and `main.py export RUN_DIR` can redo it.
"""
from __future__ import annotations

from typing import Any


def export_at_end(ctx: Any, summary: dict[str, Any] | None = None) -> dict[str, Any] | None:
    from ads.export.core import DEFAULT_FORMATS, export_run
    from ads.export.wandb_log import log_export

    try:
        res = export_run(ctx.run_dir, ctx.run_dir / "export", DEFAULT_FORMATS, include_rejected=True,
                         finished=True)
    except Exception as e:  # noqa: BLE001 - the records are safe on disk; the export can be redone
        print(f"[export] not written ({type(e).__name__}: {e}); retry with: main.py export {ctx.run_dir}")
        return None
    c = res["counts"]
    print(f"[export] {c['accepted']} accepted + {c['rejected']} rejected records -> {res['out']} "
          f"(save_to_disk + parquet, card README.md)")
    tracker = getattr(ctx, "tracker", None)
    if tracker is not None:
        log_export(getattr(tracker, "wandb_run", None), res, ctx.run_dir, summary)
    return res
