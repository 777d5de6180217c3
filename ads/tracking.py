"""Metrics to `metrics.jsonl`, to Weights & Biases (offline unless the user says otherwise), and PNGs.

W&B must never be the reason a run fails or hangs on a laptop without network: it runs in
offline mode unless the user's own WANDB_MODE (or the config) says otherwise, its optional
network features are switched off, its start-up is bounded by a timeout, and any error
while starting or logging downgrades to JSONL-only tracking with one warning.
"""
from __future__ import annotations

import logging
import os
import re
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from ads.config import TrackingConfig
from ads.store import JsonlStore

log = logging.getLogger(__name__)

_SECRETISH = re.compile(r"(key|token|secret|password)", re.I)


_URL = re.compile(r"\b[A-Za-z][A-Za-z0-9+.-]*://[^\s'\"<>]+")
_SECRET_PARAM = re.compile(r"(key|token|secret|password|passwd|pwd|auth|sig|signature|credential)", re.I)


def redact_url(url: str) -> str:
    """`https://user:pass@host/p?api_key=k&x=1` -> `https://***@host/p?api_key=***&x=1`.

    Credentials in a URL's user info or in a secret-looking query parameter would otherwise be
    written verbatim to config.yaml, run_info.json and W&B."""
    def one(m: re.Match) -> str:
        u = m.group(0)
        try:
            parts = urlsplit(u)
        except ValueError:
            return "<unparseable url>"
        netloc = parts.netloc
        if "@" in netloc:
            netloc = "***@" + netloc.rsplit("@", 1)[1]
        query = "&".join(
            (kv.split("=", 1)[0] + "=***") if "=" in kv and _SECRET_PARAM.search(kv.split("=", 1)[0]) else kv
            for kv in parts.query.split("&")) if parts.query else ""
        return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))

    return _URL.sub(one, url)


def redact_argv(argv: list[str]) -> list[str]:
    """sys.argv for run_info.json: URLs without credentials, `--set x.token=V` values hidden."""
    out = []
    for a in argv:
        a = redact_url(str(a))
        k, eq, v = a.partition("=")
        if eq and _SECRETISH.search(k.rsplit(".", 1)[-1]) and not k.endswith("_env") and v:
            a = f"{k}=<redacted>"
        out.append(a)
    return out


def scrub(obj: Any) -> Any:
    """Drop values whose key looks like a secret, and credentials inside URLs, before anything is
    logged or saved."""
    if isinstance(obj, dict):
        return {k: ("<redacted>" if _SECRETISH.search(str(k)) and not str(k).endswith("_env")
                    and isinstance(v, str) and v else scrub(v)) for k, v in obj.items()}
    if isinstance(obj, list):
        return [scrub(v) for v in obj]
    if isinstance(obj, str) and "://" in obj:
        return redact_url(obj)
    return obj


def flatten(d: dict[str, Any], prefix: str = "") -> dict[str, float | int | bool | str]:
    """Every scalar in a nested dict as `a/b/c` -> value (lists and None are skipped)."""
    out: dict[str, Any] = {}
    for k, v in d.items():
        key = f"{prefix}/{k}" if prefix else str(k)
        if isinstance(v, dict):
            out.update(flatten(v, key))
        elif isinstance(v, (int, float, bool, str)):
            out[key] = v
    return out


class Tracker:
    def __init__(self, run_dir: Path, run_id: str, cfg: TrackingConfig, config_dict: dict[str, Any],
                 resume: bool = False):
        self.run_dir = Path(run_dir)
        self.metrics = JsonlStore(self.run_dir / "metrics.jsonl", id_field="_none")
        self.wandb_run = None
        self.wandb_dir: Path | None = None
        if cfg.wandb:
            self._start_wandb(run_id, cfg, scrub(config_dict), resume)

    def _start_wandb(self, run_id: str, cfg: TrackingConfig, config_dict: dict, resume: bool) -> None:
        mode = cfg.mode or os.environ.get("WANDB_MODE") or "offline"
        if mode == "disabled":
            return
        os.environ.setdefault("WANDB_SILENT", "true")
        os.environ.setdefault("WANDB_ERROR_REPORTING", "false")  # no Sentry reports from a laptop
        try:
            import wandb

            settings = wandb.Settings(
                mode=mode,
                init_timeout=cfg.init_timeout_s,
                disable_git=True,
                x_disable_stats=True,
                x_disable_meta=True,
                x_disable_machine_info=True,
                x_disable_viewer=True,
                disable_code=True,
                console="off",
                silent=True,
            )
            self.wandb_run = wandb.init(
                project=cfg.project, entity=cfg.entity, name=run_id, id=re.sub(r"[^A-Za-z0-9_-]", "-", run_id),
                dir=str(self.run_dir), config=config_dict, settings=settings,
                resume="allow" if resume else None, reinit="finish_previous",
            )
            self.wandb_dir = Path(self.wandb_run.dir).parent if self.wandb_run is not None else None
        except Exception as e:  # tracking is a convenience; the run goes on without it
            log.warning("W&B disabled for this run: %s: %s", type(e).__name__, e)
            print(f"[tracking] W&B could not start ({type(e).__name__}: {e}); metrics go to metrics.jsonl only")
            self.wandb_run = None

    def log(self, metrics: dict[str, Any], step: int | None = None) -> None:
        rec = dict(metrics)
        if step is not None:
            rec["step"] = step
        self.metrics.append(rec)
        if self.wandb_run is not None:
            try:
                flat = {k: v for k, v in metrics.items() if isinstance(v, (int, float, bool))}
                self.wandb_run.log(flat, step=step)
            except Exception as e:
                print(f"[tracking] W&B log failed ({e}); continuing with metrics.jsonl only")
                self.wandb_run = None

    def summary(self, values: dict[str, Any]) -> None:
        """Every scalar of the (nested) summary, as `a/b/c` keys: per-method and per-family figures too."""
        if self.wandb_run is not None:
            try:
                for k, v in flatten(values).items():
                    self.wandb_run.summary[k] = v
            except Exception:
                pass

    def finish(self) -> None:
        if self.wandb_run is not None:
            try:
                self.wandb_run.finish()
            except Exception as e:
                print(f"[tracking] W&B finish failed: {e}")
            self.wandb_run = None


def plot_curves(path: Path, title: str, series: dict[str, tuple[list[float], list[float]]],
                xlabel: str = "iteration", ylabel: str = "") -> Path:
    """One PNG with a line per series; x/y lists per series."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4), dpi=110)
    for name, (xs, ys) in series.items():
        ax.plot(xs, ys, marker="o", label=name)
    ax.set_title(title)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3)
    if len(series) > 1:
        ax.legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path
