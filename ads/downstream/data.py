"""Instruction datasets for fine-tuning: load, check, render through the chat template, tokenize.

A dataset is a JSONL file, a `datasets` folder written by `save_to_disk`, or the export of
any generator's run (`main.py export RUN_DIR`, or RUN_DIR itself once it has an `export/`): its
`ads_export.json` declares which fields are the prompt, the optional input and the response,
and its `train` split (the accepted records) is read. Otherwise one record per example with a
prompt and a response field. The field names are auto-detected from the
common pairs (instruction/response, prompt/completion, instruction/output, question/answer)
unless configured; Alpaca-style records with an extra non-empty `input` get it appended to
the instruction. Any problem (missing file, bad JSON line, a record without the field) is a
`FinetuneDataError` naming the file, the line and the field, raised before a model loads.

Two built-in real datasets exist for reference runs (what training on real data buys):
`builtin:wiki_name` and `builtin:gsm8k`, drawn only from sources outside the eval pool.

Each example is rendered as the model will see it at inference time (the tokenizer's chat
template, the same one `models.hf.HFModel` uses), and only the response tokens, including
the end-of-turn token, carry a loss: the model learns to answer and to stop, not to repeat
prompts.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

from pydantic import Field

from ads.config import ConfigError, Strict
from ads.store import jsonl_lines

FIELD_PAIRS = (("instruction", "response"), ("prompt", "completion"), ("instruction", "output"),
               ("question", "answer"), ("input", "output"))
BUILTINS = ("builtin:wiki_name", "builtin:gsm8k")
IGNORE = -100


class FinetuneDataError(ConfigError):
    """The training data cannot be used as configured; the message names the file and the field."""


class DataConfig(Strict):
    path: str = "builtin:wiki_name"  # JSONL file, save_to_disk folder, or one of BUILTINS
    prompt_field: str | None = None  # None: auto-detect from FIELD_PAIRS
    response_field: str | None = None
    input_field: str | None = None  # appended to the prompt (Alpaca's `input`); exports declare theirs
    split: str | None = None  # for a saved DatasetDict; "train" when present
    limit: int | None = Field(None, ge=1)  # keep the first N examples


@dataclass(frozen=True)
class SFTExample:
    prompt: str
    response: str
    where: str  # file:line / folder[row] / builtin source, for messages


# --- loading ---------------------------------------------------------------------------------
def _jsonl_rows(path: Path) -> Iterable[tuple[str, Any]]:
    return jsonl_lines(path, FinetuneDataError)


def _disk_rows(path: Path, split: str | None) -> Iterable[tuple[str, Any]]:
    from datasets import DatasetDict, load_from_disk

    try:
        ds = load_from_disk(str(path))
    except (FileNotFoundError, ValueError) as e:
        raise FinetuneDataError(f"{path}: not a `datasets` folder written by save_to_disk ({e})") from None
    if isinstance(ds, DatasetDict):
        name = split or ("train" if "train" in ds else None)
        if name is None or name not in ds:
            raise FinetuneDataError(f"{path}: data.split {split!r} not found; splits: {sorted(ds)}")
        ds = ds[name]
    for i, row in enumerate(ds):
        yield f"{path}[{i}]", row


def _detect_fields(row: dict[str, Any], where: str, cfg: DataConfig) -> tuple[str, str]:
    if cfg.prompt_field and cfg.response_field:
        return cfg.prompt_field, cfg.response_field
    for p, r in FIELD_PAIRS:
        if (cfg.prompt_field in (None, p)) and (cfg.response_field in (None, r)) and p in row and r in row:
            return p, r
    pairs = ", ".join(f"{p}/{r}" for p, r in FIELD_PAIRS)
    raise FinetuneDataError(f"{where}: no prompt/response fields found (fields present: {sorted(row)[:12]}); "
                            f"expected one of {pairs}, or set data.prompt_field and data.response_field")


def _text(row: dict[str, Any], name: str, where: str) -> str:
    if name not in row:
        raise FinetuneDataError(f"{where}: missing field {name!r} (fields present: {sorted(row)[:12]})")
    val = row[name]
    if isinstance(val, (int, float)) and not isinstance(val, bool):
        val = str(val)
    if not isinstance(val, str):
        raise FinetuneDataError(f"{where}: field {name!r} must be a string, got {type(val).__name__}")
    return val


def records_to_examples(rows: Iterable[tuple[str, Any]], cfg: DataConfig) -> list[SFTExample]:
    out: list[SFTExample] = []
    fields: tuple[str, str] | None = None
    for where, row in rows:
        if not isinstance(row, dict):
            raise FinetuneDataError(f"{where}: expected a JSON object, got {type(row).__name__}")
        if fields is None:
            fields = _detect_fields(row, where, cfg)
        prompt, response = _text(row, fields[0], where), _text(row, fields[1], where)
        extra = row.get(cfg.input_field) if cfg.input_field else (row.get("input") if fields[0] == "instruction"
                                                                   else None)
        if isinstance(extra, str) and extra.strip():
            prompt = f"{prompt.rstrip()}\n\n{extra.strip()}"
        if not prompt.strip() or not response.strip():
            continue  # nothing to learn from; not an error (generators may emit empty rejects)
        out.append(SFTExample(prompt=prompt.strip(), response=response.strip(), where=where))
        if cfg.limit and len(out) >= cfg.limit:
            break
    if not out:
        raise FinetuneDataError(f"{cfg.path}: no examples with a non-empty prompt and response")
    return out


def builtin_examples(name: str) -> list[SFTExample]:
    """Real training pairs from the sources outside the eval pool (see ads.downstream.evalset)."""
    from ads.downstream.evalset import gsm8k_pairs, wiki_name_pairs

    if name == "builtin:wiki_name":
        return [SFTExample(prompt=p, response=title, where=f"{name}:{s}")
                for s, p, title in wiki_name_pairs(heldout=False)]
    if name == "builtin:gsm8k":
        return [SFTExample(prompt=p, response=f"{sol}\nThe answer is {ans}.", where=f"{name}:{s}")
                for s, p, ans, sol in gsm8k_pairs(heldout=False)]
    raise FinetuneDataError(f"data.path: unknown built-in dataset {name!r}; choose from {list(BUILTINS)}")


def load_examples(cfg: DataConfig) -> list[SFTExample]:
    if cfg.path.startswith("builtin:"):
        ex = builtin_examples(cfg.path)
        return ex[: cfg.limit] if cfg.limit else ex
    path = Path(cfg.path).expanduser()
    if not path.exists():
        raise FinetuneDataError(f"data.path: training data not found: {path}")
    if path.is_dir() and ((path / EXPORT_MANIFEST).is_file() or (path / "export" / EXPORT_MANIFEST).is_file()):
        return _export_examples(path if (path / EXPORT_MANIFEST).is_file() else path / "export", cfg)
    rows = _disk_rows(path, cfg.split) if path.is_dir() else _jsonl_rows(path)
    return records_to_examples(rows, cfg)


EXPORT_MANIFEST = "ads_export.json"


def _export_examples(folder: Path, cfg: DataConfig) -> list[SFTExample]:
    """A generator's export: the fields its manifest declares, from hf/, else parquet/, else jsonl/."""
    import json

    mf = folder / EXPORT_MANIFEST
    try:
        manifest = json.loads(mf.read_text(encoding="utf-8"))
        declared = {k: manifest[k] for k in ("prompt_field", "response_field")}
    except (ValueError, KeyError) as e:
        raise FinetuneDataError(f"{mf}: not an export manifest ({e})") from None
    cfg = cfg.model_copy(update={"prompt_field": cfg.prompt_field or declared["prompt_field"],
                                 "response_field": cfg.response_field or declared["response_field"],
                                 "input_field": cfg.input_field or manifest.get("input_field")})
    split = cfg.split or "train"
    if (folder / "hf").is_dir():
        rows = _disk_rows(folder / "hf", split)
    elif (folder / "parquet" / f"{split}.parquet").is_file():
        from datasets import Dataset

        pq = folder / "parquet" / f"{split}.parquet"
        rows = ((f"{pq}[{i}]", r) for i, r in enumerate(Dataset.from_parquet(str(pq))))
    elif (folder / "jsonl" / f"{split}.jsonl").is_file():
        rows = _jsonl_rows(folder / "jsonl" / f"{split}.jsonl")
    else:
        raise FinetuneDataError(f"{folder}: the export has no {split!r} split in hf/, parquet/ or jsonl/")
    return records_to_examples(rows, cfg)


# --- tokenizing ------------------------------------------------------------------------------
def encode_example(tokenizer: Any, ex: SFTExample, max_len: int) -> tuple[dict[str, list[int]] | None, str]:
    """(input_ids + labels, status): status is ok | truncated | too_long (no response token fits)."""
    from models.hf import render_chat

    user = [{"role": "user", "content": ex.prompt}]
    prompt_text = render_chat(tokenizer, user, add_generation_prompt=True)
    full_text = render_chat(tokenizer, [*user, {"role": "assistant", "content": ex.response}],
                            add_generation_prompt=False)
    if full_text.startswith(prompt_text):
        answer_text = full_text[len(prompt_text):]
    else:  # a template that rewrites earlier turns; fall back to response + end-of-text
        answer_text = ex.response + (tokenizer.eos_token or "")
    p_ids = tokenizer(prompt_text, add_special_tokens=False)["input_ids"]
    a_ids = tokenizer(answer_text, add_special_tokens=False)["input_ids"]
    if len(p_ids) >= max_len:
        return None, "too_long"
    ids = (p_ids + a_ids)[:max_len]
    labels = ([IGNORE] * len(p_ids) + a_ids)[:max_len]
    return {"input_ids": ids, "labels": labels}, ("truncated" if len(p_ids) + len(a_ids) > max_len else "ok")


def encode_counting(examples: list[Any], encode: Any, statuses: tuple[str, ...]) -> tuple[list[dict], dict[str, int]]:
    """Encode each example (encode(ex) -> (encoding or None, status)), counting statuses; None is dropped."""
    out, stats = [], {"examples": len(examples), **{s: 0 for s in statuses}}
    for ex in examples:
        enc, status = encode(ex)
        stats[status] += 1
        if enc is not None:
            out.append(enc)
    stats["used"] = len(out)
    return out, stats


def encode_all(tokenizer: Any, examples: list[SFTExample], max_len: int) -> tuple[list[dict[str, list[int]]],
                                                                                   dict[str, int]]:
    out, stats = encode_counting(examples, lambda ex: encode_example(tokenizer, ex, max_len),
                                 ("ok", "truncated", "too_long"))
    if not out:
        raise FinetuneDataError(f"every example's prompt is longer than train.max_len={max_len} tokens; "
                                f"raise max_len or shorten the prompts")
    return out, stats


def collate(batch: list[dict[str, list[int]]], pad_id: int) -> dict[str, Any]:
    """Right-pad to the longest example in the batch; padding is masked and carries no loss."""
    import torch

    n = max(len(b["input_ids"]) for b in batch)
    ids = torch.full((len(batch), n), pad_id, dtype=torch.long)
    labels = torch.full((len(batch), n), IGNORE, dtype=torch.long)
    mask = torch.zeros((len(batch), n), dtype=torch.long)
    for i, b in enumerate(batch):
        k = len(b["input_ids"])
        ids[i, :k] = torch.tensor(b["input_ids"])
        labels[i, :k] = torch.tensor(b["labels"])
        mask[i, :k] = 1
    return {"input_ids": ids, "attention_mask": mask, "labels": labels}
