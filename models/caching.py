"""A request cache that wraps any Model, backed by SQLite on disk.

Caching lives outside the backends (as in lm-evaluation-harness) so every backend gets it
for free and a resumed run replays exactly the completions it already paid for. SQLite in
WAL mode keeps committed rows through a SIGKILL of the process (synchronous=NORMAL only
risks the last commits on power loss, and a lost row is just a cache miss); a database that
fails its integrity check is moved aside and rebuilt, loudly, never silently reused.

Only a file that is an SQLite database (its 16-byte header says so) and that SQLite itself
reports damaged is ever moved aside. Anything else at `cache.path` (a folder, a user's file,
a path that cannot be opened) is a one-line error that touches nothing, and a database that
another process holds locked is waited for, not mistaken for corruption.
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

from models.errors import ConfigError
from models.base import Completion, Message, Model, request_key

log = logging.getLogger(__name__)

SQLITE_HEADER = b"SQLite format 3\x00"
# primary SQLite result codes (https://www.sqlite.org/rescode.html)
_BUSY, _LOCKED, _CORRUPT, _NOTADB = 5, 6, 11, 26


class CachePathError(ConfigError):
    """`cache.path` names something that is not (and cannot become) this cache; nothing was touched."""


def _code(e: sqlite3.Error) -> int:
    return (getattr(e, "sqlite_errorcode", None) or 0) & 0xFF


def _is_busy(e: sqlite3.Error) -> bool:
    return _code(e) in (_BUSY, _LOCKED) or "locked" in str(e) or "busy" in str(e)


def _is_damage(e: sqlite3.Error) -> bool:
    code = _code(e)
    if code:
        return code in (_CORRUPT, _NOTADB)
    return "malformed" in str(e) or "not a database" in str(e)


class RequestCache:
    def __init__(self, path: str | Path, lock_timeout_s: float = 120.0):
        self.path = Path(path)
        self.lock_timeout_s = lock_timeout_s
        self._check_path()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise CachePathError(f"cache.path {self.path}: cannot create its folder ({e.strerror})") from None
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0
        self._conn = self._open()

    def _check_path(self) -> None:
        """Refuse, without touching it, anything at the path that is not an SQLite database."""
        p = self.path
        if p.is_dir():
            raise CachePathError(f"cache.path {p} is a folder; give a file path such as {p / 'requests.sqlite'}")
        if p.exists() and not p.is_file():
            raise CachePathError(f"cache.path {p} is not a regular file; give a file path for the SQLite cache")
        if p.is_file():
            try:
                with open(p, "rb") as f:
                    head = f.read(len(SQLITE_HEADER))
            except OSError as e:
                raise CachePathError(f"cache.path {p}: cannot read it ({e.strerror})") from None
            if head and head != SQLITE_HEADER:
                raise CachePathError(f"cache.path {p} is not an SQLite database (it does not start with the "
                                     f"SQLite header); it was left untouched: point cache.path at another file")

    def _connect(self) -> sqlite3.Connection:
        timeout = max(0.05, min(30.0, self.lock_timeout_s))
        conn = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None, timeout=timeout)
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.execute(
                "CREATE TABLE IF NOT EXISTS completions (key TEXT PRIMARY KEY, model_id TEXT, "
                "created REAL, completion TEXT NOT NULL)"
            )
        except BaseException:
            conn.close()
            raise
        return conn

    def _open(self) -> sqlite3.Connection:
        deadline = time.monotonic() + self.lock_timeout_s
        while True:
            conn: sqlite3.Connection | None = None
            try:
                conn = self._connect()
                ok = conn.execute("PRAGMA quick_check").fetchone()[0]
                if ok != "ok":
                    raise sqlite3.DatabaseError(ok)  # a quick_check finding (no error code): damage
                return conn
            except sqlite3.DatabaseError as e:  # OperationalError included
                if conn is not None:
                    conn.close()
                err: sqlite3.Error = e
            if _is_busy(err):  # another process holds it: wait, never "repair"
                if time.monotonic() < deadline:
                    time.sleep(0.2)
                    continue
                raise CachePathError(f"request cache {self.path} stayed locked by another process for "
                                     f"{self.lock_timeout_s:.0f}s ({err}); wait for it or use another cache.path")
            if _code(err) and not _is_damage(err):  # cannot open, I/O error, read-only, permissions ...
                raise CachePathError(f"request cache {self.path} cannot be opened ({err}); nothing was changed")
            return self._move_aside(err)

    def _move_aside(self, e: sqlite3.Error) -> sqlite3.Connection:
        """An SQLite cache that SQLite reports damaged: keep it (renamed) for inspection, start empty."""
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


def _file_identity(path: Path) -> str:
    """realpath + size + mtime of a model file (of each top-level file for a model folder).

    A digest of a multi-GB GGUF on every load would cost more than the run it keys; a copy or a
    re-download changes the mtime, which only costs cache misses, never a wrong replay."""
    try:
        real = path.resolve()
        if real.is_dir():
            parts = [f"{p.name}:{st.st_size}:{st.st_mtime_ns}" for p in sorted(real.iterdir())
                     if p.is_file() and (st := p.stat())]
            return f"{real}|" + ",".join(parts)
        st = real.stat()
        return f"{real}|{st.st_size}|{st.st_mtime_ns}"
    except OSError:
        return str(path)


def model_identity(model: Any) -> str:
    """What a cached completion must have been produced by to be replayed for `model`.

    The registry name alone is not enough: llama.cpp and transformers share names, two GGUF files
    at different paths can share a stem, and an HTTP model's served name is the same on every
    server. So the key holds the backend (class), the model file's identity or the endpoint URL
    (credentials stripped), and the model id (which carries any LoRA fingerprint)."""
    ident = getattr(model, "cache_identity", None)
    if isinstance(ident, str) and ident:
        return ident
    kind = type(model).__name__
    members = getattr(model, "members", None)
    if isinstance(members, list) and members:  # a pool of servers with the same model
        return f"{kind}|" + "+".join(sorted(model_identity(m) for m in members))
    url = getattr(model, "url", None)
    if isinstance(url, str) and url:
        from models.openai_http import safe_url

        return f"{kind}|{safe_url(url)}|{getattr(model, 'model', '')}|{model.model_id}"
    path = getattr(model, "path", None)
    if isinstance(path, (str, Path)):
        return f"{kind}|{_file_identity(Path(path))}|{model.model_id}"
    return f"{kind}|{model.model_id}"


class CachingModel:
    """Model wrapper: a hit returns the stored completion marked cached, with zero tokens.

    Zero tokens on a hit is deliberate: the ledger charges what this run actually computed,
    so a resumed run does not double-count the work it replays.
    """

    def __init__(self, model: Model, cache: RequestCache):
        self.inner = model
        self.cache = cache
        self.model_id = model.model_id
        self.cache_identity = model_identity(model)  # the key's model part, not just the name

    def __getattr__(self, name: str) -> Any:  # expose backend extras (tokenizer, count_tokens, ...)
        return getattr(self.inner, name)

    def generate(self, messages: list[Message], *, max_tokens=256, temperature=0.0, seed=0, sample_id=0,
                 json_schema=None) -> Completion:
        key = request_key(self.cache_identity, messages, max_tokens=max_tokens, temperature=temperature, seed=seed,
                          sample_id=sample_id, json_schema=json_schema)
        hit = self.cache.get(key)
        if hit is not None:
            return replace(hit, cached=True, prompt_tokens=0, completion_tokens=0, latency_s=0.0,
                           meta={**hit.meta, "original_usage": [hit.prompt_tokens, hit.completion_tokens]})
        out = self.inner.generate(messages, max_tokens=max_tokens, temperature=temperature, seed=seed,
                                  sample_id=sample_id, json_schema=json_schema)
        self.cache.put(key, out)
        return out
