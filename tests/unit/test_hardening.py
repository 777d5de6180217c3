"""Issue 22: the harness never touches a user's files, never reports success on a run that could
not call its model, and gives one clear line for every bad input. Each test here failed on the
code before the fix (checked against a checkout of the parent commit)."""
from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest

from ads.cli import main
from ads.store import JsonlStore, jsonl_lines
from models.base import Completion, ModelError
from models.caching import CachePathError, CachingModel, RequestCache

ROOT = Path(__file__).resolve().parents[2]
MSG = [{"role": "user", "content": "x"}]


@pytest.fixture
def base(tmp_path):
    """A small ADS config of its own (configs/default.yaml changes under other work)."""
    (tmp_path / "models").mkdir()
    cfg = tmp_path / "ads.yaml"
    cfg.write_text("kind: ads\nname: hardening\ntasks:\n  families: {gsm8k: 1}\n  test_families: {gsm8k: 1}\n"
                   "loop:\n  iterations: 1\n  trajectories_per_task: 1\n")
    return [str(cfg), "--set", f"results_dir={tmp_path / 'results'}", "--set", f"models_dir={tmp_path / 'models'}",
            "--set", f"cache.path={tmp_path / 'c.sqlite'}", "--set", "tracking.wandb=false"]


def _left_behind(tmp_path):
    res = tmp_path / "results"
    return sorted(p.name for p in res.iterdir()) if res.exists() else []


def _one_line(err: str) -> str:
    """The single `error:` line on stderr (progress bars and the clean-up note may be there too)."""
    lines = [ln.strip() for ln in err.replace("\r", "\n").splitlines() if ln.strip().startswith("error:")]
    assert len(lines) == 1, err
    assert "Traceback" not in err
    return lines[0]


# --- 1. cache.path: never rename what is not a damaged SQLite cache --------------------------------
def test_cache_path_that_is_a_folder_is_one_line_and_left_alone(tmp_path, base, capsys):
    folder = tmp_path / "mydata"
    folder.mkdir()
    (folder / "notes.txt").write_text("mine")
    assert main(["run", *base, "--set", f"cache.path={folder}"]) == 2
    line = _one_line(capsys.readouterr().err)
    assert str(folder) in line and "folder" in line
    assert (folder / "notes.txt").read_text() == "mine"
    assert not list(tmp_path.glob("mydata.corrupt-*"))
    assert _left_behind(tmp_path) == []


def test_cache_path_that_is_not_sqlite_is_refused_untouched(tmp_path):
    f = tmp_path / "thesis.txt"
    f.write_text("chapter one\n" * 100)
    with pytest.raises(CachePathError, match="not an SQLite database"):
        RequestCache(f)
    assert f.read_text() == "chapter one\n" * 100 and not list(tmp_path.glob("*.corrupt-*"))


def test_a_locked_cache_is_waited_for_not_moved_aside(tmp_path):
    path = tmp_path / "c.sqlite"
    c = RequestCache(path)
    c.put("k", Completion("kept", 1, 1, "m", 0.0))
    c.close()
    holder = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    holder.execute("PRAGMA journal_mode=DELETE")
    holder.execute("BEGIN EXCLUSIVE")  # what another process writing it looks like
    threading.Timer(1.0, holder.rollback).start()
    t0 = time.monotonic()
    reopened = RequestCache(path, lock_timeout_s=20)
    assert time.monotonic() - t0 >= 0.9  # it waited for the holder
    assert reopened.get("k").text == "kept" and not list(tmp_path.glob("*.corrupt-*"))
    reopened.close()
    holder.close()


def test_a_cache_locked_for_too_long_is_an_error_not_corruption(tmp_path):
    path = tmp_path / "c.sqlite"
    RequestCache(path).close()
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("PRAGMA journal_mode=DELETE")
    holder.execute("BEGIN EXCLUSIVE")
    try:
        with pytest.raises(CachePathError, match="locked"):
            RequestCache(path, lock_timeout_s=0.5)
    finally:
        holder.rollback()
        holder.close()
    assert path.exists() and not list(tmp_path.glob("*.corrupt-*"))


# --- 2. user files with a non-UTF-8 byte ---------------------------------------------------------
def test_non_utf8_user_task_file_is_one_line_naming_file_and_line(tmp_path, base, capsys):
    tasks = tmp_path / "tasks.jsonl"
    tasks.write_bytes(b'{"instruction": "fine"}\n{"instruction": "caf\xe9"}\n')
    unreachable = "http://127.0.0.1:9/v1"  # resolves without loading a model; never called
    assert main(["run", *base, "--set", "tasks.families={user: 1}", "--set", "tasks.test_families={user: 1}",
                 "--set", f"tasks.user_tasks_path={tasks}", "--set", f"policy.base_url={unreachable}",
                 "--set", f"optimizer.base_url={unreachable}"]) == 2
    line = _one_line(capsys.readouterr().err)
    assert f"{tasks}:2" in line and "UTF-8" in line
    assert _left_behind(tmp_path) == []


@pytest.mark.parametrize("content, what", [
    (b'{"a": 1}\n\xff\xfe\n', "UTF-8"),
    (b'{"a": ' + b"[" * 5000 + b"\n", "JSON"),
    (b'{"a": 1}\n{"b": ' + b"[" * 100 + b"]" * 100 + b"}\n", "JSON"),  # valid but deeper than 100 levels
])
def test_jsonl_input_reader_names_file_and_line(tmp_path, content, what):
    p = tmp_path / "in.jsonl"
    p.write_bytes(content)
    with pytest.raises(ValueError, match=rf"in.jsonl:\d+: .*{what}"):
        list(jsonl_lines(p))


def test_jsonl_lines_split_only_on_newline_not_unicode_line_separators(tmp_path):
    p = tmp_path / "in.jsonl"
    p.write_text(json.dumps({"t": "a\u2028b\x85c"}, ensure_ascii=False) + "\n", encoding="utf-8")
    assert [v for _, v in jsonl_lines(p)] == [{"t": "a\u2028b\x85c"}]


# --- 4. non-retryable model failures end the run ------------------------------------------------
class _Refusing(BaseHTTPRequestHandler):
    status = 401
    calls = 0

    def do_POST(self):  # noqa: N802
        type(self).calls += 1
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        body = json.dumps({"error": {"message": "Incorrect API key provided", "type": "invalid_request_error"}})
        self.send_response(self.status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body.encode())

    def log_message(self, *a):
        pass


@pytest.fixture
def refusing_server():
    _Refusing.calls = 0
    srv = ThreadingHTTPServer(("127.0.0.1", 0), _Refusing)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{srv.server_address[1]}/v1"
    srv.shutdown()
    srv.server_close()


def test_every_call_401_stops_the_run_with_one_line_and_no_verdict(tmp_path, base, capsys, refusing_server,
                                                                    monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-wrong-key-123456")
    code = main(["run", *base, "--set", f"policy.base_url={refusing_server}", "--set", "policy.name=gpt-x",
                 "--set", f"optimizer.base_url={refusing_server}", "--set", "optimizer.name=gpt-x",
                 ])
    out, err = capsys.readouterr()
    assert code != 0
    line = _one_line(err)
    assert "401" in line and "127.0.0.1" in line and "sk-wrong" not in line
    assert "TIES" not in out and "BEATS" not in out
    assert _Refusing.calls <= 2  # stopped at the first refusal instead of 18 counted "rejections"


def test_rejected_request_is_fatal_and_does_not_trip_the_breaker():
    from models.openai_compat import EndpointFailingError, EndpointRejectedError, OpenAICompatModel

    for status in (400, 401, 403, 404):
        m = OpenAICompatModel("http://127.0.0.1:9/v1", "m", max_retries=3, api_key_env=None,
                              transport=httpx.MockTransport(lambda r, s=status: httpx.Response(s, json={"e": 1})))
        with pytest.raises(EndpointRejectedError, match=f"HTTP {status}") as e:
            m.generate(MSG)
        assert isinstance(e.value, EndpointFailingError)  # every `except EndpointFailingError: raise` lets it out
        assert m.breaker.failures == 0 if hasattr(m.breaker, "failures") else True


def test_a_run_whose_every_model_call_failed_reports_no_result(tmp_path):
    from ads.config import RunConfig
    from ads.run import NoModelCallSucceeded, RunContext
    from models.fake import FakeModel

    cfg = RunConfig(name="t", results_dir=str(tmp_path / "r"), cache={"path": str(tmp_path / "c.sqlite")},
                    tracking={"wandb": False})
    ctx = RunContext.create(cfg)
    m = ctx.wrap(FakeModel(lambda *a, **k: (_ for _ in ()).throw(ModelError("boom"))), "policy")
    for _ in range(3):
        with pytest.raises(ModelError):
            m.generate(MSG)
    with pytest.raises(NoModelCallSucceeded, match="all 3 model calls failed"):
        ctx.finish({"score": 0.0})
    assert not (ctx.run_dir / "summary.json").exists()


# --- 5. a valid last record without a newline is data ------------------------------------------
def test_a_valid_last_record_without_newline_is_kept(tmp_path, capsys):
    p = tmp_path / "o.jsonl"
    p.write_bytes(b'{"id": "only"}')
    s = JsonlStore(p)
    assert not s.repaired and s.ids() == {"only"} and "torn" not in capsys.readouterr().out
    s.append({"id": "next"})
    assert [r["id"] for r in JsonlStore(p)] == ["only", "next"]


# --- 6. deep JSON from a model or a server is a rejection ----------------------------------------
def test_deep_json_in_model_output_is_a_rejection_not_recursion_error():
    from ads.active_search.api_trajectories import parse_trajectory
    from ads.quality.judge import DEFAULT_CRITERIA, parse_judgment
    from models.hf import first_json_object
    from models.structured import parse_json

    deep = '{"calls": ' + "[" * 5000
    assert parse_trajectory(deep, 2).parse_error
    assert parse_json(deep)[1] and parse_json("{" + '"a":' * 0 + '"x": ' + "[" * 200 + "]" * 200 + "}")[1]
    assert parse_judgment(deep, DEFAULT_CRITERIA)[3]
    assert first_json_object(deep) is None


def test_deep_http_body_is_a_malformed_answer_not_recursion_error():
    from models.openai_compat import OpenAICompatModel

    body = b'{"choices": ' + b"[" * 5000
    m = OpenAICompatModel("http://127.0.0.1:9/v1", "m", max_retries=0, api_key_env=None,
                          transport=httpx.MockTransport(lambda r: httpx.Response(200, content=body)))
    with pytest.raises(ModelError, match="not a chat completion"):
        m.generate(MSG)


# --- cache keys ---------------------------------------------------------------------------------
def test_two_different_models_with_one_name_never_share_a_cache_entry(tmp_path):
    from models.fake import FakeModel
    from models.openai_compat import OpenAICompatModel

    class FileModel(FakeModel):
        def __init__(self, path, text):
            super().__init__([text] * 3, model_id="smollm2-135m")
            self.path = Path(path)

    a, b = tmp_path / "a" / "m.gguf", tmp_path / "b" / "m.gguf"
    for p, blob in ((a, b"A" * 10), (b, b"B" * 11)):
        p.parent.mkdir()
        p.write_bytes(blob)
    cache = RequestCache(tmp_path / "c.sqlite")
    first = CachingModel(FileModel(a, "from file a"), cache)
    second = CachingModel(FileModel(b, "from file b"), cache)
    again = CachingModel(FileModel(a, "never used"), cache)
    assert first.generate(MSG).text == "from file a"
    assert second.generate(MSG).text == "from file b"  # same name, other file: a miss, not a replay
    assert again.generate(MSG).cached  # same file: stable key

    class Hf(FileModel):
        pass

    assert not CachingModel(Hf(a, "hf"), cache).generate(MSG).cached  # same file, other backend

    def server(text):
        return httpx.MockTransport(lambda r: httpx.Response(200, json={
            "choices": [{"message": {"content": text}, "finish_reason": "stop"}]}))

    h1 = CachingModel(OpenAICompatModel("http://127.0.0.1:1/v1", "gpt-x", api_key_env=None,
                                        transport=server("one")), cache)
    h2 = CachingModel(OpenAICompatModel("http://127.0.0.1:2/v1", "gpt-x", api_key_env=None,
                                        transport=server("two")), cache)
    assert h1.generate(MSG).text == "one" and h2.generate(MSG).text == "two"
    assert len({first.cache_identity, second.cache_identity, h1.cache_identity, h2.cache_identity}) == 4


# --- run-folder lock and marker -----------------------------------------------------------------
def _cfg(tmp_path, **kw):
    from ads.config import RunConfig

    return RunConfig(name="locked", results_dir=str(tmp_path / "r"), cache={"path": str(tmp_path / "c.sqlite")},
                     tracking={"wandb": False}, **kw)


_HOLD = """
import sys, time
sys.path.insert(0, {root!r})
from ads.config import RunConfig
from ads.run import RunContext
cfg = RunConfig.model_validate_json({cfg!r})
ctx = RunContext.create(cfg, resume=True)
print("holding", flush=True)
time.sleep(60)
"""


def _holder(tmp_path, cfg):
    proc = subprocess.Popen([sys.executable, "-c", _HOLD.format(root=str(ROOT), cfg=cfg.model_dump_json())],
                            stdout=subprocess.PIPE, text=True, cwd=ROOT)
    assert proc.stdout.readline().strip() == "holding"
    return proc


def test_a_second_process_on_a_live_run_folder_gets_one_line_and_a_killed_holder_is_stale(tmp_path):
    from ads.run import RunContext, RunLocked, run_id_for

    cfg = _cfg(tmp_path)
    run_dir = tmp_path / "r" / run_id_for(cfg)
    proc = _holder(tmp_path, cfg)
    try:
        (run_dir / "out.jsonl").write_text('{"id": 1}\n')
        for kw in ({"resume": True}, {"overwrite": True}, {}):
            with pytest.raises(RunLocked, match=f"pid {proc.pid}"):
                RunContext.create(cfg, **kw)
        assert (run_dir / "out.jsonl").read_text() == '{"id": 1}\n'  # --overwrite deleted nothing
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    ctx = RunContext.create(cfg, resume=True)  # the kernel dropped the dead holder's lock
    assert ctx.resume
    ctx.release()


def test_second_process_via_the_cli_exits_2_with_one_line(tmp_path):
    from ads.run import RunContext

    cfg_file = tmp_path / "c.yaml"
    cfg_file.write_text(f"kind: ads\nname: locked\nresults_dir: {tmp_path / 'r'}\ncache: {{path: {tmp_path / 'c.sqlite'}}}\n"
                        f"tracking: {{wandb: false}}\nmodels_dir: {tmp_path}\n")
    from ads.cli import _resolve_kind
    from ads.config import load_config

    cfg = load_config(_resolve_kind("ads")[0], cfg_file)
    ctx = RunContext.create(cfg)  # this process writes the run
    try:
        r = subprocess.run([sys.executable, "main.py", "run", str(cfg_file), "--resume"], cwd=ROOT,
                           capture_output=True, text=True, timeout=120)
    finally:
        ctx.release()
    assert r.returncode == 2
    assert f"pid {os.getpid()}" in _one_line(r.stderr)


def test_overwrite_and_cleanup_never_delete_a_folder_the_harness_did_not_create(tmp_path):
    from ads.run import RunContext, RunExists

    user = tmp_path / "results"
    user.mkdir()
    (user / "paper.tex").write_text("precious")
    cfg = _cfg(tmp_path)
    with pytest.raises(RunExists, match="not created by this harness"):
        RunContext.create(cfg, overwrite=True, run_dir=user)
    assert (user / "paper.tex").read_text() == "precious"
    empty = tmp_path / "empty_user_dir"
    empty.mkdir()
    ctx = RunContext.create(cfg, run_dir=empty)
    assert not ctx.abort() and empty.is_dir()  # it existed before this invocation: not removed


def test_evolve_overwrite_refuses_an_unmarked_output_dir(tmp_path, capsys):
    user = tmp_path / "results"
    user.mkdir()
    (user / "keep.txt").write_text("mine")
    code = main(["evolve", "--output-dir", str(user), "--overwrite", "--no-wandb",
                 "--cache-path", str(tmp_path / "c.sqlite")])
    assert code == 2 and "not created by this harness" in _one_line(capsys.readouterr().err)
    assert (user / "keep.txt").read_text() == "mine"


def test_overwrite_of_a_marked_run_keeps_working(tmp_path):
    from ads.run import RunContext

    cfg = _cfg(tmp_path)
    ctx = RunContext.create(cfg)
    (ctx.run_dir / "out.jsonl").write_text('{"id": 1}\n')
    ctx.release()
    again = RunContext.create(cfg, overwrite=True)
    assert not (again.run_dir / "out.jsonl").exists() and (again.run_dir / "config.yaml").exists()
    again.release()


# --- config values, classify input --------------------------------------------------------------
@pytest.mark.parametrize("override, key", [
    ("loop.lambda_cost=.nan", "loop.lambda_cost"),
    ("loop.lambda_cost=.inf", "loop.lambda_cost"),
    ("policy.requests_per_minute=-5", "policy.requests_per_minute"),
    ("policy.timeout_s=-.inf", "policy.timeout_s"),
])
def test_nan_inf_and_negative_rates_are_one_line_naming_the_key(tmp_path, base, capsys, override, key):
    assert main(["run", *base, "--set", override]) == 2
    assert key in _one_line(capsys.readouterr().err)
    assert _left_behind(tmp_path) == []


def test_run_ids_did_not_change_with_the_new_model_config_fields():
    """A model section hashes as it did before allow_insecure_http / an optional api_key_env, and
    before prefix_cache_mb / json_decoding (issue 21) at their defaults."""
    import hashlib

    from ads.config import ModelConfig, RunConfig, config_hash

    class WithModel(RunConfig):
        policy: ModelConfig = ModelConfig()

    data = WithModel().model_dump(mode="json")
    assert data["policy"]["api_key_env"] is None and data["policy"]["allow_insecure_http"] is False
    new_keys = ("allow_insecure_http", "prefix_cache_mb", "json_decoding")
    old_style = {**data, "policy": {**{k: v for k, v in data["policy"].items() if k not in new_keys},
                                    "api_key_env": "OPENAI_API_KEY"}}
    old_style.pop("executor")
    assert config_hash(WithModel()) == hashlib.sha256(json.dumps(old_style, sort_keys=True).encode()).hexdigest()


def test_classifier_input_keeps_records_with_unicode_line_separators(tmp_path):
    from ads.downstream.classifier import SyntheticDataError, load_jsonl

    p = tmp_path / "syn.jsonl"
    recs = [{"text": "one\u2028two", "topic": "a"}, {"text": "three\x85four", "topic": "b"}]
    p.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in recs), encoding="utf-8")
    assert load_jsonl(p) == recs
    p.write_bytes(b'{"text": "x\xff", "topic": "a"}\n')
    with pytest.raises(SyntheticDataError, match="syn.jsonl:1: not UTF-8"):
        load_jsonl(p)


# --- secrets ------------------------------------------------------------------------------------
def _seen_auth(url, monkeypatch, **kw):
    from models.openai_compat import OpenAICompatModel

    seen = []

    def handler(request):
        seen.append(request.headers.get("authorization"))
        return httpx.Response(200, json={"choices": [{"message": {"content": "ok"}, "finish_reason": "stop"}]})

    monkeypatch.setenv("MY_KEY", "sk-secret-abcdef")
    m = OpenAICompatModel(url, "m", api_key_env="MY_KEY", max_retries=0, transport=httpx.MockTransport(handler), **kw)
    return m, seen


def test_key_is_never_sent_over_plain_http_to_a_remote_host_unless_allowed(monkeypatch):
    from models.openai_compat import EndpointRejectedError

    m, seen = _seen_auth("http://gpu-box.example.org:8000/v1", monkeypatch)
    with pytest.raises(EndpointRejectedError, match="plain http"):
        m.generate(MSG)
    assert seen == []  # nothing left the machine
    for url, kw in (("http://127.0.0.1:8080/v1", {}), ("http://localhost:8080/v1", {}),
                    ("https://gpu-box.example.org/v1", {}), ("http://gpu-box.example.org:8000/v1",
                                                             {"allow_insecure_http": True})):
        m, seen = _seen_auth(url, monkeypatch, **kw)
        assert m.generate(MSG).text == "ok" and seen == ["Bearer sk-secret-abcdef"]


def test_openai_key_goes_only_to_openai_unless_a_config_names_a_variable(monkeypatch):
    from ads.config import ModelConfig
    from models.openai_compat import OpenAICompatModel

    assert OpenAICompatModel.from_config(ModelConfig(name="m", base_url="http://127.0.0.1:8080/v1")).api_key_env is None
    assert OpenAICompatModel.from_config(ModelConfig(name="m", base_url="https://api.openai.com/v1")).api_key_env \
        == "OPENAI_API_KEY"
    assert OpenAICompatModel.from_config(ModelConfig(name="m", base_url="http://127.0.0.1:8080/v1",
                                                     api_key_env="LOCAL_KEY")).api_key_env == "LOCAL_KEY"


def test_credentials_in_urls_and_argv_are_redacted_in_the_run_folder(tmp_path, monkeypatch):
    from ads.config import ModelConfig, RunConfig
    from ads.run import RunContext

    class WithModel(RunConfig):
        policy: ModelConfig = ModelConfig()

    url = "http://alice:hunter2@127.0.0.1:8080/v1?api_key=sk-in-url-999&x=1"
    monkeypatch.setattr(sys, "argv", ["main.py", "run", "--set", f"policy.base_url={url}", "--set", "a.token=tok-777"])
    cfg = WithModel(name="sec", results_dir=str(tmp_path / "r"), cache={"path": str(tmp_path / "c.sqlite")},
                    tracking={"wandb": False}, policy={"name": "m", "base_url": url})
    ctx = RunContext.create(cfg)
    text = "".join(p.read_text() for p in ctx.run_dir.iterdir() if p.is_file())
    for secret in ("hunter2", "sk-in-url-999", "tok-777"):
        assert secret not in text
    assert "127.0.0.1:8080" in text and "x=1" in text
    ctx.release()
