"""Every user-supplied input file gives one clear error or a result, never a traceback (issue 22).

Byte-mutated copies of a valid file per reader (user tasks, corpus, seeds, fine-tune data,
classifier input, tool files; YAML configs in test_fuzz_configs.py): flipped and inserted bytes
(non-UTF-8 included), cuts, duplicated ranges, control characters and JSON nested thousands
deep. Each reader may only return or raise its documented error, whose text names the file.
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

FUZZ = settings(max_examples=1000, deadline=None, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])

# --- byte-mutated input files --------------------------------------------------------------------
@st.composite
def mutated(draw, seed: bytes) -> bytes:
    data = bytearray(seed)
    for _ in range(draw(st.sampled_from([1, 1, 2, 3, 6]))):
        op = draw(st.integers(0, 6))
        i = draw(st.integers(0, len(data)))
        if op == 0 and data:  # flip a byte
            i = min(i, len(data) - 1)
            data[i] = draw(st.integers(0, 255))
        elif op == 1:  # insert bytes, often not UTF-8
            data[i:i] = draw(st.binary(min_size=1, max_size=4))
        elif op == 2:  # cut the file
            del data[i:]
        elif op == 3:  # delete a range
            del data[i:i + draw(st.integers(1, 20))]
        elif op == 4:  # duplicate a range
            data[i:i] = data[i:i + draw(st.integers(1, 40))]
        elif op == 5:  # nest deep
            data[i:i] = draw(st.sampled_from([b"[", b"{\"a\":", b"- ", b"[", b"{", b"[{\"x\": "])) * \
                draw(st.sampled_from([60, 150, 1500, 5000]))  # past the default recursion limit of 1000
        else:  # structural characters
            data[i:i] = draw(st.sampled_from([b"\n", b"\r\n", b"{", b"}", b"\"", b",", b":", b"\xe2\x80\xa8",
                                              b"\x00", b"null", b"[]", b"\xef\xbb\xbf"]))
    return bytes(data)


def _jsonl(*records) -> bytes:
    return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records).encode()


def _tasks(p):
    from ads.gold_tasks import load_user_tasks

    return load_user_tasks(p)


def _corpus(p):
    from apis.corpus import CorpusConfig, load_jsonl

    return load_jsonl(CorpusConfig(source="jsonl", path=str(p), topic_field="topic"))


def _seeds(p):
    from ads.generators.evolve.seeds import load_seed_file

    return load_seed_file(p)


def _finetune(p):
    from ads.downstream.data import DataConfig, load_examples

    return load_examples(DataConfig(path=str(p)))


def _classify(p):
    from ads.downstream.classifier import load_jsonl

    return load_jsonl(p)


def _tools(p):
    from ads.generators.tools.ingest import load_file

    return load_file(p)


def _errors():
    from ads.config import ConfigError
    from ads.downstream.classifier import SyntheticDataError
    from ads.generators.tools.ingest import ToolFileError

    return (ConfigError, SyntheticDataError, ToolFileError)


READERS = {
    "user_tasks": (_tasks, _jsonl({"id": "a", "instruction": "Name the capital of France.", "reference": "Paris"},
                                  {"instruction": "Añade 2 y 3 — ¿cuánto es?", "reference": "5"})),
    "corpus": (_corpus, _jsonl({"id": "d1", "title": "Paris", "text": "Paris is the capital of France.",
                                "topic": "geo"}, {"id": "d2", "title": "Lisboa", "text": "Lisboa é a capital."})),
    "seeds": (_seeds, _jsonl({"instruction": "Summarise", "user_input": "A long text.", "category": "summary",
                              "difficulty": "easy"}, {"instruction": "Translate", "user_input": "Hola",
                                                      "category": "translation"})),
    "finetune": (_finetune, _jsonl({"instruction": "2+2?", "response": "4"},
                                   {"instruction": "Capital of Peru?", "response": "Lima"})),
    "classify": (_classify, _jsonl({"text": "The match ended 2-1.", "topic": "sport"},
                                   {"text": "Stocks fell.", "topic": "finance"})),
    "tools": (_tools, json.dumps([{"type": "function", "function": {
        "name": "get_weather", "description": "Weather for a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}]
    ).encode()),
}


@pytest.mark.parametrize("reader", sorted(READERS))
def test_the_seed_file_of_each_reader_is_valid(tmp_path, reader):
    fn, seed = READERS[reader]
    p = tmp_path / ("in.json" if reader == "tools" else "in.jsonl")
    p.write_bytes(seed)
    assert fn(p)


@pytest.mark.parametrize("reader", sorted(READERS))
def test_the_seed_file_of_each_reader_is_valid(tmp_path, reader):
    fn, seed = READERS[reader]
    p = tmp_path / ("in.json" if reader == "tools" else "in.jsonl")
    p.write_bytes(seed)
    assert fn(p)


# ads/generators/tools/ingest.py (owned elsewhere) decodes with json.loads: a tool file nested
# ~1000+ deep escapes as RecursionError. The fix is one line (models.structured.loads_bounded);
# strict, so this fails as soon as that lands and the mark must go.
TOOLS_DEEP = pytest.mark.xfail(strict=True, raises=RecursionError,
                               reason="tools/ingest.load_file: json.loads raises RecursionError on deep nesting")


@pytest.mark.parametrize("reader", sorted(READERS))
def test_byte_mutated_input_files_are_a_result_or_one_error_naming_the_file(tmp_path_factory, reader):
    fn, seed = READERS[reader]
    errors = _errors()
    folder = tmp_path_factory.mktemp(reader)
    p = folder / ("in.json" if reader == "tools" else "in.jsonl")

    @FUZZ
    @given(content=mutated(seed))
    def check(content):
        p.write_bytes(content)
        try:
            fn(p)
        except errors as e:
            msg = str(e)
            assert str(p) in msg or p.name in msg, msg
            assert "\n" not in msg.strip(), msg

    check()
