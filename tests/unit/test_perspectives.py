"""The multi-perspective pipeline, specified with a scripted FakeModel (no real model here).

Covers: JSON and YAML configs (seed-style files included), provider detection, the missing
input file error, the reading step running before the strategy step, retries with
exponential backoff, bounded concurrency, --test mode, the output format, and resuming
after an interruption without losing or repeating a unit.
"""
from __future__ import annotations

import json
import random
import sys
import threading
import time
from pathlib import Path

import pytest

from ads.config import ConfigError
from ads.generators import perspectives as P
from ads.generators.persp.engine import backoff_delay, trim_to_sentence
from ads.generators.persp.inputs import read_input_file
from ads.generators.persp.provider import choose, detect_provider
from ads.generators.persp.settings import PerspModelConfig, RetryConfig
from ads.run import RunContext, run_id_for
from models.base import Completion, ModelError
from models.fake import FakeModel

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = ROOT / "configs" / "perspectives"


# --- helpers -------------------------------------------------------------------------------------
def write_inputs(path: Path, n: int = 3) -> Path:
    topics = ["river", "volcano", "library", "glacier", "orchestra", "bridge", "desert", "harbour", "comet",
              "forest", "castle", "canal"]
    items = [{"input": f"The {topics[i % len(topics)]} number {i} is described in this article. It has a long "
                       f"history and many visitors come to see it every year, mostly in summer.",
              "reference": f"A {topics[i % len(topics)]}."} for i in range(n)]
    path.write_text(json.dumps(items), encoding="utf-8")
    return path


def base_config(tmp_path: Path, **over) -> dict:
    cfg = {
        "name": "t-persp",
        "task_type": "summarization",
        "task_description": "You summarize short articles.",
        "model_config": {"model_name": "smollm2-135m", "max_tokens": 40, "temperature": 0.7, "max_concurrency": 2},
        "agent_perspectives": [
            {"condition": "Original", "reading": None, "strategy": "Summarize the article in one sentence."},
            {"condition": "Careful Reader", "reading": "List the key facts of the article.",
             "strategy": "Using your notes, summarize the article.\n\nARTICLE:\n{input}\n\nNOTES:\n{notes}"},
        ],
        "data_config": {"input_data_path": str(write_inputs(tmp_path / "inputs.json")), "sample_size": 3},
        "add_references": True,
        "results_dir": str(tmp_path / "results"),
        "cache": {"enabled": False},
        "tracking": {"wandb": False},
        "retry": {"max_attempts": 3, "base_delay_s": 0.01, "max_delay_s": 0.05},
    }
    for k, v in over.items():
        cfg[k] = v
    return cfg


def responder(messages, kw):
    """Notes for reading prompts, a sentence echoing the sample id for everything else."""
    user = messages[-1]["content"]
    if user.startswith("List the key facts"):
        return f"- fact A\n- fact B ({kw['sample_id']})"
    return f"This short summary of the article covers item {kw['sample_id']} and its main point clearly."


def load_dataset(summary: dict) -> dict:
    return json.loads(Path(summary["dataset"]).read_text(encoding="utf-8"))


# --- configs -------------------------------------------------------------------------------------
def test_shipped_yaml_config_loads_with_model_config_alias():
    cfg = P.load_perspectives_config(SHIPPED / "summarization_wiki.yaml")
    assert cfg.kind == "perspectives" and cfg.task_type == "summarization"
    assert cfg.models.generator.model_name == "smollm2-135m" and cfg.models.generator.max_tokens == 64
    assert cfg.data_config.input_data_path == "builtin:wiki_summarization_en"
    assert [p.condition for p in cfg.agent_perspectives][:4] == ["Original", "Low Effort", "Fabricated Detail",
                                                                  "Careful Reader"]
    assert cfg.agent_perspectives[3].reading and cfg.agent_perspectives[0].reading is None
    assert cfg.add_references is True


@pytest.mark.parametrize("name", ["translation.json", "peer_review.json"])
def test_shipped_json_configs_validate_once_their_input_file_exists(tmp_path, name):
    data = json.loads((SHIPPED / name).read_text(encoding="utf-8"))
    data["data_config"]["input_data_path"] = str(write_inputs(tmp_path / "in.json"))
    cfg = P.load_perspectives_config(data)
    assert cfg.task_type in ("translation", "peer_review")
    assert len(cfg.agent_perspectives) == 5


def test_seed_style_json_without_kind_loads_from_a_file(tmp_path):
    seed = {  # the seed README's structure, as is
        "task_type": "translation",
        "task_description": "German to English translation task",
        "model_config": {"model_name": "meta-llama/Llama-3.3-70B-Instruct-Turbo", "max_tokens": 500,
                         "temperature": 0.7},
        "agent_perspectives": [{"condition": "Original", "reading": None,
                                "strategy": "Translate the following German sentence to English..."}],
        "data_config": {"input_data_path": str(write_inputs(tmp_path / "wmt.json")), "sample_size": 500},
        "add_references": False,
        "api_provider": "together",
    }
    path = tmp_path / "translation.json"
    path.write_text(json.dumps(seed), encoding="utf-8")
    cfg = P.load_perspectives_config(path)
    assert cfg.kind == "perspectives" and cfg.api_provider == "together"
    assert cfg.models.generator.max_tokens == 500 and cfg.data_config.sample_size == 500


def test_yaml_and_json_spellings_of_one_config_are_equal(tmp_path):
    import yaml

    data = base_config(tmp_path)
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(data), encoding="utf-8")
    (tmp_path / "c.json").write_text(json.dumps(data), encoding="utf-8")
    a, b = P.load_perspectives_config(tmp_path / "c.yaml"), P.load_perspectives_config(tmp_path / "c.json")
    assert a == b


@pytest.mark.parametrize("change, needle", [
    (lambda d: d.update(agent_perspectives=[]), "agent_perspectives"),
    (lambda d: d["agent_perspectives"][0].update(strategy=""), "strategy"),
    (lambda d: d["agent_perspectives"][0].update(stratgy="x"), "stratgy"),
    (lambda d: d["model_config"].update(max_tokens="many"), "max_tokens"),
    (lambda d: d.update(task_type="summa rization"), "task_type"),
    (lambda d: d["data_config"].update(sample_size=0), "sample_size"),
    (lambda d: d.update(output_format={"json_schema": {"type": "object", "properties": {"a": {}}}, "field": "b"}),
     "field 'b'"),
    (lambda d: d.update(api_provider="anthropic"), "api_provider"),
])
def test_invalid_configs_are_one_error_naming_the_key(tmp_path, change, needle):
    data = base_config(tmp_path)
    change(data)
    with pytest.raises(ConfigError, match=needle):
        P.load_perspectives_config(data)


def test_blank_reading_is_treated_as_no_reading(tmp_path):
    data = base_config(tmp_path)
    data["agent_perspectives"][0]["reading"] = "   "
    assert P.load_perspectives_config(data).agent_perspectives[0].reading is None


# --- provider detection --------------------------------------------------------------------------
def test_provider_detection(tmp_path, monkeypatch):
    gguf = tmp_path / "tiny.gguf"
    gguf.write_bytes(b"GGUF")
    empty = str(tmp_path / "no-models")
    assert detect_provider(PerspModelConfig(model_name=str(gguf)), models_dir=empty)[0] == "local"
    # issue 22: a name that is not installed is never routed to a hosted API on a guess
    with pytest.raises(ConfigError, match="api_provider: openai"):
        detect_provider(PerspModelConfig(model_name="gpt-4o-mini"), models_dir=empty)
    with pytest.raises(ConfigError, match="api_provider: together"):
        detect_provider(PerspModelConfig(model_name="meta-llama/Llama-3.3-70B-Instruct-Turbo"), models_dir=empty)
    assert detect_provider(PerspModelConfig(model_name="gpt-4o-mini"), "openai", empty)[0] == "openai"
    served = PerspModelConfig(model_name="smollm2-135m", base_url="http://127.0.0.1:8080/v1")
    assert detect_provider(served, models_dir=empty)[0] == "openai_compatible"
    assert detect_provider(PerspModelConfig(model_name="gpt-4o"), "local", empty)[0] == "local"  # explicit wins
    with pytest.raises(ConfigError, match="not a local model"):
        detect_provider(PerspModelConfig(model_name="smollm2-135m"), models_dir=empty)  # nothing installed there


def test_installed_registry_name_is_local():
    models = ROOT / "cache" / "models"
    if not (models / "smollm2-135m.gguf").exists():
        pytest.fail("cache/models/smollm2-135m.gguf missing: run bash setup.sh first")
    assert detect_provider(PerspModelConfig(model_name="smollm2-135m"), models_dir=str(models))[0] == "local"


def test_choose_builds_the_model_config_for_each_provider(tmp_path, monkeypatch):
    empty = str(tmp_path)
    monkeypatch.delenv("TOGETHER_API_KEY", raising=False)
    with pytest.raises(ConfigError, match="TOGETHER_API_KEY"):
        choose(PerspModelConfig(model_name="meta-llama/Llama-3.3-70B-Instruct-Turbo"), "together", models_dir=empty)
    monkeypatch.setenv("TOGETHER_API_KEY", "k")
    c = choose(PerspModelConfig(model_name="meta-llama/Llama-3.3-70B-Instruct-Turbo"), "together", models_dir=empty)
    assert (c.provider, c.model.backend, c.model.base_url, c.model.api_key_env) == \
        ("together", "openai", "https://api.together.xyz/v1", "TOGETHER_API_KEY")
    c = choose(PerspModelConfig(model_name="qwen", base_url="http://127.0.0.1:8080/v1", max_concurrency=3),
               models_dir=empty)
    assert c.provider == "openai_compatible" and c.model.base_url == "http://127.0.0.1:8080/v1"
    assert c.model.max_concurrency == 3
    with pytest.raises(ConfigError, match="base_url"):
        choose(PerspModelConfig(model_name="x"), "openai_compatible", empty)


# --- input files ---------------------------------------------------------------------------------
def test_missing_input_file_is_one_error_naming_file_and_format(tmp_path):
    data = base_config(tmp_path, task_type="translation")
    data["data_config"]["input_data_path"] = str(tmp_path / "wmt14_de_en_500.json")
    with pytest.raises(ConfigError) as e:
        P.load_perspectives_config(data)
    msg = str(e.value)
    assert "wmt14_de_en_500.json" in msg and "not found" in msg
    assert '"input": "<source sentence>"' in msg and '"reference"' in msg


def test_cli_missing_input_exits_2_before_writing_anything(tmp_path, capsys):
    data = json.loads((SHIPPED / "peer_review.json").read_text(encoding="utf-8"))
    data["data_config"]["input_data_path"] = str(tmp_path / "papers.json")
    data["results_dir"] = str(tmp_path / "results")
    cfg = tmp_path / "peer_review.json"
    cfg.write_text(json.dumps(data), encoding="utf-8")
    assert P.main([str(cfg), "--test"]) == 2
    err = capsys.readouterr().err
    assert "papers.json" in err and "not found" in err and "paper title, abstract" in err
    from ads.cli import main as cli_main

    assert cli_main(["generate", str(cfg)]) == 2
    assert "papers.json" in capsys.readouterr().err
    assert not (tmp_path / "results").exists()


@pytest.mark.parametrize("content, needle", [
    ("{not json", "not valid JSON"),
    ('{"a": 1}', "top level must be a JSON list"),
    ("[]", "empty"),
    ('[{"text": "x"}]', "field 'input' is missing"),
    ('[{"input": ""}]', "non-empty string"),
    ('[{"input": "x", "reference": 3}]', "'reference' must be a string or null"),
])
def test_malformed_input_files_name_the_item_and_field(tmp_path, content, needle):
    path = tmp_path / "bad.json"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(ConfigError, match=needle):
        read_input_file(path, "summarization")


# --- the run -------------------------------------------------------------------------------------
def test_reading_step_runs_before_strategy_and_output_has_the_seed_format(tmp_path):
    fake = FakeModel(responder)
    summary = P.run_pipeline(base_config(tmp_path), model=fake, progress=False)
    ds = load_dataset(summary)
    assert {"task_type", "task_description", "agent_perspectives", "tasks", "metadata"} <= set(ds)
    assert [a["condition"] for a in ds["agent_perspectives"]] == ["Reference", "Original", "Careful Reader"]
    assert len(ds["tasks"]) == 3
    for t in ds["tasks"]:
        assert t["context"] and len(t["responses"]) == len(t["preparations"]) == 3
        assert t["responses"][0] == t["reference"]  # add_references: the reference is agent 0
        assert t["preparations"][0] is None and t["preparations"][1] is None
        assert t["preparations"][2].startswith("- fact A")
    md = ds["metadata"]
    for key in ("model_config", "api_provider", "data_config", "generation_time", "token_usage", "api_calls",
                "estimated_tokens"):
        assert key in md
    assert md["model_config"]["model_name"] == "smollm2-135m"
    assert md["api_calls"]["total_calls"] == len(fake.calls) == 3 * 2 + 3  # one reading call per Careful unit
    assert md["token_usage"]["total_tokens"] == md["token_usage"]["prompt_tokens"] + md["token_usage"]["completion_tokens"] > 0

    # order: each Careful Reader unit's reading call comes before its strategy call, whose prompt holds the notes
    by_sid = {str(c["sample_id"]): (i, c) for i, c in enumerate(fake.calls)}
    for t in ds["tasks"]:
        i_read, _ = by_sid[f"{t['id']}-p01:reading"]
        i_strat, strat = by_sid[f"{t['id']}-p01"]
        assert i_read < i_strat
        notes = t["preparations"][2]
        assert notes == f"- fact A\n- fact B ({t['id']}-p01:reading)"
        prompt = strat["messages"][-1]["content"]
        assert notes in prompt and t["context"] in prompt


def test_token_estimate_is_made_before_generation_and_checked_after(tmp_path):
    summary = P.run_pipeline(base_config(tmp_path), model=FakeModel(responder), progress=False)
    ds = load_dataset(summary)
    est, chk = ds["metadata"]["estimated_tokens"], ds["metadata"]["estimate_check"]
    assert est["calls"] == 9 and est["max_completion_tokens"] == 9 * 40
    assert est["method"].startswith("approx")  # a FakeModel has no tokenizer
    run_dir = Path(summary["run_dir"])
    assert json.loads((run_dir / "estimate.json").read_text()) == est
    assert chk["complete"] and chk["actual_first_pass_prompt_tokens"] > 0
    assert chk["by_perspective"]["Careful Reader"]["estimate_is"].startswith("upper bound")


def test_test_mode_takes_ten_samples_and_first_four_perspectives(tmp_path):
    data = base_config(tmp_path)
    data["data_config"] = {"input_data_path": str(write_inputs(tmp_path / "many.json", 25)), "sample_size": 20}
    data["agent_perspectives"] = [{"condition": f"P{i}", "reading": None, "strategy": f"Summarize, style {i}."}
                                  for i in range(6)]
    summary = P.run_pipeline(data, test=True, model=FakeModel(responder), progress=False)
    ds = load_dataset(summary)
    assert len(ds["tasks"]) == 10
    assert [a["condition"] for a in ds["agent_perspectives"]] == ["Reference", "P0", "P1", "P2", "P3"]
    assert ds["metadata"]["test_mode"] is True
    # the module CLI's --test flag and --set test=true mean the same
    assert P.load_perspectives_config(data, ["test=true"]).test is True


def test_model_errors_are_retried_with_exponential_backoff(tmp_path):
    fails = {"left": 2}

    def flaky(messages, kw):
        if fails["left"] > 0:
            fails["left"] -= 1
            raise ModelError("503 server busy")
        return responder(messages, kw)

    sleeps: list[float] = []
    data = base_config(tmp_path)
    data["model_config"]["max_concurrency"] = 1
    cfg = P.load_perspectives_config(data)
    ctx = RunContext.create(cfg)
    summary = P.run(cfg, ctx, model=FakeModel(flaky), sleep=sleeps.append, progress=False)
    assert len(sleeps) == 2
    retry = cfg.retry
    assert retry.base_delay_s / 2 <= sleeps[0] <= retry.base_delay_s  # attempt 0: cap = base
    assert retry.base_delay_s <= sleeps[1] <= 2 * retry.base_delay_s  # attempt 1: cap = 2 * base
    assert summary["failed_units"] == [] and summary["quality"]["totals"]["ok"] == 6
    assert summary["api_calls"]["failed_calls"] == 2


def test_backoff_doubles_up_to_the_cap():
    r = RetryConfig(max_attempts=6, base_delay_s=1.0, max_delay_s=5.0)
    rng = random.Random(0)
    caps = [min(5.0, 2 ** a) for a in range(6)]
    for a, cap in enumerate(caps):
        d = backoff_delay(a, r, rng)
        assert cap / 2 <= d <= cap


def test_units_whose_calls_keep_failing_are_left_for_resume(tmp_path):
    def broken_for_second_task(messages, kw):
        if str(kw["sample_id"]).startswith("t00001"):
            raise ModelError("connection reset")
        return responder(messages, kw)

    data = base_config(tmp_path)
    summary = P.run_pipeline(data, model=FakeModel(broken_for_second_task), progress=False)
    failed = {f["id"] for f in summary["failed_units"]}
    assert failed == {"t00001-p00", "t00001-p01"}
    ds = load_dataset(summary)
    t1 = next(t for t in ds["tasks"] if t["id"] == "t00001")
    assert t1["statuses"][1:] == ["missing", "missing"] and t1["responses"][1:] == [None, None]

    healthy = FakeModel(responder)
    summary = P.run_pipeline(data, model=healthy, resume=True, progress=False)
    assert summary["failed_units"] == []
    assert {str(c["sample_id"]).split(":")[0] for c in healthy.calls} == {"t00001-p00", "t00001-p01"}
    assert summary["quality"]["totals"]["ok"] == 6


class Killed(BaseException):
    """Stands in for SIGKILL: not an Exception, so nothing in the pipeline catches it."""


def test_interrupted_run_resumes_without_losing_or_repeating_units(tmp_path):
    data = base_config(tmp_path)
    data["model_config"]["max_concurrency"] = 1
    calls = {"n": 0}

    def dies_on_fifth_call(messages, kw):
        calls["n"] += 1
        if calls["n"] == 5:
            raise Killed()
        return responder(messages, kw)

    with pytest.raises(Killed):
        P.run_pipeline(data, model=FakeModel(dies_on_fifth_call), progress=False)
    cfg = P.load_perspectives_config(data)
    run_dir = Path(cfg.results_dir) / run_id_for(cfg)
    lines = (run_dir / "responses.jsonl").read_text().splitlines()
    before = {json.loads(x)["id"]: json.loads(x) for x in lines}
    assert 0 < len(before) < 6 and not (run_dir / "dataset.json").exists()
    # a torn last line, as a SIGKILL in the middle of a write would leave
    with open(run_dir / "responses.jsonl", "a", encoding="utf-8") as f:
        f.write('{"id": "t00002-p01", "task_id": "t0')

    with pytest.raises(Exception, match="pass --resume"):
        P.run_pipeline(data, model=FakeModel(responder), progress=False)
    second = FakeModel(responder)
    summary = P.run_pipeline(data, model=second, resume=True, progress=False)
    recs = [json.loads(x) for x in (run_dir / "responses.jsonl").read_text().splitlines()]
    ids = [r["id"] for r in recs]
    assert len(ids) == len(set(ids)) == 6
    assert {r["id"]: r for r in recs if r["id"] in before} == before  # earlier records untouched
    redone = {str(c["sample_id"]).split(":")[0] for c in second.calls}
    assert redone.isdisjoint(before) and redone | set(before) == set(ids)
    ds = load_dataset(summary)
    assert all(s == "ok" for t in ds["tasks"] for s in t["statuses"][1:])


def test_resume_refuses_records_made_from_a_changed_input_file(tmp_path):
    data = base_config(tmp_path)
    P.run_pipeline(data, model=FakeModel(responder), progress=False)
    path = Path(data["data_config"]["input_data_path"])
    items = json.loads(path.read_text())
    items = [{**it, "input": it["input"] + " Changed."} for it in items]
    path.write_text(json.dumps(items))
    with pytest.raises(ConfigError, match="different input"):
        P.run_pipeline(data, model=FakeModel(responder), resume=True, progress=False)


def test_concurrency_is_bounded_by_max_concurrency(tmp_path):
    live, peak, lock = {"n": 0}, {"n": 0}, threading.Lock()

    def slow(messages, kw):
        with lock:
            live["n"] += 1
            peak["n"] = max(peak["n"], live["n"])
        time.sleep(0.02)
        with lock:
            live["n"] -= 1
        return responder(messages, kw)

    class Overlapping:  # FakeModel serialises its script; this model lets calls overlap
        model_id = "overlapping"

        def generate(self, messages, **kw):
            text = slow(messages, kw)
            return Completion(text=text, prompt_tokens=10, completion_tokens=len(text.split()),
                              model_id=self.model_id, latency_s=0.02)

    data = base_config(tmp_path)
    data["data_config"] = {"input_data_path": str(write_inputs(tmp_path / "ten.json", 10)), "sample_size": 10}
    data["model_config"]["max_concurrency"] = 3
    summary = P.run_pipeline(data, model=Overlapping(), progress=False)
    assert summary["quality"]["totals"]["ok"] == 20
    assert 2 <= peak["n"] <= 3


def test_bad_responses_are_retried_then_rejected_never_crash(tmp_path):
    def bad(messages, kw):
        if "reading" in str(kw["sample_id"]):
            return "notes"
        return "" if ":retry" in str(kw["sample_id"]) else "ok ok"  # 2 words then empty

    data = base_config(tmp_path)
    data["quality"] = {"max_attempts": 2, "validators": [{"type": "length", "min_words": 3}]}
    summary = P.run_pipeline(data, model=FakeModel(bad), progress=False)
    totals = summary["quality"]["totals"]
    assert totals["ok"] == 0 and totals["rejected"] == 6 and totals["retried"] == 6
    ds = load_dataset(summary)
    assert all(s == "rejected" for t in ds["tasks"] for s in t["statuses"][1:])


def test_truncated_text_is_trimmed_to_its_last_sentence():
    assert trim_to_sentence("First one. Second one! Third is cut") == "First one. Second one!"
    assert trim_to_sentence("no sentence ended here") is None
    assert trim_to_sentence('He said "stop." Then') == 'He said "stop."'


def test_copy_of_input_is_flagged(tmp_path):
    def copier(messages, kw):
        text = messages[-1]["content"]
        return text.split("INPUT:\n", 1)[1] if "INPUT:\n" in text else "Some notes on it here."

    data = base_config(tmp_path)
    data["agent_perspectives"] = data["agent_perspectives"][:1]
    summary = P.run_pipeline(data, model=FakeModel(copier), progress=False)
    ds = load_dataset(summary)
    assert [t["flags"][1] for t in ds["tasks"]] == ["copy_of_input"] * 3
    assert summary["quality"]["by_perspective"]["Original"]["copy_of_input"] == 3


def test_object_api_and_asyncio_entry_point(tmp_path):
    import asyncio

    pipe = P.PerspectivesPipeline(base_config(tmp_path), model=FakeModel(responder), progress=False)
    path = asyncio.run(pipe.generate_dataset())
    assert path.name == "dataset.json" and json.loads(path.read_text())["tasks"]


def test_output_dir_gets_the_seed_file_name(tmp_path):
    data = base_config(tmp_path, output_dir=str(tmp_path / "agents"))
    summary = P.run_pipeline(data, model=FakeModel(responder), progress=False)
    copy = Path(summary["copy"])
    assert copy.parent == tmp_path / "agents" and copy.name.startswith("summarization_smollm2-135m_")
    assert json.loads(copy.read_text())["tasks"] == load_dataset(summary)["tasks"]


# --- HTTP backends: real concurrency, one retry layer (the client's) ------------------------------
def http_config(tmp_path: Path, url: str, **model) -> dict:
    data = base_config(tmp_path)
    data["model_config"] = {"model_name": "served", "base_url": url, "api_key_env": "PERSP_TEST_KEY",
                            "max_tokens": 40, "temperature": 0.7, "timeout_s": 10, **model}
    return data


def test_http_units_are_in_flight_concurrently_up_to_max_concurrency(tmp_path, monkeypatch):
    sys.path.insert(0, str(ROOT / "tests"))
    from fake_http import FakeServer, Reply, ok

    monkeypatch.setenv("PERSP_TEST_KEY", "k")
    server = FakeServer()
    server.responder = lambda req: Reply(body=ok(f"A summary sentence for request {len(server.requests)}.").body,
                                         delay_s=0.3)
    try:
        cfg = P.load_perspectives_config(http_config(tmp_path, server.base_url, max_concurrency=3))
        summary = P.run(cfg, RunContext.create(cfg), progress=False)
    finally:
        server.stop()
    assert summary["failed_units"] == [] and summary["quality"]["totals"]["ok"] == 6
    assert server.max_in_flight == 3  # bounded by the endpoint's max_concurrency, and reached


def test_a_failing_http_call_is_retried_by_the_client_only(tmp_path, monkeypatch):
    """The first 3 requests fail with a retryable 503, later ones succeed. The client makes 1 +
    max_retries = 3 attempts for the first unit, which then fails (left for --resume); perspectives
    adds no retries on top (it used to: its own retry would have sent a 4th request for that unit
    and it would have passed). The second unit takes one request: 4 requests in all."""
    sys.path.insert(0, str(ROOT / "tests"))
    from fake_http import FakeServer, Reply, ok

    monkeypatch.setenv("PERSP_TEST_KEY", "k")
    server = FakeServer(default=ok("This short summary of the article covers its main point clearly and briefly."))
    server.script = [Reply(status=503, body={"error": "busy"}, headers={"Retry-After": "0"}) for _ in range(3)]
    data = http_config(tmp_path, server.base_url, max_retries=2, max_concurrency=1)
    data["agent_perspectives"] = data["agent_perspectives"][:1]
    data["add_references"] = False
    data["data_config"]["sample_size"] = 2
    try:
        cfg = P.load_perspectives_config(data)
        assert cfg.retry.max_attempts == 3  # the harness's retry config stays, for local backends only
        summary = P.run(cfg, RunContext.create(cfg), progress=False)
    finally:
        server.stop()
    assert server.count == 4
    assert len(summary["failed_units"]) == 1 and "after the client's own retries" in \
        summary["failed_units"][0]["error"]
    assert summary["quality"]["totals"]["ok"] == 1


def test_the_registry_can_name_the_generator_class(tmp_path, monkeypatch):
    """The one runner drives PerspectivesGenerator with the components a caller passes (a FakeModel
    here), as `main.py run` does once the registry names the class instead of module:Config:run."""
    from ads.harness import kinds

    monkeypatch.setattr(kinds, "GENERATORS", dict(kinds.GENERATORS))  # the registration ends with the test
    kinds.register("perspectives", "ads.generators.perspectives:PerspectivesGenerator")
    cfg_cls, run = kinds.resolve("perspectives")
    assert cfg_cls is P.PerspectivesConfig
    cfg = P.load_perspectives_config(base_config(tmp_path))
    summary = run(cfg, RunContext.create(cfg), model=FakeModel(responder))
    assert summary["quality"]["totals"]["ok"] == 6 and load_dataset(summary)["tasks"]


def test_module_cli_takes_the_shared_run_flags(tmp_path, capsys):
    path = tmp_path / "c.json"
    path.write_text(json.dumps(base_config(tmp_path)), encoding="utf-8")
    with pytest.raises(SystemExit) as e:
        P.main([str(path), "--resume", "--overwrite"])
    assert e.value.code == 2 and "not allowed with argument" in capsys.readouterr().err
