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

A Ray worker that dies while running an item (its process killed, OOM, `ray.kill`), or runs one
item longer than `item_timeout_s` (then it is killed), is replaced by a fresh actor built from
the same factory, and that item is retried on the pool, at most `max_item_retries` times; items
that were only queued on it are resubmitted without using a retry. The entries the dead worker
had recorded for the item died with it: the ledger gets one `lost_worker` entry per lost attempt
(item index, reason, spend unknown) before the retried attempt's entries. After the last retry
the item raises `WorkerLostError` (`ItemTimeoutError` for a timeout) at its place in the order.

`LocalExecutor` never imports ray.
"""
from __future__ import annotations

import hashlib
import logging
import os
import pickle
import sys
import time
from collections import deque
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
class WorkerLostError(RuntimeError):
    """An item's Ray worker died on its every attempt (the first try and `max_item_retries` retries)."""


class ItemTimeoutError(WorkerLostError):
    """An item ran longer than `item_timeout_s` on its every attempt."""


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
                 runtime_env: dict[str, Any] | None = None, max_in_flight_per_worker: int = 2,
                 max_item_retries: int = 2, item_timeout_s: float | None = None):
        if max_item_retries < 0:
            raise ValueError(f"max_item_retries must be >= 0, got {max_item_retries}")
        if item_timeout_s is not None and not item_timeout_s > 0:
            raise ValueError(f"item_timeout_s must be > 0 or None, got {item_timeout_s}")
        try:
            import ray
        except ImportError:  # pragma: no cover - ray is pinned in requirements.txt
            raise RuntimeError("executor.kind 'ray' needs the ray package (pip install -r requirements.txt)") from None
        self._ray = ray
        self.workers = workers
        self.max_item_retries = max_item_retries
        self.item_timeout_s = item_timeout_s
        self._owns_cluster = init_ray(workers, address, num_cpus_per_worker, runtime_env)
        self._actor_cls = ray.remote(num_cpus=num_cpus_per_worker)(_Worker)
        self._actor_args = (os.getcwd(), [str(ROOT)])
        self._actors = [self._actor_cls.remote(*self._actor_args) for _ in range(workers)]
        self._prepared: list[set[str]] = [set() for _ in range(workers)]  # env keys sent to each actor
        self._max_in_flight = max(1, max_in_flight_per_worker)
        self._factories: dict[int, tuple[str, Any, Any]] = {}
        from ray import exceptions as rex

        # the worker process is gone (or must be treated as gone); any other error is the item's own
        self._lost_errors = (rex.RayActorError, rex.WorkerCrashedError, rex.OutOfMemoryError, rex.NodeDiedError)

    def _replace(self, a: int) -> None:
        """Kill actor `a` (already dead, or timed out) and start a fresh one in its place."""
        try:
            self._ray.kill(self._actors[a], no_restart=True)
        except Exception:  # pragma: no cover - already gone
            pass
        self._actors[a] = self._actor_cls.remote(*self._actor_args)
        self._prepared[a] = set()

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
        lost: dict[int, list[str]] = {}  # item index -> reason of each lost attempt (ledger), in order
        charged: dict[int, int] = {}  # item index -> lost attempts counted against max_item_retries
        alone: set[int] = set()  # items that run with nothing queued behind them (see lose())
        in_flight: dict[Any, tuple[int | None, int, int]] = {}  # ref -> (item or None for prepare, actor, load)
        queues: list[deque] = [deque() for _ in self._actors]  # per actor, its refs in submission order
        started: dict[Any, float] = {}  # ref of an item at the head of its actor's queue -> when seen there
        retry: list[int] = []  # items to resubmit, lowest index first
        load = [0] * len(self._actors)  # per actor: items in flight (an item that runs alone fills it)
        nxt = emitted = 0

        def submit(a: int, i: int) -> None:
            if key not in self._prepared[a]:
                self._prepared[a].add(key)
                ref = self._actors[a].prepare.remote(key, fref)
                in_flight[ref] = (None, a, 0)
                queues[a].append(ref)
            ref = self._actors[a].run.remote(key, fref, fn, items[i])
            w = self._max_in_flight if i in alone else 1
            in_flight[ref] = (i, a, w)
            queues[a].append(ref)
            load[a] += w

        def drop(ref: Any) -> int | None:
            i, a, w = in_flight.pop(ref)
            queues[a].remove(ref)
            started.pop(ref, None)
            load[a] -= w
            return i

        def give_up(i: int, reason: str, cause: BaseException | None) -> None:
            n, r = len(lost[i]), self.max_item_retries
            if reason == "timeout":
                err: WorkerLostError = ItemTimeoutError(
                    f"item {i} ran longer than item_timeout_s={self.item_timeout_s:g} s on each of its {n} attempts "
                    f"(its worker was killed and replaced each time; max_item_retries={r})")
            else:
                first = (str(cause).strip().splitlines() or [type(cause).__name__])[0]
                err = WorkerLostError(f"item {i}: its Ray worker died on each of its {n} attempts "
                                      f"(max_item_retries={r}; last: {first})")
                err.__cause__ = cause
            done[i] = (False, err, [])

        def lose(a: int, reason: str, cause: BaseException | None, running: Any = None) -> None:
            """Actor `a` died (or was killed, `running` being the item that overran): record a lost attempt,
            resubmit its items, replace the actor.

            A timed-out item is known to be the one running: it is charged a retry, the items queued
            behind it are resubmitted as they were. A death fails every item queued on the actor, and the
            first of them may have finished with its reply lost in the crash: if it was alone there it is
            charged; if not, it is recorded as lost (its entries are) but no item is charged, and each of
            them is rerun alone, so that a further death names its item for certain."""
            failed = []
            for ref in list(queues[a]):
                i = drop(ref)
                try:  # finished before the worker went: keep its result
                    if ray.wait([ref], timeout=0)[0]:
                        out = ray.get(ref)
                        if i is not None:
                            done[i] = out
                        continue
                except self._lost_errors:
                    pass
                if i is not None:
                    failed.append((ref, i))
            self._replace(a)
            if not failed:
                return
            if running is not None:
                guilty = [i for ref, i in failed if ref is running]
                for i in guilty:
                    lost.setdefault(i, []).append(reason)
            else:
                lost.setdefault(failed[0][1], []).append(reason)  # it started: the result before it came back
                guilty = [failed[0][1]] if len(failed) == 1 else []
                if not guilty:
                    alone.update(i for _, i in failed)
                    log.warning("ray executor: a worker died running item %d or one of %s queued behind it; "
                                "rerunning each alone on a fresh worker", failed[0][1], [i for _, i in failed[1:]])
            for _, i in failed:
                if i in guilty:
                    charged[i] = charged.get(i, 0) + 1
                    log.warning("ray executor: item %d lost its worker (%s), attempt %d; %s", i, reason,
                                len(lost[i]), "retrying on a fresh worker" if charged[i] <= self.max_item_retries
                                else "no retries left")
                    if charged[i] > self.max_item_retries:
                        give_up(i, reason, cause)
                        continue
                retry.append(i)
            retry.sort()

        try:
            while emitted < len(items):
                # keep every actor fed, at most max_in_flight items each (queued items pipeline the next call);
                # an item that must run alone waits for an idle actor
                while retry or nxt < len(items):
                    i = retry[0] if retry else nxt
                    a = load.index(min(load))
                    if load[a] >= (1 if i in alone else self._max_in_flight):
                        break
                    submit(a, i)
                    if retry:
                        retry.pop(0)
                    else:
                        nxt += 1
                if emitted in done:
                    ok, out, entries = done.pop(emitted)
                    if ledger is not None:
                        from ads.ledger import lost_attempt

                        for reason in lost.pop(emitted, []):
                            ledger.record(lost_attempt("executor", emitted, reason))
                    emitted += 1
                    _replay(ledger, entries)
                    if not ok:
                        raise out
                    yield out
                    continue
                wait_s = None
                if self.item_timeout_s is not None:
                    now, expired = time.monotonic(), None
                    for a, q in enumerate(queues):  # the head item of each actor is the one it runs
                        if q and in_flight[q[0]][0] is not None:
                            left = started.setdefault(q[0], now) + self.item_timeout_s - now
                            if left <= 0 and not ray.wait([q[0]], timeout=0)[0]:
                                expired = a
                                break
                            left = max(0.0, left) + 0.01
                            wait_s = left if wait_s is None else min(wait_s, left)
                    if expired is not None:
                        lose(expired, "timeout", None, running=queues[expired][0])
                        continue
                ready, _ = ray.wait(list(in_flight), num_returns=1, timeout=wait_s)
                for ref in ready:
                    if ref not in in_flight:  # dropped with its dead actor while handling this batch
                        continue
                    try:
                        out = ray.get(ref)
                    except self._lost_errors as e:
                        lose(in_flight[ref][1], "worker died", e)
                        continue
                    i = drop(ref)
                    if i is not None:
                        done[i] = out
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
        if getattr(cfg, "item_timeout_s", None) is not None:
            log.warning("executor.item_timeout_s applies to kind 'ray' only (a thread cannot be killed): ignored")
        return ThreadExecutor(workers=cfg.workers)
    return RayExecutor(workers=cfg.workers, address=cfg.address, num_cpus_per_worker=cfg.num_cpus_per_worker,
                       runtime_env=cfg.runtime_env, max_item_retries=cfg.max_item_retries,
                       item_timeout_s=cfg.item_timeout_s)
