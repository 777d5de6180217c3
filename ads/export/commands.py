"""`main.py export RUN_DIR ...` and `main.py show RUN_DIR ...` (issue 23).

    main.py export RUN_DIR [--format hf|parquet|jsonl ...] [--out DIR] [--include-rejected]
                           [--push-to-hub OWNER/NAME] [--no-wandb]
    main.py show RUN_DIR [--rejected] [--n 10]

Bad input (no such folder, no config.yaml, an unknown generator, no records, an unknown
format, a push that cannot happen) is one line on stderr and exit code 2, before anything is
written.
"""
from __future__ import annotations

import argparse
import sys

from ads.export.core import DEFAULT_FORMATS, FORMATS
from ads.export.specs import ExportError


def export_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="main.py export", description="Export a run folder (any generator) as a "
                                "Hugging Face dataset with a dataset card.")
    p.add_argument("run_dir", help="a run folder under results/ (finished or killed)")
    p.add_argument("--format", action="append", choices=FORMATS, dest="formats",
                   help=f"repeatable; default: {' and '.join(DEFAULT_FORMATS)} (save_to_disk folder and parquet)")
    p.add_argument("--out", help="export folder (default: RUN_DIR/export)")
    p.add_argument("--include-rejected", action="store_true", help="add a `rejected` split with the reasons")
    p.add_argument("--push-to-hub", metavar="OWNER/NAME", help="upload the export (needs HF_TOKEN and network)")
    p.add_argument("--wandb", action="store_true", help="also log the export to the run's W&B (offline by default)")
    return p


def export_main(argv: list[str] | None = None) -> int:
    from ads.export.core import export_run
    from ads.export.hub import HubUnavailable, check_push, push

    args = export_parser().parse_args(argv)
    try:
        token = check_push(args.push_to_hub) if args.push_to_hub else None
        res = export_run(args.run_dir, args.out, tuple(args.formats or DEFAULT_FORMATS), args.include_rejected)
    except (ExportError, HubUnavailable) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    c = res["counts"]
    print(f"exported {res['generator']} run: {c['accepted']} accepted, {c['rejected']} rejected of {c['attempted']} "
          f"attempted; splits {res['splits']} -> {res['out']}" + (" (partial run)" if res["partial"] else ""))
    if args.wandb:
        from ads.export.wandb_log import log_export_offline

        log_export_offline(args.run_dir, res)
    if token:
        try:
            print(f"pushed: {push(res['out'], args.push_to_hub, token)}")
        except Exception as e:  # noqa: BLE001 - a failed upload keeps the local export, says why
            print(f"error: --push-to-hub {args.push_to_hub}: upload failed ({type(e).__name__}: {e}); the export "
                  f"is in {res['out']}", file=sys.stderr)
            return 2
    return 0


def show_main(argv: list[str] | None = None) -> int:
    from ads.export.show import show

    p = argparse.ArgumentParser(prog="main.py show", description="Sample records of any run, in the terminal.")
    p.add_argument("run_dir")
    p.add_argument("--rejected", action="store_true", help="show rejected records with their reasons")
    p.add_argument("--n", type=int, default=10, help="how many records (default 10)")
    args = p.parse_args(argv)
    if args.n < 1:
        print("error: --n must be at least 1", file=sys.stderr)
        return 2
    try:
        return show(args.run_dir, args.rejected, args.n)
    except ExportError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(export_main())
