"""Export one run folder as a Hugging Face dataset: save_to_disk folder, parquet, JSONL, card.

`export_run(run_dir)` reads the run's config.yaml (its `kind` picks the generator spec in
ads.export.specs), builds typed rows from the records on disk (a killed run exports what it
has), splits them into `train` (accepted) and, with include_rejected, `rejected`, and writes

    OUT/README.md          dataset card with the Hub's YAML front matter (ads.export.card)
    OUT/ads_export.json    manifest: generator, fields for fine-tuning, counts, files
    OUT/hf/                DatasetDict.save_to_disk (format "hf")
    OUT/parquet/SPLIT.parquet, OUT/jsonl/SPLIT.jsonl

The whole folder is built in a temporary sibling and renamed into place at the end, so a
crash or a bad input leaves the previous export (or nothing), never half of one.
"""
from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ads.export.specs import ExportError, GeneratorSpec, Row, spec_for
from ads.store import atomic_write_json, atomic_write_text

FORMATS = ("hf", "parquet", "jsonl")
DEFAULT_FORMATS = ("hf", "parquet")
MANIFEST = "ads_export.json"


@dataclass
class LoadedRun:
    run_dir: Path
    cfg: dict[str, Any]
    spec: GeneratorSpec
    rows: list[Row]

    @property
    def accepted(self) -> list[Row]:
        return [r for r in self.rows if r["accepted"]]

    @property
    def rejected(self) -> list[Row]:
        return [r for r in self.rows if not r["accepted"]]


def read_config(run_dir: Path) -> dict[str, Any]:
    from ads.config import ConfigError, read_yaml

    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise ExportError(f"{run_dir}: no such run folder")
    try:
        cfg = read_yaml(run_dir / "config.yaml")
    except ConfigError as e:
        raise ExportError(f"{e} (every run folder has the config.yaml its run wrote)") from None
    if not isinstance(cfg.get("kind"), str):
        raise ExportError(f"{run_dir / 'config.yaml'}: key 'kind' is missing or not a string")
    return cfg


def load_run(run_dir: str | Path) -> LoadedRun:
    run_dir = Path(run_dir)
    cfg = read_config(run_dir)
    spec = spec_for(cfg["kind"])
    rows = spec.rows(run_dir, cfg)
    if not rows:
        raise ExportError(f"{run_dir}: no records yet in {', '.join(spec.files)}")
    return LoadedRun(run_dir, cfg, spec, rows)


def to_dataset_dict(run: LoadedRun, include_rejected: bool) -> Any:
    from datasets import Dataset, DatasetDict
    from datasets.utils.logging import disable_progress_bar

    disable_progress_bar()  # one export line, not a bar per split and file
    feats = run.spec.all_features(run.cfg)
    splits = {"train": run.accepted}
    if include_rejected:
        splits["rejected"] = run.rejected
    try:
        return DatasetDict({name: Dataset.from_list(rows, features=feats) if rows else
                            Dataset.from_dict({k: [] for k in feats}, features=feats)  # an empty split keeps its types
                            for name, rows in splits.items()})
    except (TypeError, ValueError, KeyError) as e:  # a record whose field does not fit the declared type
        raise ExportError(f"{run.run_dir}: a record does not fit the {run.spec.kind} export features ({e})") from None


def export_run(run_dir: str | Path, out: str | Path | None = None, formats: tuple[str, ...] = DEFAULT_FORMATS,
               include_rejected: bool = False, finished: bool | None = None) -> dict[str, Any]:
    """Write the export folder; returns its manifest (also saved as OUT/ads_export.json).

    `finished`: whether the run completed; None reads it from summary.json (the end-of-run export
    runs just before the summary is written, so it says True)."""
    from datasets import DatasetDict

    from ads.export.card import card_text, compute_stats

    bad = [f for f in formats if f not in FORMATS]
    if bad or not formats:
        raise ExportError(f"--format: unknown format(s) {bad or formats}; choose from {list(FORMATS)}")
    run = load_run(run_dir)
    if finished is None:
        finished = (run.run_dir / "summary.json").exists()
    out = Path(out) if out else run.run_dir / "export"
    dd = to_dataset_dict(run, include_rejected)
    stats = compute_stats(run)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}.", suffix=".tmp"))
    try:
        files: list[str] = []
        # a 0-row split saved by save_to_disk does not load back (datasets 5.2): hf/ holds the non-empty ones
        full = DatasetDict({k: v for k, v in dd.items() if v.num_rows})
        if "hf" in formats and full:
            full.save_to_disk(str(tmp / "hf"))
            files.append("hf/")
        for name, ds in dd.items():
            if "parquet" in formats:
                (tmp / "parquet").mkdir(exist_ok=True)
                ds.to_parquet(str(tmp / "parquet" / f"{name}.parquet"))
                files.append(f"parquet/{name}.parquet")
            if "jsonl" in formats:
                (tmp / "jsonl").mkdir(exist_ok=True)
                rows = run.accepted if name == "train" else run.rejected
                atomic_write_text(tmp / "jsonl" / f"{name}.jsonl",
                                  "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
                files.append(f"jsonl/{name}.jsonl")
        manifest = {"generator": run.spec.kind, "run_dir": str(run.run_dir), "formats": list(formats),
                    "splits": {k: len(v) for k, v in dd.items()}, "files": files, **run.spec.manifest_fields(),
                    "counts": stats["counts"], "partial": not finished,
                    "exported_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
        atomic_write_json(tmp / MANIFEST, manifest)
        atomic_write_text(tmp / "README.md", card_text(run, stats, manifest, dd))
        _replace_dir(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return {**manifest, "out": str(out), "stats": stats}


def _replace_dir(tmp: Path, out: Path) -> None:
    """Swap the finished folder in: the old export is moved aside first, then removed."""
    old = None
    if out.exists():
        old = out.with_name(f".{out.name}.old-{os.getpid()}")
        os.replace(out, old)
    os.replace(tmp, out)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def read_manifest(path: Path) -> dict[str, Any] | None:
    p = Path(path) / MANIFEST
    if not p.is_file():
        return None
    try:
        return json.loads(p.read_text(encoding="utf-8"))
    except ValueError as e:
        raise ExportError(f"{p}: not valid JSON ({e})") from None
