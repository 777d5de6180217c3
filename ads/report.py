"""Terminal tables: the one way every command prints a result table (rich)."""
from __future__ import annotations


def print_table(title: str, header: list[str], rows: list[list[str]]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title, show_lines=False)
    for h in header:
        table.add_column(h)
    for r in rows:
        table.add_row(*[str(c) for c in r])
    Console(width=max(120, sum(len(h) for h in header) + 20)).print(table)

