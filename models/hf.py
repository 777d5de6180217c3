"""Transformers backend: a local HF folder or a GGUF file loaded dequantized, optionally with a LoRA adapter.

Why a second backend next to llama.cpp: a LoRA adapter trained by `ads.finetune` runs here
without converting anything, and the same weights that were trained are the ones that answer.
A GGUF is dequantized to float32 on load (`from_pretrained(dir, gguf_file=name)`), so its
outputs are close to, not identical with, llama.cpp's quantized arithmetic.

Decoding is a plain KV-cached loop rather than `model.generate`, because the harness needs
two things `generate` does not give directly: sampling driven by a private `torch.Generator`
seeded from (seed, sample_id), so k samples of a prompt differ reproducibly without touching
the global RNG that other threads use; and exact token counts. Temperature 0 is greedy
argmax and therefore deterministic for a given prompt on a given machine.

JSON schemas are NOT enforced here: transformers has no grammar-constrained decoding in
this environment. With `json_schema` the model is told the schema in the system prompt, and
the first JSON object found in its output (if any) is returned instead of the surrounding
prose. Nothing guarantees the object parses or matches the schema; callers validate with
`models.structured.parse_json` and count a rejection, as they must for any backend.
`Completion.meta["constrained"]` is always False so reports can tell the two apart.

Nothing here reaches a hub: the offline environment variables are set before transformers
is imported and every `from_pretrained` call is `local_files_only=True`.
"""
from __future__ import annotations

import hashlib
import json
import os
import threading
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
# OpenMP threads that spin while waiting make every decode step ~10x slower when the cores are
# shared with other processes (measured: 0.6-1.2 s vs 0.08 s per token on 2 busy cores). Only
# effective if torch is not imported yet; the user's own setting wins.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from models.base import Completion, Message, ModelError, derived_seed, validate_messages  # noqa: E402
from models.errors import ModelLoadError  # noqa: E402

# Chat models end a turn with one of these; the tokenizer's own eos is added to the set too.
END_OF_TURN = ("<|im_end|>", "<|endoftext|>", "<|eot_id|>", "<|end|>", "<end_of_turn>", "</s>")


def split_model_path(path: str | Path, gguf_file: str | None = None) -> tuple[Path, str | None]:
    """`x/model.gguf` -> (x, "model.gguf"); a folder stays a folder."""
    p = Path(path).expanduser()
    if gguf_file is None and p.suffix == ".gguf":
        return p.parent, p.name
    return p, gguf_file


def converted_folder(gguf: Path, dtype_name: str) -> Path:
    """Where the dequantized copy of a GGUF is kept: beside it, named by the file's size and
    mtime and the dtype, so a replaced file or another dtype is converted afresh."""
    st = gguf.stat()
    return gguf.parent / ".hf" / f"{gguf.stem}-{st.st_size}-{st.st_mtime_ns}-{dtype_name}"


def _save_converted(model: Any, tokenizer: Any, dest: Path) -> None:
    """The dequantized weights as an ordinary HF folder (safetensors), renamed into place only
    when complete, so a killed or concurrent writer never leaves a half folder to load."""
    import shutil

    from safetensors.torch import save_model

    tmp = dest.with_name(f"{dest.name}.tmp{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        tmp.mkdir(parents=True)
        cfg = model.config.to_dict()
        cfg.pop("quantization_config", None)  # the weights are plain floats now
        (tmp / "config.json").write_text(json.dumps(cfg, indent=1))
        save_model(model, str(tmp / "model.safetensors"))  # drops the tied lm_head copy; loading re-ties it
        tokenizer.save_pretrained(str(tmp))
        if dest.is_dir() and not (dest / "model.safetensors").is_file():
            shutil.rmtree(dest, ignore_errors=True)  # a copy left without its weights
        tmp.rename(dest)
    except OSError:
        pass  # read-only folder, full disk, or another process renamed first: the next load converts again
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def load_causal_lm(path: str | Path, gguf_file: str | None = None, *, dtype: Any = None,
                   converted: bool = True) -> tuple[Any, Any]:
    """(model, tokenizer) from an HF folder or `folder/gguf_file`, offline, with a readable error.

    Reading a GGUF with transformers takes ~15 s for SmolLM2 on these CPUs (its Python parser
    and tokenizer conversion), against ~0.3 s for safetensors; with `converted` the first load
    writes the dequantized copy to `.hf/` beside the GGUF (float32 SmolLM2: 517 MB) and later
    loads read that; `converted=False` reads the GGUF itself and writes nothing."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    folder, gguf_file = split_model_path(path, gguf_file)
    dtype = dtype or torch.float32
    if gguf_file is not None:
        if not (folder / gguf_file).is_file():
            raise ModelLoadError(f"GGUF file not found: {folder / gguf_file}")
    elif not (folder / "config.json").is_file():
        raise ModelLoadError(f"{folder}: not a Hugging Face model folder (no config.json) and not a .gguf file")
    copy = converted_folder(folder / gguf_file, str(dtype).rsplit(".", 1)[-1]) if gguf_file and converted else None
    source, kw = folder, {"local_files_only": True}
    if copy is not None and (copy / "model.safetensors").is_file():
        source = copy
    elif gguf_file is not None:
        kw["gguf_file"] = gguf_file
    try:
        tokenizer = AutoTokenizer.from_pretrained(str(source), **kw)
        model = AutoModelForCausalLM.from_pretrained(str(source), dtype=dtype, **kw)
    except (OSError, ValueError, KeyError) as e:
        raise ModelLoadError(f"could not load {folder / (gguf_file or '')} with transformers: {e}") from e
    if copy is not None and source is folder:
        _save_converted(model, tokenizer, copy)
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    return model, tokenizer


def stop_token_ids(tokenizer: Any, model: Any | None = None) -> set[int]:
    ids: set[int] = set()
    if tokenizer.eos_token_id is not None:
        ids.add(int(tokenizer.eos_token_id))
    gen_eos = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
    for t in gen_eos if isinstance(gen_eos, (list, tuple)) else [gen_eos]:
        if t is not None:
            ids.add(int(t))
    vocab = tokenizer.get_vocab()
    ids.update(vocab[t] for t in END_OF_TURN if t in vocab)
    return ids


def render_chat(tokenizer: Any, messages: list[Message], add_generation_prompt: bool = True) -> str:
    """The prompt text through the tokenizer's chat template (a plain transcript if it has none)."""
    if getattr(tokenizer, "chat_template", None):
        return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=add_generation_prompt)
    text = "".join(f"{m['role']}: {m['content']}\n" for m in messages)
    return text + ("assistant: " if add_generation_prompt else "")


def adapter_fingerprint(adapter: str | Path) -> str:
    """Folder name + a short hash of the adapter weights, so a retrained adapter is a new model id."""
    adapter = Path(adapter)
    h = hashlib.sha256()
    for name in ("adapter_config.json", "adapter_model.safetensors", "adapter_model.bin"):
        p = adapter / name
        if p.is_file():
            h.update(p.read_bytes())
    return f"{adapter.name}-{h.hexdigest()[:8]}"


def schema_instruction(schema: dict[str, Any]) -> str:
    return ("Reply with one JSON object only, no prose and no code fences. It must match this JSON schema:\n"
            + json.dumps(schema, ensure_ascii=False, separators=(",", ":")))


def with_schema_prompt(messages: list[Message], schema: dict[str, Any]) -> list[Message]:
    """Append the schema instruction to the system message, or add one."""
    note = schema_instruction(schema)
    if messages and messages[0]["role"] == "system":
        return [{"role": "system", "content": messages[0]["content"].rstrip() + "\n\n" + note}, *messages[1:]]
    return [{"role": "system", "content": note}, *messages]


def first_json_object(text: str) -> str | None:
    """The exact source text of the first decodable JSON object in `text`, or None."""
    from models.structured import raw_decode_bounded  # deep nesting is a ValueError, not RecursionError

    start = text.find("{")
    while start >= 0:
        try:
            _, end = raw_decode_bounded(text[start:])
            return text[start:start + end]
        except ValueError:
            start = text.find("{", start + 1)
    return None


class HFModel:
    """The `Model` protocol over a transformers causal LM (CPU by default; any torch device works)."""

    def __init__(self, path: str | Path, *, gguf_file: str | None = None, adapter: str | Path | None = None,
                 model_id: str | None = None, device: str | None = None, dtype: Any = None,
                 merge_adapter: bool = True, top_k: int = 40, top_p: float = 0.95,
                 model: Any | None = None, tokenizer: Any | None = None):
        """`model`/`tokenizer` may be passed in already loaded (e.g. a model still in training).

        top_k/top_p apply only when sampling (temperature > 0); the defaults mirror llama.cpp's.
        An adapter is merged into the weights by default (same outputs, faster decoding).
        """
        import torch

        folder, gguf_file = split_model_path(path, gguf_file)
        self.path = folder / gguf_file if gguf_file else folder
        if model is None or tokenizer is None:
            model, tokenizer = load_causal_lm(folder, gguf_file, dtype=dtype)
        base_id = model_id or (Path(gguf_file).stem if gguf_file else folder.name)
        self.adapter = Path(adapter) if adapter else None
        if self.adapter is not None:
            model = self._attach_adapter(model, self.adapter, merge_adapter)
            fp = adapter_fingerprint(self.adapter)
            # The request cache keys on model_id: a LoRA changes the answers, so it must change the id.
            base_id = base_id if fp in base_id else f"{base_id}+lora:{fp}"
        self.model_id = base_id
        self.device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        self.model = model.to(self.device).eval()
        self.tokenizer = tokenizer
        self.stop_ids = stop_token_ids(tokenizer, model)
        self.max_context = int(getattr(model.config, "max_position_embeddings", 0) or 0) or None
        self.top_k, self.top_p = top_k, top_p
        self._lock = threading.Lock()

    @staticmethod
    def _attach_adapter(model: Any, adapter: Path, merge: bool) -> Any:
        from peft import PeftModel

        if not (adapter / "adapter_config.json").is_file():
            raise ModelLoadError(f"LoRA adapter folder {adapter} has no adapter_config.json "
                             f"(expected the folder written by ads.finetune / PeftModel.save_pretrained)")
        try:
            peft_model = PeftModel.from_pretrained(model, str(adapter))
        except (OSError, ValueError, RuntimeError, KeyError) as e:
            raise ModelLoadError(f"LoRA adapter {adapter} does not fit this base model: {e}") from e
        return peft_model.merge_and_unload() if merge else peft_model

    # --- tokens -------------------------------------------------------------------------------
    def count_tokens(self, text: str) -> int:
        return len(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def encode_chat(self, messages: list[Message]) -> list[int]:
        text = render_chat(self.tokenizer, messages, add_generation_prompt=True)
        return self.tokenizer(text, add_special_tokens=False)["input_ids"]

    # --- decoding -----------------------------------------------------------------------------
    def _pick(self, logits: Any, temperature: float, gen: Any) -> int:
        import torch

        if temperature <= 0:
            return int(torch.argmax(logits))
        logits = logits / temperature
        if self.top_k and self.top_k < logits.shape[-1]:
            kth = torch.topk(logits, self.top_k).values[-1]
            logits = logits.masked_fill(logits < kth, float("-inf"))
        probs = torch.softmax(logits, dim=-1)
        if self.top_p < 1.0:
            sorted_p, order = torch.sort(probs, descending=True)
            keep = torch.cumsum(sorted_p, 0) - sorted_p < self.top_p  # always keeps the top token
            mask = torch.zeros_like(probs, dtype=torch.bool)
            mask[order[keep]] = True
            probs = torch.where(mask, probs, torch.zeros_like(probs))
        return int(torch.multinomial(probs, 1, generator=gen))

    def _decode(self, prompt_ids: list[int], max_tokens: int, temperature: float, seed: int) -> tuple[list[int], str]:
        import torch

        gen = None
        if temperature > 0:
            gen = torch.Generator(device="cpu")
            gen.manual_seed(seed)
        out: list[int] = []
        ids = torch.tensor([prompt_ids], device=self.device)
        past = None
        with torch.inference_mode():
            for _ in range(max_tokens):
                res = self.model(input_ids=ids, past_key_values=past, use_cache=True)
                past = res.past_key_values
                tok = self._pick(res.logits[0, -1].float().cpu(), temperature, gen)
                if tok in self.stop_ids:
                    return out, "stop"
                out.append(tok)
                ids = torch.tensor([[tok]], device=self.device)
        return out, "length"

    def generate(self, messages: list[Message], *, max_tokens: int = 256, temperature: float = 0.0, seed: int = 0,
                 sample_id: int | str = 0, json_schema: dict[str, Any] | None = None) -> Completion:
        validate_messages(messages)
        if json_schema is not None:
            messages = with_schema_prompt(messages, json_schema)
        prompt_ids = self.encode_chat(messages)
        if self.max_context and len(prompt_ids) + max_tokens > self.max_context:
            raise ModelError(f"{self.model_id}: prompt of {len(prompt_ids)} tokens + max_tokens {max_tokens} "
                             f"exceeds the context window of {self.max_context}")
        with self._lock:
            t0 = time.perf_counter()
            out_ids, finish = self._decode(prompt_ids, max(0, int(max_tokens)), float(temperature),
                                           derived_seed(seed, sample_id, bits=63))
            latency = time.perf_counter() - t0
        text = self.tokenizer.decode(out_ids, skip_special_tokens=True)
        meta: dict[str, Any] = {"backend": "transformers"}
        if json_schema is not None:
            found = first_json_object(text)
            meta.update(constrained=False, json_extracted=found is not None)
            if found is not None:
                text = found
        return Completion(text=text, prompt_tokens=len(prompt_ids), completion_tokens=len(out_ids),
                          model_id=self.model_id, latency_s=latency, finish_reason=finish, meta=meta)
