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

`LocalExecutor` never imports ray.
"""
from __future__ import annotations

import hashlib
import logging
import os
import pickle
import sys
from pathlib import Path
from typing import Any, Callable, Iterator, Protocol, Sequence, TypeVar

log = logging.getLogger(__name__)

T = TypeVar("T")
R = TypeVar("R")
Work = Callable[[Any, Any], Any]

ROOT = Path(__file__).resolve().parent.parent


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


# --- Ray ---------------------------------------------------------------------------------------
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


def init_ray(workers: int = 2, address: str | None = None, num_cpus_per_worker: float = 1.0,
             runtime_env: dict[str, Any] | None = None) -> bool:
    """Connect to (address / $RAY_ADDRESS) or start a local Ray cluster; True if this call started one."""
    import ray

    if ray.is_initialized():
        return False
    address = address or os.environ.get("RAY_ADDRESS") or None
    env = dict(runtime_env or {})
    if not env.get("working_dir"):
        # workers must import this checkout's packages (ads, models, apis)
        vars_ = dict(env.get("env_vars") or {})
        vars_.setdefault("PYTHONPATH", os.pathsep.join(p for p in [str(ROOT), os.environ.get("PYTHONPATH")] if p))
        env["env_vars"] = vars_
    kw: dict[str, Any] = dict(include_dashboard=False, log_to_driver=True, runtime_env=env,
                              logging_level=logging.WARNING)
    if address:
        ray.init(address=address, **kw)
        return False
    ray.init(num_cpus=max(1, int(workers * num_cpus_per_worker + 0.999)), **kw)
    return True


class RayExecutor:
    """Items run on `workers` Ray actors, each holding its own env (models, registry, ledger buffer).

    address: None -> `RAY_ADDRESS` if set, else a local cluster started here with `workers` CPUs
    (shut down again by close()). "auto" or "ray://host:10001" joins an existing cluster, whose
    nodes need this checkout (or `runtime_env: {working_dir: ...}`) and the model files.
    """

    kind = "ray"

    def __init__(self, workers: int = 2, address: str | None = None, num_cpus_per_worker: float = 1.0,
                 runtime_env: dict[str, Any] | None = None, max_in_flight_per_worker: int = 2):
        try:
            import ray
        except ImportError:  # pragma: no cover - ray is pinned in requirements.txt
            raise RuntimeError("executor.kind 'ray' needs the ray package (pip install -r requirements.txt)") from None
        self._ray = ray
        self.workers = workers
        self._owns_cluster = init_ray(workers, address, num_cpus_per_worker, runtime_env)
        actor_cls = ray.remote(num_cpus=num_cpus_per_worker)(_Worker)
        cwd, path = os.getcwd(), [str(ROOT)]
        self._actors = [actor_cls.remote(cwd, path) for _ in range(workers)]
        self._max_in_flight = max(1, max_in_flight_per_worker)
        self._factories: dict[int, tuple[str, Any, Any]] = {}

    def _factory_ref(self, factory: Callable[[], Any]) -> tuple[str, Any]:
        cached = self._factories.get(id(factory))
        if cached is not None and cached[2] is factory:
            return cached[0], cached[1]
        from ray import cloudpickle

        blob = cloudpickle.dumps(factory)
        key = hashlib.sha256(blob).hexdigest()
        ref = self._ray.put(factory)
        self._factories[id(factory)] = (key, ref, factory)  # keep factory alive so its id stays unique
        return key, ref

    def imap(self, fn: Work, items: Sequence[Any], *, env: Any = None, factory: Callable[[], Any] | None = None,
             ledger: Any = None) -> Iterator[Any]:
        if factory is None:
            raise ValueError("the ray executor needs a factory that builds each worker's env")
        ray = self._ray
        key, fref = self._factory_ref(factory)
        items = list(items)
        done: dict[int, tuple[bool, Any, list[dict]]] = {}
        in_flight: dict[Any, tuple[int, int]] = {}  # ref -> (item index, actor index)
        load = [0] * len(self._actors)
        nxt = emitted = 0
        try:
            while emitted < len(items):
                # keep every actor fed, at most max_in_flight items each (queued items pipeline the next call)
                while nxt < len(items) and min(load) < self._max_in_flight:
                    a = load.index(min(load))
                    ref = self._actors[a].run.remote(key, fref, fn, items[nxt])
                    in_flight[ref] = (nxt, a)
                    load[a] += 1
                    nxt += 1
                while emitted not in done:
                    ready, _ = ray.wait(list(in_flight), num_returns=1)
                    for ref in ready:
                        i, a = in_flight.pop(ref)
                        load[a] -= 1
                        done[i] = ray.get(ref)
                ok, out, entries = done.pop(emitted)
                emitted += 1
                _replay(ledger, entries)
                if not ok:
                    raise out
                yield out
        finally:
            for ref in in_flight:  # an abandoned or failed map: drop what is still queued
                try:
                    ray.cancel(ref)
                except Exception:  # pragma: no cover
                    pass

    def map(self, fn: Work, items: Sequence[Any], **kw: Any) -> list[Any]:
        return list(self.imap(fn, items, **kw))

    def worker_pids(self) -> list[int]:
        return self._ray.get([a.pid.remote() for a in self._actors])

    def close(self) -> None:
        ray = self._ray
        for a in self._actors:
            try:
                ray.kill(a)
            except Exception:  # pragma: no cover
                pass
        self._actors = []
        if self._owns_cluster and ray.is_initialized():
            ray.shutdown()


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
        return ThreadExecutor(workers=cfg.workers)
    return RayExecutor(workers=cfg.workers, address=cfg.address, num_cpus_per_worker=cfg.num_cpus_per_worker,
                       runtime_env=cfg.runtime_env)
