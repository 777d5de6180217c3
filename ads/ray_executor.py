"""Run a generator's independent work items on Ray actors, results in input order (`executor.kind: ray`).

The contract is `ads.executor`'s: `work(env, item)` runs on a worker whose env `factory()` built
once, every write happens in the driver in input order, and the ledger entries a worker recorded
for an item are appended to the run's ledger before its result is yielded.

A Ray worker that dies while running an item (its process killed, OOM, `ray.kill`), or runs one
item longer than `item_timeout_s` (then it is killed), is replaced by a fresh actor built from
the same factory, and that item is retried on the pool, at most `max_item_retries` times; items
that were only queued on it are resubmitted without using a retry. The entries the dead worker
had recorded for the item died with it: the ledger gets one `lost_worker` entry per lost attempt
(item index, reason, spend unknown) before the retried attempt's entries. After the last retry
the item raises `WorkerLostError` (`ItemTimeoutError` for a timeout) at its place in the order.
"""
from __future__ import annotations

import hashlib
import logging
import os
import time
from collections import deque
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

from ads.executor import Work, _replay, _Worker

log = logging.getLogger(__name__)

ROOT = Path(__file__).resolve().parent.parent


class WorkerLostError(RuntimeError):
    """An item's Ray worker died on its every attempt (the first try and `max_item_retries` retries)."""


class ItemTimeoutError(WorkerLostError):
    """An item ran longer than `item_timeout_s` on its every attempt."""


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
