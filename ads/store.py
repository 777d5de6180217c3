"""Append-only JSONL outputs that survive a kill, and atomic JSON files.

Each record is written as one line with a single write() on an O_APPEND descriptor and then
fsync'd, so a crash leaves at most one torn last line. Opening a store detects that torn
line, says so, and truncates it; nothing already complete is ever rewritten.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Iterator

from models.files import (_default, atomic_write_json, atomic_write_text, jsonl_lines,  # noqa: F401 (re-exported)
                          read_json)


class JsonlStore:
    def __init__(self, path: str | Path, id_field: str = "id", fsync: bool = True):
        self.path = Path(path)
        self.id_field = id_field
        self.fsync = fsync
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.repaired = self._repair()
        self._ids: set[str] | None = None

    def _repair(self) -> bool:
        """Drop a torn last line left by a kill mid-write; refuse damage anywhere else.

        A whole record always ends in a newline (it is written by one write()), so a tail
        without one, or a last line that does not parse, is the remains of an interrupted
        append. A bad line earlier in the file is not something a crash produces: that is
        reported, not "repaired".
        """
        if not self.path.exists() or self.path.stat().st_size == 0:
            return False
        data = self.path.read_bytes()
        body, _, tail = data.rpartition(b"\n")
        if tail and _parses(tail):
            # A last record that parses is data (a file written by another tool, or edited by
            # hand, without a final newline), not a torn write: a torn prefix of a JSON object
            # never parses. Complete the line so the next append does not glue onto it.
            for n, ln in enumerate(body.split(b"\n"), 1):
                if ln.strip() and not _parses(ln):
                    raise ValueError(f"{self.path}: line {n} is not valid JSON and is not a torn last line "
                                     f"(the file was edited or damaged); fix or remove that line")
            with open(self.path, "ab") as f:
                f.write(b"\n")
                f.flush()
                os.fsync(f.fileno())
            return False
        if tail:  # no trailing newline: torn
            keep = len(body) + 1 if body or data.startswith(b"\n") else 0
        else:
            lines = body.split(b"\n")
            if _parses(lines[-1]) or not lines[-1].strip():
                keep = len(data)
            else:
                keep = len(data) - len(lines[-1]) - 1
        for n, ln in enumerate(data[:keep].split(b"\n"), 1):
            if ln.strip() and not _parses(ln):
                raise ValueError(f"{self.path}: line {n} is not valid JSON and is not a torn last line "
                                 f"(the file was edited or damaged); fix or remove that line")
        if keep == len(data):
            return False
        with open(self.path, "r+b") as f:
            f.truncate(keep)
            f.flush()
            os.fsync(f.fileno())
        print(f"[store] {self.path}: dropped a torn last line ({len(data) - keep} bytes) left by an "
              f"interrupted write")
        return True

    def append(self, record: dict[str, Any]) -> None:
        line = (json.dumps(record, ensure_ascii=False, default=_default) + "\n").encode("utf-8")
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, line)
            if self.fsync:
                os.fsync(fd)
        finally:
            os.close(fd)
        if self._ids is not None and self.id_field in record:
            self._ids.add(str(record[self.id_field]))

    def __iter__(self) -> Iterator[dict[str, Any]]:
        if not self.path.exists():
            return
        with open(self.path, encoding="utf-8") as f:
            for line in f:
                if line.strip():
                    yield json.loads(line)

    def read(self) -> list[dict[str, Any]]:
        return list(self)

    def ids(self) -> set[str]:
        if self._ids is None:
            self._ids = {str(r[self.id_field]) for r in self if self.id_field in r}
        return self._ids

    def __contains__(self, record_id: object) -> bool:
        return str(record_id) in self.ids()

    def __len__(self) -> int:
        return sum(1 for _ in self)


def _parses(line: bytes) -> bool:
    try:
        json.loads(line)
        return True
    except (ValueError, RecursionError):  # RecursionError: nested thousands deep
        return False
