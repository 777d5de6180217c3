"""The transformers backend on the real SmolLM2 GGUF, loaded dequantized, with and without a LoRA adapter."""
from __future__ import annotations

import copy

import pytest

from models.base import Model, ModelError
from models.errors import ModelLoadError
from models.hf import HFModel

HELLO = [{"role": "user", "content": "What is the capital of France? Answer in one sentence."}]


@pytest.fixture(scope="module")
def hf(smollm_path):
    return HFModel(smollm_path, model_id="smollm2-135m-hf")


def test_chat_reply_with_real_token_counts(hf):
    assert isinstance(hf, Model)
    c = hf.generate(HELLO, max_tokens=24)
    assert c.text.strip() and "Paris" in c.text
    assert c.prompt_tokens == len(hf.encode_chat(HELLO)) > hf.count_tokens(HELLO[0]["content"])
    assert 0 < c.completion_tokens <= 24
    assert c.latency_s > 0 and c.model_id == "smollm2-135m-hf" and c.finish_reason == "stop"


def test_greedy_is_deterministic_and_sampling_is_seeded(hf):
    msgs = [{"role": "user", "content": "Invent a name for a new fruit and describe its taste."}]
    assert hf.generate(msgs, max_tokens=12).text == hf.generate(msgs, max_tokens=12).text
    a = hf.generate(msgs, max_tokens=16, temperature=1.0, seed=7, sample_id=0)
    b = hf.generate(msgs, max_tokens=16, temperature=1.0, seed=7, sample_id=0)
    c = hf.generate(msgs, max_tokens=16, temperature=1.0, seed=7, sample_id=1)
    assert a.text == b.text
    assert c.text != a.text
    assert a.finish_reason in ("stop", "length") and a.completion_tokens <= 16


def test_json_schema_is_a_prompt_not_a_constraint(hf):
    schema = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}
    c = hf.generate([{"role": "user", "content": "Which city is the capital of France?"}], max_tokens=40,
                    json_schema=schema)
    assert c.meta["constrained"] is False
    assert c.meta["json_extracted"] == c.text.lstrip().startswith("{")
    schema_prompt_tokens = len(hf.encode_chat([{"role": "user", "content": "Which city is the capital of France?"}]))
    assert c.prompt_tokens > schema_prompt_tokens  # the schema was added to the prompt


def test_context_overflow_is_a_model_error(hf):
    with pytest.raises(ModelError, match="exceeds the context window"):
        hf.generate(HELLO, max_tokens=hf.max_context + 1)


def test_lora_adapter_reloads_on_top_of_the_gguf(hf, smollm_path, tmp_path):
    import torch
    from peft import LoraConfig, get_peft_model

    torch.manual_seed(0)
    # random (non-zero) B matrices, so the adapter visibly changes the model
    lcfg = LoraConfig(r=4, lora_alpha=64, target_modules=["q_proj", "v_proj"], init_lora_weights=False,
                      task_type="CAUSAL_LM")
    peft_model = get_peft_model(copy.deepcopy(hf.model), lcfg)
    peft_model.save_pretrained(str(tmp_path / "lora"), save_embedding_layers=False)
    # a fresh copy of the dequantized base (loading the GGUF again is covered by test_finetune_real)
    tuned = HFModel(smollm_path, adapter=tmp_path / "lora", model_id="smollm2-135m-hf",
                    model=copy.deepcopy(hf.model), tokenizer=hf.tokenizer)
    assert tuned.model_id.startswith("smollm2-135m-hf+lora:lora-")
    ids = torch.tensor([hf.encode_chat(HELLO)])
    with torch.no_grad():
        base_logits = hf.model(input_ids=ids).logits[0, -1]
        tuned_logits = tuned.model(input_ids=ids).logits[0, -1]
        peft_logits = peft_model.eval()(input_ids=ids).logits[0, -1]
    assert (base_logits - tuned_logits).abs().max() > 1e-2
    assert torch.allclose(tuned_logits, peft_logits, atol=1e-3)  # merged reload == the adapter that was saved
    c = tuned.generate(HELLO, max_tokens=8)
    assert c.completion_tokens > 0
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelLoadError, match="no adapter_config.json"):
        HFModel(smollm_path, adapter=tmp_path / "empty", model=copy.deepcopy(hf.model), tokenizer=hf.tokenizer)


def test_a_gguf_is_converted_once_and_the_copy_answers_like_the_gguf(hf, smollm_path):
    """The dequantized copy beside the GGUF (written by the fixture's load) gives the GGUF's own
    logits and tokenizer; a replaced GGUF (another size or mtime) maps to another copy."""
    import torch

    from models.hf import converted_folder, load_causal_lm

    copy_dir = converted_folder(smollm_path, "float32")
    assert (copy_dir / "model.safetensors").is_file()
    fresh, tok = load_causal_lm(smollm_path, converted=False)  # the GGUF itself
    copy_, tok2 = load_causal_lm(smollm_path)
    ids = tok("The capital of France is", return_tensors="pt").input_ids
    assert tok2("The capital of France is", return_tensors="pt").input_ids.tolist() == ids.tolist()
    assert tok2.apply_chat_template(HELLO, tokenize=False) == tok.apply_chat_template(HELLO, tokenize=False)
    with torch.no_grad():
        assert torch.equal(fresh(ids).logits, copy_(ids).logits)
    assert copy_.lm_head.weight.data_ptr() == copy_.model.embed_tokens.weight.data_ptr()  # still tied
    assert converted_folder(smollm_path, "bfloat16") != copy_dir
