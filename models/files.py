"""Small file primitives every layer shares: atomic writes, the harness's own JSON files,
user-supplied JSONL read with file:line errors, and whether a lock holder's process lives.

They sit in the bottom layer so that `models/` (the llama.cpp probe cache) and `apis/` (the
corpus reader, the BM25 index lock) need nothing from `ads/`.
"""
from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any, Iterator


def _default(o: Any) -> Any:
    if hasattr(o, "to_dict"):
        return o.to_dict()
    if isinstance(o, (set, tuple)):
        return list(o)
    if isinstance(o, Path):
        return str(o)
    try:
        import numpy as np

        if isinstance(o, np.generic):
            return o.item()
    except ImportError:  # pragma: no cover
        pass
    raise TypeError(f"cannot serialise {type(o).__name__}")


def atomic_write_text(path: str | Path, text: str) -> None:
    """Write to a temp file in the same folder, fsync, then rename over the target."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def atomic_write_json(path: str | Path, obj: Any) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, ensure_ascii=False, default=_default) + "\n")


def read_json(path: str | Path, default: Any = None) -> Any:
    """A JSON file this harness wrote (state, run info); damage is a ValueError naming the file."""
    path = Path(path)
    if not path.exists():
        return default
    try:
        return json.loads(path.read_bytes().decode("utf-8"))
    except (ValueError, RecursionError) as e:
        raise ValueError(f"{path}: not a valid UTF-8 JSON file ({type(e).__name__}: {str(e)[:120]}); "
                         f"restore or remove it") from None


def jsonl_lines(path: str | Path, error: type[Exception] = ValueError) -> Iterator[tuple[str, Any]]:
    """A user-supplied JSONL file as ("file:line", value) pairs, blank lines skipped.

    Unlike a store, input is never repaired: a bad line is the user's to fix, so it raises
    `error` naming the file and line.
    """
    from models.structured import loads_bounded

    path = Path(path)
    # Bytes, decoded line by line inside the error handling: a stray non-UTF-8 byte used to
    # escape as a UnicodeDecodeError traceback from the file iterator. Lines split on b"\n"
    # only, as JSON Lines specifies (U+2028 / U+0085 inside a string are not line breaks).
    with open(path, "rb") as f:
        for n, raw in enumerate(f, 1):
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as e:
                raise error(f"{path}:{n}: not UTF-8 text (byte {raw[e.start]:#04x} at column {e.start + 1}); "
                            f"save the file as UTF-8") from None
            if not line.strip():
                continue
            try:
                yield f"{path}:{n}", loads_bounded(line)
            except ValueError as e:
                raise error(f"{path}:{n}: not valid JSON ({e})") from None


def pid_alive(pid: int) -> bool:
    """Whether a process with this id exists on this host (a stale lock's holder does not)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
