"""Run a generator's independent work items here or on Ray workers, results in input order.

A generator's loop hands the executor a work function and a list of items:

    for result in ctx.executor().imap(work, items, env=self, factory=WorkerFactory(cfg), ledger=ctx.ledger):
        write(result)            # the driver writes stores and state, in input order

`work(env, item)` must be a module-level function (so it pickles by reference) that uses only
`env` and `item`. `env` is whatever the work needs: locally the generator itself; on Ray, what
`factory()` builds once per worker (its own model instances from the picklable config, its own
API registry, an in-memory `CostLedger` as `env.ledger`).

Outputs do not depend on the executor: model calls are seeded per item (`seed`, `sample_id`),
never by which worker ran them or in which order, and every write happens in the driver in
input order. The ledger entries a worker records while running an item travel back with the
result and are appended to the run's ledger before that result is yielded, so `ledger.jsonl`,
resume and the request cache behave as with the local executor.

Here: the `Executor` protocol, `LocalExecutor`, `ThreadExecutor`, the worker that builds and holds
an env (a thread's, or a Ray actor's), and `make_executor`. `RayExecutor` (and what happens when a
Ray worker dies) is in `ads.ray_executor`. `LocalExecutor` never imports ray.
"""
from __future__ import annotations

import logging
import os
import pickle
import sys
from typing import Any, Callable, Iterator, Protocol, Sequence, TypeVar

log = logging.getLogger(__name__)

T = TypeVar("T")
R = TypeVar("R")
Work = Callable[[Any, Any], Any]

class Executor(Protocol):
    kind: str
    workers: int

    def imap(self, fn: Work, items: Sequence[Any], *, env: Any, factory: Callable[[], Any] | None = None,
             ledger: Any = None) -> Iterator[Any]:
        """Yield fn(env, item) for each item, in input order."""

    def map(self, fn: Work, items: Sequence[Any], *, env: Any, factory: Callable[[], Any] | None = None,
            ledger: Any = None) -> list[Any]:
        ...

    def close(self) -> None:
        ...


class LocalExecutor:
    """Runs every item in this process, one after the other, with the driver's own env."""

    kind = "local"
    workers = 1

    def imap(self, fn: Work, items: Sequence[Any], *, env: Any, factory: Callable[[], Any] | None = None,
             ledger: Any = None) -> Iterator[Any]:
        for item in items:
            yield fn(env, item)

    def map(self, fn: Work, items: Sequence[Any], **kw: Any) -> list[Any]:
        return list(self.imap(fn, items, **kw))

    def close(self) -> None:
        pass


def _picklable_error(exc: BaseException) -> BaseException:
    try:
        pickle.loads(pickle.dumps(exc))
        return exc
    except Exception:
        return RuntimeError(f"{type(exc).__name__}: {exc}")


class _Worker:
    """A Ray actor: builds each env once from its factory, runs items, returns their ledger entries."""

    def __init__(self, cwd: str, path: list[str]):
        for p in reversed(path):
            if p not in sys.path and os.path.isdir(p):
                sys.path.insert(0, p)
        if os.path.isdir(cwd):  # same machine or a mirrored checkout: relative paths (cache/, results/) work
            os.chdir(cwd)
        self._envs: dict[str, Any] = {}

    def prepare(self, key: str, factory: Callable[[], Any]) -> None:
        """Build the env before the first item, so an item's timeout does not count the build
        (an error is left for run() to raise at that item's place)."""
        if key not in self._envs:
            try:
                self._envs[key] = factory()
            except Exception:
                pass

    def run(self, key: str, factory: Callable[[], Any], fn: Work, item: Any) -> tuple[bool, Any, list[dict]]:
        env = self._envs.get(key)
        if env is None:
            env = self._envs[key] = factory()
        ledger = getattr(env, "ledger", None) or getattr(getattr(env, "ctx", None), "ledger", None)
        mark = len(ledger.entries) if ledger is not None else 0
        try:
            ok, out = True, fn(env, item)
        except Exception as e:  # raised in the driver, at this item's place in the order
            ok, out = False, _picklable_error(e)
        entries: list[dict] = []
        if ledger is not None:
            entries = [e.to_dict() for e in ledger.entries[mark:]]
            del ledger.entries[mark:]
        return ok, out, entries

    def pid(self) -> int:
        return os.getpid()


class ThreadExecutor:
    """`workers` threads in this process, each with its own env from `factory()` (as a Ray actor has).

    For HTTP backends (a server pool) this keeps `workers` requests in flight without Ray; llama.cpp
    releases the GIL while it computes, so in-process models (one per thread) also overlap.
    Same ordering and ledger contract as RayExecutor.
    """

    kind = "threads"

    def __init__(self, workers: int = 2):
        from concurrent.futures import ThreadPoolExecutor
        import threading

        self.workers = workers
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="ads-exec")
        self._local = threading.local()

    def _run(self, key: str, factory: Callable[[], Any], fn: Work, item: Any) -> tuple[bool, Any, list[dict]]:
        w = getattr(self._local, "worker", None)
        if w is None:
            w = self._local.worker = _Worker.__new__(_Worker)
            w._envs = {}
        return w.run(key, factory, fn, item)

    def imap(self, fn: Work, items: Sequence[Any], *, env: Any = None, factory: Callable[[], Any] | None = None,
             ledger: Any = None) -> Iterator[Any]:
        if factory is None:
            raise ValueError("the threads executor needs a factory that builds each worker's env")
        key = f"{id(factory)}"
        futures = [self._pool.submit(self._run, key, factory, fn, item) for item in items]
        try:
            for fut in futures:
                ok, out, entries = fut.result()
                _replay(ledger, entries)
                if not ok:
                    raise out
                yield out
        finally:
            for fut in futures:
                fut.cancel()

    def map(self, fn: Work, items: Sequence[Any], **kw: Any) -> list[Any]:
        return list(self.imap(fn, items, **kw))

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)


def _replay(ledger: Any, entries: list[dict]) -> None:
    if ledger is None or not entries:
        return
    from ads.ledger import LedgerEntry

    fields = LedgerEntry.__dataclass_fields__
    for d in entries:
        ledger.record(LedgerEntry(**{k: v for k, v in d.items() if k in fields}))


def make_executor(cfg: Any) -> Executor:
    """From an `ads.config.ExecutorConfig` (None -> local)."""
    if cfg is None or cfg.kind == "local":
        return LocalExecutor()
    if cfg.kind == "threads":
        if getattr(cfg, "item_timeout_s", None) is not None:
            log.warning("executor.item_timeout_s applies to kind 'ray' only (a thread cannot be killed): ignored")
        return ThreadExecutor(workers=cfg.workers)
    from ads.ray_executor import RayExecutor  # imports this module; ray itself only when it starts

    return RayExecutor(workers=cfg.workers, address=cfg.address, num_cpus_per_worker=cfg.num_cpus_per_worker,
                       runtime_env=cfg.runtime_env, max_item_retries=cfg.max_item_retries,
                       item_timeout_s=cfg.item_timeout_s)
