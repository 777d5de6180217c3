"""Datasets out of any generator's run folder (issue 23): export, dataset card, show, Hub, W&B.

`ads.export.specs` says what each generator's run folder holds; `core` writes the export,
`card` its README.md, `cli` the `main.py export` / `main.py show` commands, `hub` the optional
upload and `wandb_log` the W&B artifact and sample table.
"""
from ads.export.core import DEFAULT_FORMATS, FORMATS, export_run, load_run
from ads.export.specs import SPECS, ExportError, GeneratorSpec

__all__ = ["DEFAULT_FORMATS", "FORMATS", "SPECS", "ExportError", "GeneratorSpec", "export_run", "load_run"]
