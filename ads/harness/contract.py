"""What a generator is, in one place: the contract the runner drives.

A generator says *what* to produce; the runner (ads/harness/runner.py) owns *how a run goes*:
the run folder and its stores, skipping finished items on resume, the executor, appends in
input order, the progress bar, tracker logging, the saved state, the summary, plots and the
export. A generator provides:

- `kind`, `config_class`: the `kind:` value of its YAML and the pydantic class that checks it;
- `stores`: its JSONL outputs (file name, id field). The runner opens them and hands them to
  the generator, and the kill-loop tests compare exactly these files after a SIGKILL + resume;
- `restore()`: rebuild in-memory state from those records (and `ctx.load_state()`) on resume;
- `rounds()`: the work, as lists of `Item`s with stable ids. A round may depend on what earlier
  rounds committed (the bandit's arm, ADS's memory): `rounds()` is a generator the runner
  resumes after committing each round;
- `work(env, payload)`: a module-level function (it pickles by reference onto Ray workers) that
  turns one item into a result, touching nothing but `env`. `env()` is the generator itself by
  default; `worker_factory()` builds an equivalent env in a worker process;
- `commit(item, result)`: in the driver, in input order: the records to append per store, the
  metrics to log, how far the progress bar moves; `end_round(items)` does the same once a round
  is complete (a router update, an iteration line, a saved state);
- `summary()` (figures, tables and plots written to the run folder) and `report(summary)`
  (what the terminal shows).

A sixth generator is one module: subclass `Generator`, fill these in, and register its kind in
ads/harness/kinds.py. docs/architecture.md walks through it.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, ClassVar, Iterator

from ads.config import RunConfig
from ads.store import JsonlStore


@dataclass(frozen=True)
class Store:
    """One JSONL output of a generator: append-only, one record per line, keyed by `id_field`."""

    file: str
    id_field: str = "id"


@dataclass(frozen=True)
class Item:
    """One unit of work: a stable id (what resume skips by) and what the work function receives."""

    id: str
    payload: Any = None


@dataclass
class Commit:
    """What the driver does with one result (or one finished round), in this order: append the
    records (per store, in the order given), log the metrics, save the state, move the bar."""

    records: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    metrics: dict[str, Any] | None = None
    step: int | None = None
    state: dict[str, Any] | None = None
    progress: int = 0
    postfix: dict[str, Any] | None = None


class Generator:
    """Base class of the five generators (and any sixth). See the module docstring."""

    kind: ClassVar[str]
    config_class: ClassVar[type[RunConfig]]
    stores: ClassVar[tuple[Store, ...]] = ()
    progress_unit: ClassVar[str] = "item"
    progress_desc: ClassVar[str] = "items"
    # The export (RUN/export, `main.py export`, `main.py finetune`): the five built-in kinds have
    # typed specs in ads/export/specs.py; any other kind exports the first store's records, with
    # these of their fields as the instruction / response / text columns.
    export_columns: ClassVar[dict[str, str]] = {}

    def __init__(self, cfg: Any, ctx: Any, stores: dict[str, JsonlStore], **components: Any):
        self.cfg, self.ctx, self.out = cfg, ctx, stores

    # -- work ------------------------------------------------------------------------------
    work: ClassVar[Callable[[Any, Any], Any]]

    @classmethod
    def store_paths(cls, cfg: Any, run_dir: Any) -> dict[str, Any]:
        """Where each store lives: in the run folder, unless the config puts one elsewhere (a
        benchmark that outlives its run folders)."""
        return {s.file: run_dir / s.file for s in cls.stores}

    def restore(self) -> None:
        """Rebuild in-memory state from the stores (and ctx.load_state()); called once, before rounds()."""

    def rounds(self) -> Iterator[list[Item]]:
        raise NotImplementedError

    def is_done(self, item: Item) -> bool:
        """Whether a resumed run already committed this item (default: its id is in the first store)."""
        first = self.stores[0]
        return item.id in self.out[first.file].ids()

    def env(self) -> Any:
        """What `work` receives in this process."""
        return self

    def executor(self) -> Any:
        """Where this generator's items run: the run's executor (config `executor:`) by default, this
        process when `worker_factory()` is None (the runner checks that first). A
        generator may return its own (e.g. threads for an HTTP endpoint's concurrency); the runner
        closes an executor that is not the run's when the work ends."""
        return self.ctx.executor()

    def worker_factory(self) -> Callable[[], Any] | None:
        """Builds `env()`'s equivalent in a worker process (Ray, threads); None: work runs here only."""
        return None

    def commit(self, item: Item, result: Any) -> Commit:
        raise NotImplementedError

    def end_round(self, items: list[Item]) -> Commit | None:
        return None

    # -- progress and results -----------------------------------------------------------------
    def announce(self) -> str | None:
        """One line printed before the work starts (what will run; where a resume picks up)."""
        return None

    def progress_total(self) -> int | None:
        return None

    def progress_done(self) -> int:
        return 0

    def summary(self) -> dict[str, Any]:
        raise NotImplementedError

    def report(self, summary: dict[str, Any]) -> None:
        """Print the run's result table; `summary` carries run_id, run_dir, wall_s and the ledger."""
