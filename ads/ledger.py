"""The cost ledger: one line per model call and per API call, totalled on demand.

Every entry is appended to `ledger.jsonl` in the run folder as it happens, so the totals
are always the sum of recorded calls, including after a kill and resume (calls replayed
from the request cache are recorded as cached with zero tokens). The current iteration
and task travel in a context variable, so deep code need not pass them along.

A work item whose Ray worker died or was killed for a timeout (ads/ray_executor.py) took its
worker's unsent entries with it: that attempt is recorded as one `lost_worker` entry (item
index, reason) whose tokens, cost and wall time are unknown (null), and the totals count such
entries as `lost_attempts` with `spend_complete: false` instead of guessing their spend.

Compute actually spent, per call, where the backend reports it (llama.cpp does, in
`Completion.meta`): `prompt_eval_tokens` (prompt tokens evaluated after prefix reuse, out of
the `prompt_tokens` requested), `prefill_s` and `decode_s`. A call replayed from the request
cache computed nothing (0). Calls of backends that do not report it have them null (unknown),
and old ledger files without them load as before. Totals add `prompt_tokens_requested` (of the
calls that report), `prompt_tokens_computed`, their ratio `computed_prompt_ratio`,
`prefill_s` and `decode_s`, only when some call reports them.
"""
from __future__ import annotations

import contextlib
import contextvars
import threading
import time
from collections import defaultdict
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterator

from ads.store import JsonlStore
from models.base import Completion, Message, Model

LOST = "lost_worker"  # kind of the entry standing for an attempt whose worker's entries were lost
_EXTRA = ("item", "reason")  # fields only such entries set; left out of other rows

_scope: contextvars.ContextVar[dict[str, Any]] = contextvars.ContextVar("ledger_scope", default={})


@dataclass
class LedgerEntry:
    kind: str  # "model" | "api"
    role: str  # policy / optimizer / judge / api name ...
    model: str = ""
    prompt_tokens: int | None = 0  # None (like the next four): unknown, a lost attempt's
    completion_tokens: int | None = 0
    wall_s: float | None = 0.0
    cached: bool = False
    replayed_tokens: int | None = 0  # what a cached completion originally cost (not spent this run)
    cost_units: float | None = 0.0
    ok: bool = True
    iteration: Any = None
    task_id: Any = None
    ts: float = field(default_factory=time.time)
    item: Any = None  # lost_worker: the item's index in the executor's input
    reason: str | None = None  # lost_worker: "worker died" | "timeout"
    prompt_eval_tokens: int | None = None  # prompt tokens the backend evaluated (after prefix reuse)
    prefill_s: float | None = None  # prompt evaluation (with any state load)
    decode_s: float | None = None  # sampling and one-token decodes

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        for k in _EXTRA:  # rows without them stay exactly as they were
            if d[k] is None:
                del d[k]
        return d


def lost_attempt(role: str, item: Any, reason: str) -> LedgerEntry:
    """An attempt whose entries died with its worker: counted, its spend unknown (null)."""
    return LedgerEntry(kind=LOST, role=role, prompt_tokens=None, completion_tokens=None, wall_s=None,
                       replayed_tokens=None, cost_units=None, ok=False, item=item, reason=reason)


def _known(values: Iterator[Any]) -> Any:
    return sum(v for v in values if v is not None)


def compute_spent(c: Completion) -> dict[str, Any]:
    """The compute fields of a call's entry: what the backend reported in `meta`, all zero for a
    call replayed from the request cache (of a backend that reports them), else unknown (None)."""
    evaluated = c.meta.get("prompt_eval_tokens")
    if not isinstance(evaluated, int) or isinstance(evaluated, bool):
        return {}
    if c.cached:
        return {"prompt_eval_tokens": 0, "prefill_s": 0.0, "decode_s": 0.0}
    out: dict[str, Any] = {"prompt_eval_tokens": evaluated}
    for k in ("prefill_s", "decode_s"):
        v = c.meta.get(k)
        if isinstance(v, (int, float)) and not isinstance(v, bool):
            out[k] = round(float(v), 6)
    return out


def _compute_totals(entries: list[LedgerEntry]) -> dict[str, Any]:
    known = [e for e in entries if e.prompt_eval_tokens is not None]
    if not known:
        return {}
    requested = sum(e.prompt_tokens or 0 for e in known)
    computed = sum(e.prompt_eval_tokens for e in known)
    return {"prompt_tokens_requested": requested, "prompt_tokens_computed": computed,
            "computed_prompt_ratio": round(computed / requested, 4) if requested else None,
            "prefill_s": round(_known(e.prefill_s for e in known), 3),
            "decode_s": round(_known(e.decode_s for e in known), 3)}


@contextlib.contextmanager
def ledger_scope(**kw: Any) -> Iterator[None]:
    """Tag every entry recorded inside the block (e.g. iteration=1, task_id="wiki-17")."""
    token = _scope.set({**_scope.get(), **kw})
    try:
        yield
    finally:
        _scope.reset(token)


class CostLedger:
    def __init__(self, path: str | Path | None = None):
        self._store = JsonlStore(path, id_field="_none") if path else None
        self._lock = threading.Lock()
        self.entries: list[LedgerEntry] = []
        if self._store is not None:
            fields = LedgerEntry.__dataclass_fields__
            self.entries = [LedgerEntry(**{k: v for k, v in r.items() if k in fields}) for r in self._store]

    def record(self, entry: LedgerEntry) -> LedgerEntry:
        sc = _scope.get()
        if entry.iteration is None:
            entry.iteration = sc.get("iteration")
        if entry.task_id is None:
            entry.task_id = sc.get("task_id")
        with self._lock:
            self.entries.append(entry)
            if self._store is not None:
                self._store.append(entry.to_dict())
        return entry

    def record_completion(self, role: str, c: Completion) -> None:
        replayed = sum(c.meta.get("original_usage", (0, 0))) if c.cached else 0
        self.record(LedgerEntry(kind="model", role=role, model=c.model_id, prompt_tokens=c.prompt_tokens,
                                completion_tokens=c.completion_tokens, wall_s=c.latency_s, cached=c.cached,
                                replayed_tokens=replayed, **compute_spent(c)))

    def record_api(self, name: str, cost_units: float, wall_s: float, ok: bool = True) -> None:
        self.record(LedgerEntry(kind="api", role=name, cost_units=cost_units, wall_s=wall_s, ok=ok))

    # -- totals ---------------------------------------------------------------------------
    @staticmethod
    def _sum(entries: list[LedgerEntry]) -> dict[str, Any]:
        lost = sum(e.kind == LOST for e in entries)
        out = {
            "model_calls": sum(e.kind == "model" for e in entries),
            "api_calls": sum(e.kind == "api" for e in entries),
            "cached_calls": sum(e.cached for e in entries),
            "failed_calls": sum(not e.ok and e.kind != LOST for e in entries),
            "prompt_tokens": _known(e.prompt_tokens for e in entries),
            "completion_tokens": _known(e.completion_tokens for e in entries),
            "total_tokens": _known((e.prompt_tokens or 0) + (e.completion_tokens or 0) for e in entries),
            "replayed_tokens": _known(e.replayed_tokens for e in entries),
            "cost_units": round(_known(e.cost_units for e in entries), 6),
            "wall_s": round(_known(e.wall_s for e in entries), 3),
        }
        if lost:  # the sums above are of recorded calls only: say how many attempts they leave out
            out.update(lost_attempts=lost, spend_complete=False)
        out.update(_compute_totals(entries))
        return out

    @contextlib.contextmanager
    def measure(self) -> Iterator[dict[str, Any]]:
        """Totals of just the entries recorded inside the block (filled in when it exits).

        Scope totals would also count entries an interrupted earlier attempt left behind;
        a resumed run measures what the work needs by what it records now.
        """
        with self._lock:
            mark = len(self.entries)
        out: dict[str, Any] = {}
        try:
            yield out
        finally:
            with self._lock:
                out.update(self._sum(self.entries[mark:]))

    def totals(self, **where: Any) -> dict[str, Any]:
        with self._lock:
            sel = [e for e in self.entries if all(getattr(e, k) == v for k, v in where.items())]
        return self._sum(sel)

    def totals_by(self, key: str) -> dict[str, dict[str, Any]]:
        groups: dict[Any, list[LedgerEntry]] = defaultdict(list)
        with self._lock:
            for e in self.entries:
                groups[getattr(e, key)].append(e)
        return {str(k): self._sum(v) for k, v in groups.items()}

    def summary(self) -> dict[str, Any]:
        return {"run": self.totals(), "by_iteration": self.totals_by("iteration"),
                "by_role": self.totals_by("role"), "by_task": self.totals_by("task_id")}


class LedgeredModel:
    """Records each completion of the wrapped model under a role ("policy", "judge", ...)."""

    def __init__(self, model: Model, ledger: CostLedger, role: str):
        self.inner, self.ledger, self.role = model, ledger, role
        self.model_id = model.model_id

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def generate(self, messages: list[Message], **kw: Any) -> Completion:
        t0 = time.perf_counter()
        try:
            out = self.inner.generate(messages, **kw)
        except Exception:
            self.ledger.record(LedgerEntry(kind="model", role=self.role, model=self.model_id,
                                           wall_s=time.perf_counter() - t0, ok=False))
            raise
        self.ledger.record_completion(self.role, out)
        return out
