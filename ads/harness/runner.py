"""The one loop every generator runs in (the contract is ads/harness/contract.py).

    run_generator(BanditGenerator, cfg, ctx)

opens the generator's stores in ctx.run_dir, lets it restore its state, then for each round:
skips the items a resumed run already committed, runs the rest on the run's executor (local,
threads or Ray; results come back in input order), and commits each result in the driver:
records appended (fsync'd, one line each), metrics logged, state saved, progress bar moved.
At the end it writes the summary, the export (HF dataset + card, W&B artifact), closes the run
and prints the report. Nothing here knows which generator it drives.
"""
from __future__ import annotations

from typing import Any

from ads.executor import LocalExecutor
from ads.harness.contract import Commit, Generator
from ads.store import JsonlStore


def open_stores(gen_cls: type[Generator], ctx: Any) -> dict[str, JsonlStore]:
    paths = gen_cls.store_paths(ctx.cfg, ctx.run_dir)
    return {s.file: JsonlStore(paths[s.file], id_field=s.id_field) for s in gen_cls.stores}


def apply_commit(gen: Generator, commit: Commit | None, bar: Any) -> None:
    if commit is None:
        return
    for file, records in commit.records.items():
        store = gen.out[file]
        for rec in records:
            store.append(rec)
    if commit.metrics:
        gen.ctx.tracker.log(commit.metrics, step=commit.step)
    if commit.state is not None:
        gen.ctx.save_state(commit.state)
    if commit.progress:
        bar.update(commit.progress)
    if commit.postfix:
        bar.set_postfix(commit.postfix)


def drive(gen: Generator, progress: bool | None = None) -> None:
    """Every round of `gen`, resumed where its stores say it stopped. `progress`: None shows the
    bar on a terminal only, False never, True always."""
    from tqdm import tqdm

    # work that cannot leave this process (no worker factory) runs here, whatever `executor:` says
    executor = gen.executor() if gen.worker_factory() is not None else LocalExecutor()
    total = gen.progress_total()
    try:
        with tqdm(total=total, initial=min(gen.progress_done(), total) if total else gen.progress_done(),
                  desc=gen.progress_desc, unit=gen.progress_unit, dynamic_ncols=True,
                  disable=None if progress is None else not progress) as bar:
            for items in gen.rounds():
                todo = [it for it in items if not gen.is_done(it)]
                if todo:
                    results = executor.imap(type(gen).work, [it.payload for it in todo], env=gen.env(),
                                            factory=gen.worker_factory(), ledger=gen.ctx.ledger)
                    for item, result in zip(todo, results):
                        apply_commit(gen, gen.commit(item, result), bar)
                apply_commit(gen, gen.end_round(items), bar)
    finally:
        if not gen.ctx.is_run_executor(executor):  # the generator's own (ctx closes the run's)
            executor.close()


def run_generator(gen_cls: type[Generator], cfg: Any, ctx: Any, *, progress: bool | None = None,
                  **components: Any) -> dict[str, Any]:
    """Run `gen_cls` on `cfg` in `ctx` to the end; returns the finished summary."""
    from ads.export.at_end import export_at_end

    gen = gen_cls(cfg, ctx, open_stores(gen_cls, ctx), **components)
    gen.restore()
    line = gen.announce()
    if line:
        print(line)
    drive(gen, progress)
    out = gen.summary()
    export_at_end(ctx, out)  # RUN_DIR/export and the W&B artifact, before finish closes W&B
    summary = ctx.finish(out)
    gen.report(summary)
    return summary
