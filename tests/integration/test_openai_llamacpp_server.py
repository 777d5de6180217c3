"""OpenAICompatModel against a real llama.cpp server (llama-cpp-python's) serving SmolLM2 on loopback.

The server is started once for the module with an API key, so the tests exercise the real
Authorization path, the real response_format dialect of llama-cpp-python (which refuses the
OpenAI json_schema form; the client has to fall back to json_object+schema), and real usage.
"""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
import pytest

from models.openai_compat import EndpointRejectedError, OpenAICompatModel

ROOT = Path(__file__).resolve().parents[2]
GGUF = ROOT / "cache" / "models" / "smollm2-135m.gguf"
KEY = "sk-local-test-4b1d9e7c2a"
KEY_ENV = "ADS_TEST_LLAMA_SERVER_KEY"
READY_TIMEOUT_S = 45.0

QUESTION = [{"role": "user", "content": "What is the capital of France? Answer in one word."}]
SCHEMA = {"title": "CityAnswer", "type": "object",
          "properties": {"city": {"type": "string", "maxLength": 40},
                         "confidence": {"type": "integer", "minimum": 0, "maximum": 10}},
          "required": ["city", "confidence"], "additionalProperties": False}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server_url():
    assert GGUF.is_file(), f"{GGUF} missing: run bash setup.sh"
    port = free_port()
    log = tempfile.TemporaryFile()
    cmd = [sys.executable, "-m", "llama_cpp.server", "--model", str(GGUF), "--host", "127.0.0.1",
           "--port", str(port), "--n_ctx", "2048", "--verbose", "false", "--api_key", KEY]
    # output goes to a file: an unread pipe fills up and stalls the server
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT)
    try:
        url = f"http://127.0.0.1:{port}/v1"
        deadline = time.monotonic() + READY_TIMEOUT_S
        while True:
            if proc.poll() is not None:
                log.seek(0)
                pytest.fail(f"llama_cpp.server exited with {proc.returncode}:\n{log.read().decode()[-3000:]}")
            try:
                r = httpx.get(f"{url}/models", headers={"Authorization": f"Bearer {KEY}"}, timeout=2.0)
                if r.status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"llama_cpp.server not ready after {READY_TIMEOUT_S}s")
            time.sleep(0.2)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
        log.close()


@pytest.fixture
def model(server_url, monkeypatch):
    monkeypatch.setenv(KEY_ENV, KEY)
    m = OpenAICompatModel(server_url, "smollm2-135m", api_key_env=KEY_ENV, timeout_s=30.0, max_retries=1,
                          backoff_base_s=0.05)
    yield m
    m.close()


def test_chat_reply_with_real_usage(model):
    out = model.generate(QUESTION, max_tokens=16, temperature=0.0, seed=3)
    assert "paris" in out.text.lower()
    assert out.meta["usage_estimated"] is False and out.meta["attempts"] == 1
    assert out.prompt_tokens > 5 and 0 < out.completion_tokens <= 16
    assert out.finish_reason in {"stop", "length"} and out.latency_s > 0


def test_schema_constrained_reply_parses_and_auto_picks_the_llama_cpp_form(model):
    msgs = [{"role": "user", "content": "What is the capital of France? Reply in JSON with city and confidence."}]
    out = model.generate(msgs, max_tokens=64, temperature=0.0, json_schema=SCHEMA)
    obj = json.loads(out.text)
    assert set(obj) == {"city", "confidence"}
    assert isinstance(obj["city"], str) and len(obj["city"]) <= 40
    # types and keys are grammar-enforced; numeric bounds are not (llama-cpp-python's converter ignores
    # minimum/maximum on integers), so callers must still range-check
    assert isinstance(obj["confidence"], int) and not isinstance(obj["confidence"], bool)
    # llama-cpp-python refuses {"type": "json_schema"}; the client fell back and remembers it
    assert out.meta["schema_format"] == "json_object"
    again = model.generate(msgs, max_tokens=64, temperature=0.0, json_schema=SCHEMA)
    assert again.meta["attempts"] == 1 and json.loads(again.text).keys() == obj.keys()


def test_explicit_json_object_form_and_greedy_determinism(server_url, monkeypatch):
    monkeypatch.setenv(KEY_ENV, KEY)
    m = OpenAICompatModel(server_url, "smollm2-135m", api_key_env=KEY_ENV, schema_format="json_object")
    msgs = [{"role": "user", "content": "Name a large city in Japan as JSON."}]
    a = m.generate(msgs, max_tokens=64, temperature=0.0, json_schema=SCHEMA)
    b = m.generate(msgs, max_tokens=64, temperature=0.0, json_schema=SCHEMA)
    assert a.text == b.text and set(json.loads(a.text)) == {"city", "confidence"}
    m.close()


def test_concurrent_callers_all_get_answers(model):
    outs: list = []
    lock = threading.Lock()

    def ask(i: int) -> None:
        r = model.generate([{"role": "user", "content": f"Count to {i + 2}."}], max_tokens=8, sample_id=i)
        with lock:
            outs.append(r)

    threads = [threading.Thread(target=ask, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert len(outs) == 4 and all(o.completion_tokens > 0 for o in outs)


def test_wrong_key_is_a_clear_unretried_error_that_does_not_leak(server_url, monkeypatch):
    wrong = "sk-wrong-key-0d2f6a8c"
    monkeypatch.setenv(KEY_ENV, wrong)
    m = OpenAICompatModel(server_url, "smollm2-135m", api_key_env=KEY_ENV, max_retries=3)
    with pytest.raises(EndpointRejectedError) as ei:  # fatal: the run stops instead of counting rejections
        m.generate(QUESTION, max_tokens=4)
    msg = str(ei.value)
    assert "401" in msg and "not retried" in msg and server_url in msg and KEY_ENV in msg
    assert wrong not in msg and wrong not in repr(m) and KEY not in msg
    m.close()
