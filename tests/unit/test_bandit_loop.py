"""The bandit generator's loop on controlled fake models: learning, outputs, templater arms, resume."""
from __future__ import annotations

import csv
import json
import os
import random
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from ads.config import validate
from ads.generators.bandit_recipes import BanditConfig, run
from ads.run import RunContext
from ads.store import JsonlStore
from models.fake import FakeModel

ROOT = Path(__file__).resolve().parents[2]
VOCAB = [f"{a}{b}" for a in ("ka", "lo", "mi", "nu", "pe", "ra", "so", "tu", "vi", "ze") for b in
         ("bar", "cen", "dor", "fel", "gim", "hov", "jat", "kel", "lum", "mos", "nip", "pov", "quil", "ros", "sut")]


def prose(sample_id: str, n: int = 24) -> str:
    """A distinct, non-repetitive paragraph, fixed by the sample id (so a resumed run gets the same text)."""
    rng = random.Random(sample_id)
    return " ".join(rng.sample(VOCAB, n)).capitalize() + "."


def by_temperature(messages, kw) -> str:
    """Truly better arm: at temperature ~0.7 every reply passes; cold replies are too short for the
    length validator, hot ones loop on one phrase 70% of the time (distinct-n rejects them)."""
    sid, t = str(kw["sample_id"]), kw["temperature"]
    if t < 0.5:
        return "A short reply that stops early."
    if t > 1.0 and random.Random(sid + "!").random() < 0.7:
        return " ".join(["the same words again"] * 8)
    return prose(sid)


def config(tmp_path: Path, **over) -> BanditConfig:
    data = {
        "kind": "bandit", "name": "t", "seed": 0, "results_dir": str(tmp_path / "results"),
        "cache": {"path": str(tmp_path / "requests.sqlite")}, "tracking": {"wandb": False},
        "recipe": {"domain": "testing", "task": "Write one paragraph about {topic}.", "target_count": 24,
                   "facets": {"topic": ["north", "south", "east"]}},
        "validators": [{"type": "length", "min_words": 12, "max_words": 60},
                       {"type": "distinct_n", "n": 2, "min": 0.8}, {"type": "novelty", "threshold": 0.5, "k": 2}],
        "arms": {"profiles": {"conservative": 0.2, "balanced": 0.7, "creative": 1.3}},
        "router": {"epsilon": 0.5, "epsilon_decay": 0.85, "min_epsilon": 0.05},
        "loop": {"batch_size": 3, "max_iterations": 40, "max_tokens": 64},
    }
    for k, v in over.items():
        data[k] = {**data.get(k, {}), **v} if isinstance(v, dict) else v
    return validate(BanditConfig, data, "test")


@pytest.mark.parametrize("strategy", ["epsilon_greedy", "ucb1", "thompson"])
def test_the_truly_better_arm_ends_with_most_pulls_and_the_run_writes_its_summary(tmp_path, strategy, capsys):
    cfg = config(tmp_path, router={"strategy": strategy, "ucb_c": 0.3})
    ctx = RunContext.create(cfg)
    summary = run(cfg, ctx, model=FakeModel(by_temperature))
    arms = {a["arm"]: a for a in summary["arms"]}
    assert summary["most_pulled_arm"] == "naive:balanced" == summary["best_arm_by_mean_reward"]
    assert arms["naive:balanced"]["pulls"] > summary["iterations"] / 2
    assert arms["naive:balanced"]["mean_reward"] > arms["naive:creative"]["mean_reward"] > \
        arms["naive:conservative"]["mean_reward"]
    assert summary["accepted"] == 24 and summary["target_reached"]
    assert summary["acceptance_rate"] == pytest.approx(24 / summary["attempts"], abs=1e-4)
    assert arms["naive:conservative"]["top_rejection"] == "length"

    d = ctx.run_dir
    for name in ("summary.json", "arms.csv", "state.json", "arm_choices.png", "arm_pulls.png", "feedback.png",
                 "samples.jsonl", "dataset.jsonl", "iterations.jsonl", "metrics.jsonl"):
        assert (d / name).is_file() and (d / name).stat().st_size > 0, name
    rows = list(csv.DictReader((d / "arms.csv").open()))
    assert {r["arm"]: int(r["pulls"]) for r in rows} == {a: s["pulls"] for a, s in arms.items()}
    state = json.loads((d / "state.json").read_text())["feedback"]
    assert state["iteration"] == summary["iterations"] and state["collected"] == 24
    assert state["pulls"] == {a: s["pulls"] for a, s in arms.items()}
    dataset = JsonlStore(d / "dataset.jsonl").read()
    assert len(dataset) == 24 and all(r["topic"] in ("north", "south", "east") for r in dataset)
    assert all(r["arm"] == "naive:balanced" or r["arm"] == "naive:creative" for r in dataset)
    out = capsys.readouterr().out
    assert "Arms after" in out and "naive:balanced" in out and "acceptance rate" in out


def test_text_only_recipes_get_plain_prose_arms_and_the_prompt_carries_the_facets(tmp_path):
    fake = FakeModel(lambda m, kw: "Text: " + prose(str(kw["sample_id"])))
    cfg = config(tmp_path, recipe={"target_count": 3}, arms={"profiles": {"balanced": 0.7}})
    run(cfg, RunContext.create(cfg), model=fake)
    call = fake.calls[0]
    assert call["json_schema"] is None  # no grammar for a single free-text field
    prompt = call["messages"][-1]["content"]
    assert prompt.startswith("Write one paragraph about ") and "The text is 12 to 60 words long." in prompt
    rec = JsonlStore(tmp_path / "results" / RunContext.create(cfg, resume=True).run_id / "dataset.jsonl").read()[0]
    assert not rec["text"].startswith("Text:") and rec["topic"] in prompt


GRAMMAR = {
    "start": "review",
    "rules": {"review": [{"text": "<head> Rating: {rating}/5.", "p": 1.0}],
              "head": ["The {product} is a {gear} I used for {duration}.", "I tried the {product}, a {gear}."]},
    "slots": {"product": {"type": "string", "minLength": 3, "maxLength": 30, "description": "a product name"},
              "rating": {"type": "integer", "minimum": 1, "maximum": 5}},
}


def slot_filler(messages, kw):
    """Templater replies fill exactly the slots the schema asks for; naive replies are prose without a rating."""
    schema = kw["json_schema"]
    sid = str(kw["sample_id"])
    if schema is None or "text" in schema["properties"]:
        return json.dumps({"text": prose(sid, 14), "rating": 3}) if schema else prose(sid, 14)
    vals = {"product": " ".join(prose(sid, 2).split()[:2]).rstrip("."), "duration": prose(sid + "d", 2).rstrip("."),
            "rating": 4}
    return json.dumps({k: vals[k] for k in schema["required"]})


def test_templater_arms_fill_a_schema_derived_from_each_template(tmp_path):
    fake = FakeModel(slot_filler)
    cfg = config(tmp_path, recipe={"target_count": 6, "grammar": GRAMMAR, "facets": {"gear": ["mask", "fin"]},
                                   "task": "Write a gear review."},
                 validators=[{"type": "length", "min_words": 5},
                             {"type": "regex", "name": "rating", "pattern": r"Rating: [1-5]/5\.$"}],
                 arms={"profiles": {"balanced": 0.7}})
    summary = run(cfg, RunContext.create(cfg), model=fake)
    assert [a["arm"] for a in summary["arms"]] == ["naive:balanced", "templater:balanced"]
    tmpl = [c for c in fake.calls if str(c["sample_id"]).startswith("templater")]
    assert tmpl, "the templater arm was pulled"
    for c in tmpl:
        s = c["json_schema"]
        assert "gear" not in s["properties"]  # a facet slot is filled by the generator, not the model
        assert set(s["required"]) <= {"product", "duration", "rating"} and "rating" in s["required"]
        assert s["properties"]["product"] == {"type": "string", "minLength": 3, "maxLength": 30}  # no description
        assert s["properties"]["rating"] == {"enum": [1, 2, 3, 4, 5]}  # the grammar cannot bound an integer
    samples = JsonlStore(Path(summary["run_dir"]) / "samples.jsonl").read()
    done = [s for s in samples if s["arm"] == "templater:balanced"]
    assert done and all(s["accepted"] for s in done)
    for s in done:
        assert s["record"]["text"].endswith("Rating: 4/5.") and s["record"]["gear"] in s["record"]["text"]
        assert "{" not in s["record"]["text"] and s["meta"]["template"].count("{") >= 2
    naive = [s for s in samples if s["arm"] == "naive:balanced"]
    assert naive and not any(s["accepted"] for s in naive)  # prose without the rating line: rejected


def test_malformed_replies_and_model_errors_are_counted_rejections(tmp_path):
    from models.base import ModelError

    def flaky(messages, kw):
        item = str(kw["sample_id"]).rsplit(":", 1)[1]  # it<iteration>-<j>
        if item == "it0000-00":
            raise ModelError("backend down")
        return '{"text": "unterminated' if item == "it0000-01" else json.dumps({"text": prose(item)})

    cfg = config(tmp_path, recipe={"target_count": 2}, arms={"profiles": {"balanced": 0.7}, "naive_output": "json"})
    summary = run(cfg, RunContext.create(cfg), model=FakeModel(flaky))
    samples = JsonlStore(Path(summary["run_dir"]) / "samples.jsonl").read()
    errors = [s["error"] for s in samples if s["malformed"]]
    assert any("backend down" in e for e in errors) and any("JSON" in e for e in errors)
    assert summary["malformed"] == len(errors) == 2 and summary["accepted"] == 2
    assert summary["arms"][0]["top_rejection"] == "malformed"


# --- resume --------------------------------------------------------------------------------
class Interrupt(BaseException):
    """Stands in for a kill: raised from inside a model call, nothing after it runs."""


def interrupted_after(n_calls: int):
    calls = {"n": 0}

    def fn(messages, kw):
        calls["n"] += 1
        if calls["n"] > n_calls:
            raise Interrupt()
        return by_temperature(messages, kw)

    return fn


def outputs(run_dir: Path) -> dict[str, list]:
    return {name: [{k: v for k, v in r.items() if k not in ("latency_s", "wall_s")}
                   for r in JsonlStore(run_dir / f"{name}.jsonl").read()]
            for name in ("samples", "dataset", "iterations")}


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("ref")
    cfg = config(tmp, recipe={"target_count": 12})
    ctx = RunContext.create(cfg, run_dir=tmp / "run")
    run(cfg, ctx, model=FakeModel(by_temperature))
    return outputs(tmp / "run")


@pytest.mark.parametrize("kill_after", [1, 5, 10])
def test_an_interrupted_run_resumes_without_losing_or_repeating_records(tmp_path, reference, kill_after):
    cfg = config(tmp_path, recipe={"target_count": 12})
    with pytest.raises(Interrupt):
        run(cfg, RunContext.create(cfg, run_dir=tmp_path / "run"), model=FakeModel(interrupted_after(kill_after)))
    assert len(JsonlStore(tmp_path / "run" / "samples.jsonl").read()) == kill_after
    fresh = FakeModel(by_temperature)
    summary = run(cfg, RunContext.create(cfg, resume=True, run_dir=tmp_path / "run"), model=fresh)
    got = outputs(tmp_path / "run")
    assert got == reference  # same attempts, same accepted records, same router choices, in the same order
    ids = [s["id"] for s in got["samples"]]
    assert len(ids) == len(set(ids)) and len(fresh.calls) == len(ids) - kill_after
    assert summary["resumed_from_items"] == kill_after and summary["accepted"] == 12


def test_a_thompson_run_resumes_to_the_same_choices_and_draws(tmp_path):
    """The posterior is a function of the logged rewards and the draws of the iteration's seed: an
    interrupted Thompson run, resumed, logs the same arms and the same posterior draws."""
    def cfg_at(d: Path) -> BanditConfig:
        return config(d, recipe={"target_count": 12}, router={"strategy": "thompson"})

    ref_cfg = cfg_at(tmp_path / "ref")
    run(ref_cfg, RunContext.create(ref_cfg, run_dir=tmp_path / "ref" / "run"), model=FakeModel(by_temperature))
    cfg = cfg_at(tmp_path)
    with pytest.raises(Interrupt):
        run(cfg, RunContext.create(cfg, run_dir=tmp_path / "run"), model=FakeModel(interrupted_after(10)))
    state = json.loads((tmp_path / "run" / "state.json").read_text())["feedback"]
    assert state["iteration"] == 3 and sum(state["pulls"].values()) == 3  # persisted like the other routers
    run(cfg, RunContext.create(cfg, resume=True, run_dir=tmp_path / "run"), model=FakeModel(by_temperature))
    got, want = outputs(tmp_path / "run"), outputs(tmp_path / "ref" / "run")
    assert got == want
    draws = [r for r in got["iterations"] if r["reason"] == "thompson"]
    assert draws and all(r["arm"] == max(r["thompson_draws"], key=r["thompson_draws"].get) for r in draws)


def test_downstream_reward_from_any_labelled_file(tmp_path, capsys):
    """A recipe whose facet is a label gets the classifier reward from a JSONL of real labelled texts."""
    words = {"north": "glacier snow pine frost", "south": "desert cactus sand dune", "east": "river rice monsoon delta"}
    rng = random.Random(0)
    rows = [{"text": " ".join(rng.sample(w.split(), 3)) + " region", "label": lbl} for lbl, w in words.items()
            for _ in range(20)]
    (tmp_path / "eval.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))

    def labelled(messages, kw):
        prompt = messages[-1]["content"]
        topic = next(t for t in words if f"about {t}" in prompt)
        return prose(str(kw["sample_id"])) + " " + words[topic] + "."

    cfg = config(tmp_path, recipe={"target_count": 6}, arms={"profiles": {"balanced": 0.7}},
                 reward={"downstream": {"enabled": True, "task": "labelled_jsonl", "label_field": "topic",
                                        "eval_path": str(tmp_path / "eval.jsonl"), "eval_label_field": "label",
                                        "validation_size": 30, "weight": 0.5}})
    summary = run(cfg, RunContext.create(cfg), model=FakeModel(labelled))
    iters = JsonlStore(next((tmp_path / "results").iterdir()) / "iterations.jsonl").read()
    assert all(r["dataset_accuracy"] is not None for r in iters) and iters[-1]["dataset_accuracy"] > 0.9
    assert iters[0]["downstream_reward"] == 0.5  # the first batch with data: no gain to measure yet
    ds = summary["downstream_heldout"]
    assert ds["heldout_n"] == 30 and ds["synthetic_accuracy"] > 0.9 and ds["synthetic"]["used"] == 6
    assert "eval.jsonl" in capsys.readouterr().out


def test_a_downstream_label_that_is_not_a_facet_is_a_config_error(tmp_path):
    from ads.config import ConfigError

    (tmp_path / "eval.jsonl").write_text('{"text": "a", "label": "x"}\n')
    cfg = config(tmp_path, reward={"downstream": {"enabled": True, "task": "labelled_jsonl", "label_field": "colour",
                                                  "eval_path": str(tmp_path / "eval.jsonl")}})
    with pytest.raises(ConfigError, match="'colour' is neither a facet"):
        run(cfg, RunContext.create(cfg), model=FakeModel(by_temperature))


def test_resume_replays_a_logged_iteration_missing_from_state_json(tmp_path, reference):
    """A kill between the iteration log line and state.json: the log line is replayed."""
    cfg = config(tmp_path, recipe={"target_count": 12})
    with pytest.raises(Interrupt):
        run(cfg, RunContext.create(cfg, run_dir=tmp_path / "run"), model=FakeModel(interrupted_after(9)))
    state_path = tmp_path / "run" / "state.json"
    state = json.loads(state_path.read_text())
    iters = JsonlStore(tmp_path / "run" / "iterations.jsonl").read()
    assert state["feedback"]["iteration"] == len(iters) == 3
    # roll state.json back one iteration, as if the kill came before it was written
    from ads.generators.bandit.router import FeedbackState

    st = FeedbackState(state["feedback"]["arms"])
    for rec in iters[:-1]:
        st.update(rec["arm"], rec["reward"], rec["accepted"])
    state_path.write_text(json.dumps({**state, "feedback": st.to_dict()}))
    run(cfg, RunContext.create(cfg, resume=True, run_dir=tmp_path / "run"), model=FakeModel(by_temperature))
    assert outputs(tmp_path / "run") == reference


def test_a_kill_between_the_last_iteration_and_state_json_is_repaired_on_resume(tmp_path):
    """Killed after the last iteration's log line, before state.json: the resumed run has nothing
    left to generate, so it must write the caught-up feedback state itself (found by the kill loop
    in tests/integration/test_kill_resume.py: state.json stayed one iteration behind)."""
    from ads.generators.bandit.router import FeedbackState

    cfg = config(tmp_path, recipe={"target_count": 6})
    run(cfg, RunContext.create(cfg, run_dir=tmp_path / "run"), model=FakeModel(by_temperature))
    state_path = tmp_path / "run" / "state.json"
    whole = json.loads(state_path.read_text())
    iters = JsonlStore(tmp_path / "run" / "iterations.jsonl").read()
    st = FeedbackState(whole["feedback"]["arms"])
    for rec in iters[:-1]:
        st.update(rec["arm"], rec["reward"], rec["accepted"])
    state_path.write_text(json.dumps({**whole, "feedback": st.to_dict()}))
    fresh = FakeModel(by_temperature)
    run(cfg, RunContext.create(cfg, resume=True, run_dir=tmp_path / "run"), model=fresh)
    assert fresh.calls == [] and json.loads(state_path.read_text()) == whole


KILL_SCRIPT = textwrap.dedent("""
    import sys
    sys.path.insert(0, {root!r}); sys.path.insert(0, {tests!r})
    from test_bandit_loop import by_temperature, config
    from pathlib import Path
    from ads.generators.bandit_recipes import run
    from ads.run import RunContext
    from models.fake import FakeModel
    tmp = Path({tmp!r})
    cfg = config(tmp, recipe={{"target_count": 12}})
    model = FakeModel(by_temperature, latency_s=0.15)
    run(cfg, RunContext.create(cfg, resume={resume}, run_dir=tmp / "run"), model=model)
""")


def test_sigkill_mid_run_then_resume_gives_the_uninterrupted_records(tmp_path, reference):
    def script(resume: bool) -> list[str]:
        code = KILL_SCRIPT.format(root=str(ROOT), tests=str(ROOT / "tests" / "unit"), tmp=str(tmp_path), resume=resume)
        return [sys.executable, "-c", code]

    env = {**os.environ, "WANDB_MODE": "disabled"}
    proc = subprocess.Popen(script(False), cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    samples = tmp_path / "run" / "samples.jsonl"
    deadline = time.time() + 60
    while time.time() < deadline and proc.poll() is None:
        if samples.exists() and samples.read_text().count("\n") >= 7:
            break
        time.sleep(0.02)
    assert proc.poll() is None, f"the run ended before it could be killed: {proc.stderr.read().decode()[-2000:]}"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    partial = len(JsonlStore(samples).read())
    assert 7 <= partial < len(reference["samples"])
    done = subprocess.run(script(True), cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert outputs(tmp_path / "run") == reference
