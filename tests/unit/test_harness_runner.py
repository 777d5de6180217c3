"""The runner drives any generator that fills in the contract: the sixth generator of
docs/architecture.md is run from the doc itself, killed half-way and resumed."""
from __future__ import annotations

import importlib.util
import re
import sys
from pathlib import Path

import pytest

from ads.harness.contract import Commit, Generator, Item, Store
from ads.harness.runner import run_generator
from ads.run import RunContext
from models.fake import FakeModel

ROOT = Path(__file__).resolve().parents[2]


def doc_example(tmp_path: Path):
    """The one Python block of docs/architecture.md's 'sixth generator' section, as a module."""
    text = (ROOT / "docs" / "architecture.md").read_text(encoding="utf-8")
    code = re.search(r"```python\n(# ads/generators/echo.py\n.*?)```", text, re.S).group(1)
    path = tmp_path / "echo_generator.py"
    path.write_text(code, encoding="utf-8")
    spec = importlib.util.spec_from_file_location("echo_generator", path)
    mod = importlib.util.module_from_spec(spec)
    sys.modules["echo_generator"] = mod  # Ray/pickle find work functions by module name
    spec.loader.exec_module(mod)
    return mod


def cfg_for(mod, tmp_path: Path, prompts: list[str]):
    return mod.EchoConfig(prompts=prompts, results_dir=str(tmp_path / "results"),
                          cache={"enabled": False}, tracking={"wandb": False})


class Dies(Exception):
    pass


def test_the_docs_sixth_generator_runs_then_resumes_after_a_kill_without_repeating_a_call(tmp_path):
    from ads.harness.kinds import GENERATORS, register

    mod = doc_example(tmp_path)
    register("echo", "echo_generator:EchoGenerator")  # what the doc tells a newcomer to do
    cfg = cfg_for(mod, tmp_path, ["one", "two", "three", "four"])
    calls: list[str] = []

    def answer(messages, kw):
        calls.append(messages[-1]["content"])
        if len(calls) == 3 and kill[0]:
            raise Dies("killed")  # the process dies inside the third call
        return messages[-1]["content"].upper()

    kill = [True]
    with pytest.raises(Dies):
        run_generator(mod.EchoGenerator, cfg, RunContext.create(cfg), model=FakeModel(answer))
    run_dir = next((tmp_path / "results").iterdir())
    assert [r["answer"] for r in map(eval_json, (run_dir / "answers.jsonl").read_text().splitlines())] == ["ONE", "TWO"]

    kill[0] = False
    calls.clear()
    summary = run_generator(mod.EchoGenerator, cfg, RunContext.create(cfg, resume=True), model=FakeModel(answer))
    assert calls == ["three", "four"]  # committed items are skipped, not recomputed
    lines = [eval_json(x) for x in (run_dir / "answers.jsonl").read_text().splitlines()]
    assert [(r["id"], r["answer"]) for r in lines] == [("p0", "ONE"), ("p1", "TWO"), ("p2", "THREE"), ("p3", "FOUR")]
    assert summary["answers"] == 4 and (run_dir / "summary.json").exists() and (run_dir / "export").is_dir()
    # the run's ledger survives the kill: 3 calls before it (the third died) and 2 after
    assert summary["ledger"]["run"]["model_calls"] == 5
    from ads.export.core import load_run

    rows = load_run(run_dir).rows
    assert [(r["instruction"], r["response"], r["accepted"]) for r in rows][:2] == [("one", "ONE", True),
                                                                                    ("two", "TWO", True)]
    del GENERATORS["echo"]


def eval_json(line: str):
    import json

    return json.loads(line)


class Counter(Generator):
    """Each round's size is the number of records committed so far plus one: rounds depend on commits."""

    kind = "counter"
    stores = (Store("items.jsonl"), Store("rounds.jsonl", id_field="round"))
    work = staticmethod(lambda env, payload: payload * 10)

    def __init__(self, cfg, ctx, stores, log=None):
        super().__init__(cfg, ctx, stores)
        self.log = log if log is not None else []
        self.n_rounds = 0

    def restore(self):
        self.n_rounds = len(self.out["rounds.jsonl"])

    def rounds(self):
        while self.n_rounds < 3:
            done = len(self.out["items.jsonl"])
            yield [Item(f"r{self.n_rounds}-{j}", done + j) for j in range(self.n_rounds + 1)]

    def commit(self, item, result):
        self.log.append(("commit", item.id))
        return Commit(records={"items.jsonl": [{"id": item.id, "value": result}]}, progress=1)

    def end_round(self, items):
        self.log.append(("end", self.n_rounds))
        rec = {"round": self.n_rounds, "items": [i.id for i in items]}
        self.n_rounds += 1
        return Commit(records={"rounds.jsonl": [rec]}, state={"rounds": self.n_rounds}, metrics={"n": len(items)},
                      step=rec["round"])

    def summary(self):
        return {"rounds": self.n_rounds}


def test_rounds_are_asked_for_after_the_previous_round_is_committed(tmp_path):
    from ads.config import RunConfig

    cfg = RunConfig(name="counter", results_dir=str(tmp_path), cache={"enabled": False}, tracking={"wandb": False})
    ctx = RunContext.create(cfg)
    log: list = []
    run_generator(Counter, cfg, ctx, log=log)
    assert log == [("commit", "r0-0"), ("end", 0), ("commit", "r1-0"), ("commit", "r1-1"), ("end", 1),
                   ("commit", "r2-0"), ("commit", "r2-1"), ("commit", "r2-2"), ("end", 2)]
    items = [eval_json(x) for x in (ctx.run_dir / "items.jsonl").read_text().splitlines()]
    # round 1's payloads start at 1 (one record committed before it), round 2's at 3
    assert [r["value"] for r in items] == [0, 10, 20, 30, 40, 50]
    assert eval_json((ctx.run_dir / "state.json").read_text()) == {"rounds": 3}
    assert [eval_json(x)["n"] for x in (ctx.run_dir / "metrics.jsonl").read_text().splitlines()] == [1, 2, 3]


@pytest.mark.parametrize("progress,shown", [(True, True), (False, False)])
def test_the_progress_bar_can_be_forced_on_or_off(tmp_path, capsys, progress, shown):
    from ads.config import RunConfig

    cfg = RunConfig(name="counter", results_dir=str(tmp_path), cache={"enabled": False}, tracking={"wandb": False})
    run_generator(Counter, cfg, RunContext.create(cfg), progress=progress)
    assert ("items" in capsys.readouterr().err) is shown  # tqdm writes "items: ..." to stderr


def test_a_generators_own_executor_is_closed_when_its_work_ends(tmp_path):
    from ads.config import RunConfig
    from ads.executor import LocalExecutor

    closed = []

    class Own(LocalExecutor):
        def close(self):
            closed.append(True)

    class WithOwn(Counter):
        def worker_factory(self):  # work that could run elsewhere: the generator's executor is used
            return lambda: self

        def executor(self):
            return Own()

    cfg = RunConfig(name="counter", results_dir=str(tmp_path), cache={"enabled": False}, tracking={"wandb": False})
    run_generator(WithOwn, cfg, RunContext.create(cfg))
    assert closed == [True]
