"""`main.py show RUN_DIR [--rejected] [--n 10]`: a few records of any run, readable in a terminal.

The tool-use `inspect` generalised: the same rows the export writes (ads.export.specs), so
what you see is what a dataset made from this run holds, accepted or rejected with the reason.
"""
from __future__ import annotations

import shutil
import textwrap
from typing import Any

SHOWN = 400  # characters of a long field


def _clip(s: Any, n: int = SHOWN) -> str:
    s = "" if s is None else str(s)
    s = " ".join(s.split())
    return s if len(s) <= n else s[: n - 1] + "…"


def _wrap(label: str, value: Any, width: int) -> list[str]:
    text = _clip(value)
    if not text:
        return []
    return textwrap.wrap(text, width=width, initial_indent=f"  {label:<12}", subsequent_indent=" " * 14)


def record_lines(row: dict[str, Any], spec: Any, width: int = 100) -> list[str]:
    status = "accepted" if row["accepted"] else f"REJECTED: {_clip(row['reject_reason'], 160)}"
    head = [f"{row['id']}  {status}"]
    if row.get("judge_score") is not None:
        head.append(f"judge {row['judge_score']}")
    if spec.label_field and row.get(spec.label_field) is not None:
        head.append(f"{spec.label_field}={row[spec.label_field]}")
    lines = ["  ".join(head)]
    if row.get("messages"):
        for m in row["messages"]:
            calls = "; ".join(f"{c['name']}({_clip(c['arguments'], 120)})" for c in m.get("tool_calls") or [])
            body = m.get("content") or ""
            lines += _wrap(f"[{m['role']}]", f"{body} {('-> ' + calls) if calls else ''}".strip(), width)
        return lines
    lines += _wrap("instruction", row.get(spec.prompt_field), width)
    if spec.input_field:
        lines += _wrap(spec.input_field, row.get(spec.input_field), width)
    lines += _wrap("response", row.get(spec.response_field), width)
    if row.get(spec.text_field) and row.get(spec.text_field) != row.get(spec.response_field):
        lines += _wrap("text", row.get(spec.text_field), width)
    return lines


def show(run_dir: str, rejected: bool = False, n: int = 10) -> int:
    from ads.export.card import reason_key
    from ads.export.core import load_run

    run = load_run(run_dir)
    rows = run.rejected if rejected else run.accepted
    width = max(60, min(120, shutil.get_terminal_size((100, 20)).columns))
    kind = "rejected" if rejected else "accepted"
    print(f"{run.spec.kind} run {run.run_dir}: {len(run.rows)} records, {len(run.accepted)} accepted, "
          f"{len(run.rejected)} rejected" + ("" if (run.run_dir / "summary.json").exists() else " (partial run)"))
    if not rows:
        print(f"no {kind} records")
        return 0
    for row in rows[:n]:
        print()
        print("\n".join(record_lines(row, run.spec, width)))
    print()
    print(f"showed {min(n, len(rows))} of {len(rows)} {kind} records")
    if rejected:
        from collections import Counter

        reasons = Counter(reason_key(r["reject_reason"]) for r in rows)
        print("reasons: " + ", ".join(f"{k}={v}" for k, v in reasons.most_common()))
    return 0
