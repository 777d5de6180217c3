"""What a grammar-constrained token costs with llama-cpp-python, next to a free one.

Why the tool-use generator writes its prose turns as plain text and gives string arguments no
`maxLength`: llama-cpp-python applies the JSON-schema grammar to every vocabulary entry at every
step, and a bounded repetition (`maxLength`) makes each step dearer still. The same schemas are
also decoded with llguidance token masks (`json_decoding: llguidance`, models/constrained.py),
on a second instance of the same model. Same prompt, same model, `--reps` calls per decoding,
interleaved so machine load hits all alike; reported as seconds per generated token, the ratio
to free text, and how many constrained outputs parse and validate against their schema.

    .venv/bin/python bench/bench_grammar_cost.py --model cache/models/smollm2-135m.gguf
    .venv/bin/python bench/bench_grammar_cost.py --model cache/models/qwen2.5-coder-0.5b-instruct.gguf
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from ads.report import print_table  # noqa: E402
from models.llamacpp import LlamaCppModel  # noqa: E402
from models.structured import parse_json  # noqa: E402

PROMPT = [{"role": "user", "content": "Write a short request a user might send to a travel assistant about a trip "
                                      "to Lisbon. Reply as JSON with key \"message\"."}]


def schema(max_length: int | None) -> dict:
    s: dict = {"type": "string", "minLength": 2}
    if max_length:
        s["maxLength"] = max_length
    return {"type": "object", "properties": {"message": s}, "required": ["message"], "additionalProperties": False}


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default=str(ROOT / "cache" / "models" / "smollm2-135m.gguf"))
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--max-tokens", type=int, default=48)
    ap.add_argument("--temperature", type=float, default=0.7)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--no-masks", action="store_true", help="GBNF arms only (no llguidance instance)")
    args = ap.parse_args()
    gbnf = LlamaCppModel(args.model, n_ctx=1024, n_threads=args.threads, json_decoding="gbnf")
    arms = {"free text (no grammar)": (gbnf, None), "JSON schema, no maxLength": (gbnf, schema(None)),
            "JSON schema, maxLength 400": (gbnf, schema(400))}
    if not args.no_masks:
        masks = LlamaCppModel(args.model, n_ctx=1024, n_threads=args.threads, json_decoding="llguidance")
        arms.update({"llguidance, no maxLength": (masks, schema(None)),
                     "llguidance, maxLength 400": (masks, schema(400))})
    for name, (m, s) in arms.items():  # warm-up, untimed: llguidance's tokenizer, grammar compiles
        m.generate(PROMPT, max_tokens=4, temperature=args.temperature, sample_id="warm-up", json_schema=s)
    acc = {k: [0.0, 0, 0] for k in arms}  # seconds, tokens, valid outputs
    texts: dict[str, list[str]] = {k: [] for k in arms}
    for r in range(args.reps):
        for name, (m, s) in arms.items():
            t0 = time.perf_counter()
            c = m.generate(PROMPT, max_tokens=args.max_tokens, temperature=args.temperature, sample_id=f"{r}",
                           json_schema=s)
            acc[name][0] += time.perf_counter() - t0
            acc[name][1] += max(c.completion_tokens, 1)
            acc[name][2] += s is not None and parse_json(c.text, s)[1] is None
            texts[name].append(c.text)
    same_as = {"llguidance, no maxLength": "JSON schema, no maxLength",
               "llguidance, maxLength 400": "JSON schema, maxLength 400"}
    base = acc["free text (no grammar)"][0] / acc["free text (no grammar)"][1]
    rows = [[k, str(n), f"{t:.1f}", f"{t / n:.3f}", f"{t / n / base:.2f}x",
             "" if arms[k][1] is None else f"{ok}/{args.reps}",
             f"{sum(a == b for a, b in zip(texts[k], texts[same_as[k]]))}/{args.reps}" if k in same_as else ""]
            for k, (t, n, ok) in acc.items()]
    print_table(f"{Path(args.model).name}: {args.reps} calls each, max_tokens {args.max_tokens}, "
                f"temperature {args.temperature}",
                ["decoding", "tokens", "seconds", "s/token (incl. prompt)", "vs free text", "valid JSON",
                 "same text as GBNF"], rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
