"""The prefix-reuse probe runs once per model file, llama.cpp build and thread count on a machine:
its verdict is remembered on disk, so restarted processes (kill tests, Ray workers) skip it."""
from __future__ import annotations

import json

import pytest

pytest.importorskip("llama_cpp")

from models import llamacpp  # noqa: E402


class _Llm:
    def __init__(self, n_threads: int):
        self.n_threads = n_threads


@pytest.fixture()
def probe_calls(monkeypatch, tmp_path):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    monkeypatch.setattr(llamacpp, "_INVARIANT", {})
    calls: list[int] = []

    def fake_probe(llm):
        calls.append(llm.n_threads)
        return llm.n_threads == 2

    monkeypatch.setattr(llamacpp, "split_invariant", fake_probe)
    return calls


def test_the_verdict_is_probed_once_then_read_back_in_a_new_process(probe_calls, tmp_path, monkeypatch):
    gguf = tmp_path / "m.gguf"
    gguf.write_bytes(b"weights")
    assert llamacpp.probed_split_invariant(_Llm(2), gguf) is True
    assert llamacpp.probed_split_invariant(_Llm(2), gguf) is True
    assert probe_calls == [2]
    monkeypatch.setattr(llamacpp, "_INVARIANT", {})  # a fresh process: only the file remembers
    assert llamacpp.probed_split_invariant(_Llm(2), gguf) is True
    assert probe_calls == [2]
    stored = json.loads(llamacpp.probe_cache_path().read_text())
    assert list(stored.values()) == [True]


def test_another_thread_count_or_a_changed_file_is_probed_again(probe_calls, tmp_path):
    gguf = tmp_path / "m.gguf"
    gguf.write_bytes(b"weights")
    assert llamacpp.probed_split_invariant(_Llm(2), gguf) is True
    assert llamacpp.probed_split_invariant(_Llm(1), gguf) is False
    gguf.write_bytes(b"other weights, another size")
    assert llamacpp.probed_split_invariant(_Llm(2), gguf) is True
    assert probe_calls == [2, 1, 2]


def test_a_damaged_cache_file_means_probing_again_not_a_crash(probe_calls, tmp_path):
    gguf = tmp_path / "m.gguf"
    gguf.write_bytes(b"weights")
    llamacpp.probe_cache_path().parent.mkdir(parents=True)
    llamacpp.probe_cache_path().write_text("{not json")
    assert llamacpp.probed_split_invariant(_Llm(2), gguf) is True
    assert probe_calls == [2]
    assert json.loads(llamacpp.probe_cache_path().read_text())
