"""Terminal tables and the plain-language verdict of an evaluation."""
from __future__ import annotations

from typing import Any


def print_table(title: str, header: list[str], rows: list[list[str]]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title, show_lines=False)
    for h in header:
        table.add_column(h)
    for r in rows:
        table.add_row(*[str(c) for c in r])
    Console(width=max(120, sum(len(h) for h in header) + 20)).print(table)


def verdict(final_eval: dict[str, Any], margin: float = 0.0) -> list[str]:
    """Say plainly whether the learned optimizer beat each baseline on held-out mean score."""
    m = final_eval["methods"]
    if "learned" not in m:
        return ["no learned-optimizer evaluation to compare"]
    learned = m["learned"]["mean_score"]
    lines = []
    for base in ("no_data", "random_equal_cost", "always_retrieve"):
        if base not in m:
            continue
        other = m[base]["mean_score"]
        diff = learned - other
        word = "BEATS" if diff > margin else ("TIES" if abs(diff) <= margin else "does NOT beat")
        lines.append(f"learned optimizer {word} {base}: mean score {learned:.3f} vs {other:.3f} "
                     f"(diff {diff:+.3f}; cost/task {m['learned']['mean_cost']:.2f} vs {m[base]['mean_cost']:.2f}; "
                     f"n={m['learned']['n']})")
    return lines
