"""Pure helpers of the transformers backend (no model is loaded here)."""
from __future__ import annotations

import json

import pytest

from models.errors import ModelError, ModelLoadError, UserError
from models.base import derived_seed
from models.hf import (HFModel, adapter_fingerprint, first_json_object, split_model_path,
                       with_schema_prompt)

SCHEMA = {"type": "object", "properties": {"name": {"type": "string"}}, "required": ["name"]}


def test_first_json_object_is_the_exact_source_text():
    assert first_json_object('Sure! {"name": "Bob", "n": {"x": [1, 2]}} and {"b": 2}') == \
        '{"name": "Bob", "n": {"x": [1, 2]}}'
    assert first_json_object('{broken {"ok": true}') == '{"ok": true}'
    assert first_json_object("no json here") is None
    assert first_json_object('{"unterminated": ') is None


def test_schema_goes_into_the_system_prompt():
    msgs = [{"role": "user", "content": "hi"}]
    out = with_schema_prompt(msgs, SCHEMA)
    assert out[0]["role"] == "system" and json.dumps(SCHEMA, separators=(",", ":")) in out[0]["content"]
    assert out[1:] == msgs
    out = with_schema_prompt([{"role": "system", "content": "Be brief."}, *msgs], SCHEMA)
    assert len(out) == 2 and out[0]["content"].startswith("Be brief.") and "JSON schema" in out[0]["content"]


def test_seeds_are_reproducible_and_distinct_per_sample():
    assert derived_seed(0, 1) == derived_seed(0, 1)
    assert len({derived_seed(0, i) for i in range(100)}) == 100
    assert derived_seed(0, 1) != derived_seed(1, 1)
    # one function for every backend, with the streams each had: llama.cpp 31 bits, torch 63
    import hashlib

    digest = hashlib.sha256(b"7:s3").digest()
    assert derived_seed(7, "s3") == int.from_bytes(digest[:4], "little") & 0x7FFFFFFF
    assert derived_seed(7, "s3", bits=63) == int.from_bytes(digest[:8], "little") & 0x7FFF_FFFF_FFFF_FFFF


def test_paths_split_into_folder_and_gguf(tmp_path):
    assert split_model_path(tmp_path / "m.gguf") == (tmp_path, "m.gguf")
    assert split_model_path(tmp_path) == (tmp_path, None)


def test_adapter_fingerprint_changes_with_the_weights(tmp_path):
    a = tmp_path / "adapter"
    a.mkdir()
    (a / "adapter_config.json").write_text("{}")
    (a / "adapter_model.safetensors").write_bytes(b"1")
    fp1 = adapter_fingerprint(a)
    (a / "adapter_model.safetensors").write_bytes(b"2")
    assert fp1.startswith("adapter-") and adapter_fingerprint(a) != fp1


def test_missing_model_files_are_load_errors_the_user_must_fix(tmp_path):
    # a load error ends the run as a user error (exit 2), never as one more rejected item
    with pytest.raises(ModelLoadError, match="GGUF file not found") as e:
        HFModel(tmp_path / "missing.gguf")
    assert isinstance(e.value, UserError) and not isinstance(e.value, ModelError)
    with pytest.raises(ModelLoadError, match="not a Hugging Face model folder"):
        HFModel(tmp_path)
