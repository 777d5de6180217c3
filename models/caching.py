"""A request cache that wraps any Model, backed by SQLite on disk.

Caching lives outside the backends (as in lm-evaluation-harness) so every backend gets it
for free and a resumed run replays exactly the completions it already paid for. SQLite in
WAL mode keeps committed rows through a SIGKILL of the process (synchronous=NORMAL only
risks the last commits on power loss, and a lost row is just a cache miss); a database that
fails its integrity check is moved aside and rebuilt, loudly, never silently reused.
"""
from __future__ import annotations

import json
import logging
import sqlite3
import threading
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from models.base import Completion, Message, Model, request_key

log = logging.getLogger(__name__)


class RequestCache:
    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0
        self._conn = self._open()

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None, timeout=30)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute(
            "CREATE TABLE IF NOT EXISTS completions (key TEXT PRIMARY KEY, model_id TEXT, "
            "created REAL, completion TEXT NOT NULL)"
        )
        return conn

    def _open(self) -> sqlite3.Connection:
        try:
            conn = self._connect()
            ok = conn.execute("PRAGMA quick_check").fetchone()[0]
            if ok != "ok":
                raise sqlite3.DatabaseError(ok)
            return conn
        except sqlite3.DatabaseError as e:
            bad = self.path.with_name(f"{self.path.name}.corrupt-{int(time.time())}")
            log.warning("request cache %s is damaged (%s); moved to %s and starting an empty one",
                        self.path, e, bad)
            print(f"[cache] {self.path} failed its integrity check ({e}); moved aside to {bad.name}, rebuilding")
            for suffix in ("", "-wal", "-shm"):
                p = Path(str(self.path) + suffix)
                if p.exists():
                    p.rename(Path(str(bad) + suffix))
            return self._connect()

    def get(self, key: str) -> Completion | None:
        with self._lock:
            row = self._conn.execute("SELECT completion FROM completions WHERE key=?", (key,)).fetchone()
        if row is None:
            self.misses += 1
            return None
        self.hits += 1
        return Completion.from_dict(json.loads(row[0]))

    def put(self, key: str, completion: Completion) -> None:
        blob = json.dumps(completion.to_dict(), ensure_ascii=False)
        with self._lock:
            self._conn.execute(
                "INSERT OR REPLACE INTO completions (key, model_id, created, completion) VALUES (?,?,?,?)",
                (key, completion.model_id, time.time(), blob),
            )

    def __len__(self) -> int:
        with self._lock:
            return self._conn.execute("SELECT COUNT(*) FROM completions").fetchone()[0]

    def close(self) -> None:
        with self._lock:
            self._conn.close()


class CachingModel:
    """Model wrapper: a hit returns the stored completion marked cached, with zero tokens.

    Zero tokens on a hit is deliberate: the ledger charges what this run actually computed,
    so a resumed run does not double-count the work it replays.
    """

    def __init__(self, model: Model, cache: RequestCache):
        self.inner = model
        self.cache = cache
        self.model_id = model.model_id

    def __getattr__(self, name: str) -> Any:  # expose backend extras (tokenizer, count_tokens, ...)
        return getattr(self.inner, name)

    def generate(self, messages: list[Message], *, max_tokens=256, temperature=0.0, seed=0, sample_id=0,
                 json_schema=None) -> Completion:
        key = request_key(self.model_id, messages, max_tokens=max_tokens, temperature=temperature, seed=seed,
                          sample_id=sample_id, json_schema=json_schema)
        hit = self.cache.get(key)
        if hit is not None:
            return replace(hit, cached=True, prompt_tokens=0, completion_tokens=0, latency_s=0.0,
                           meta={**hit.meta, "original_usage": [hit.prompt_tokens, hit.completion_tokens]})
        out = self.inner.generate(messages, max_tokens=max_tokens, temperature=temperature, seed=seed,
                                  sample_id=sample_id, json_schema=json_schema)
        self.cache.put(key, out)
        return out
