"""demonstration_generation: a model writes instruction-response pairs about a topic.

Small models asked for k examples produce empty strings, copy the topic back as the
instruction, answer with the instruction itself, or repeat one pair k times. The output is
constrained by a JSON schema (a grammar on llama.cpp), then every pair is checked and the
survivors deduplicated on normalized text; each discarded pair is counted by reason in the
payload so the cost of a bad topic is visible. Output that is not JSON at all yields zero
pairs and one `malformed_output` rejection, never an exception.

With `grounded=true` the pairs are written from passages retrieved for the topic, which
keeps a small model's facts closer to the source.
"""
from __future__ import annotations

import re
from collections import Counter
from typing import Any

from apis.api_registry import ArgSpec, Observation
from apis.retrieval import Bm25Index
from models.base import Model
from models.structured import extract_json

SYSTEM = ("You write training examples for a small assistant. Each example is an instruction a user might "
          "give and a correct, helpful response.")
INSTRUCTION_MAX_CHARS = 200
RESPONSE_MAX_CHARS = 500


def normalize(text: str) -> str:
    """Lowercase words only: what two texts must share to count as the same text."""
    return " ".join(re.findall(r"\w+", text.lower()))


def pairs_schema(k: int) -> dict[str, Any]:
    pair = {"type": "object",
            "properties": {"instruction": {"type": "string", "minLength": 1, "maxLength": INSTRUCTION_MAX_CHARS},
                           "response": {"type": "string", "minLength": 1, "maxLength": RESPONSE_MAX_CHARS}},
            "required": ["instruction", "response"], "additionalProperties": False}
    return {"type": "object", "properties": {"pairs": {"type": "array", "items": pair, "minItems": k, "maxItems": k}},
            "required": ["pairs"], "additionalProperties": False}


def validate_pairs(items: Any, topic: str, request: str, k: int) -> tuple[list[dict[str, str]], Counter]:
    """Keep the pairs that are well-formed, not echoes, and not duplicates; count the rest by reason."""
    rejected: Counter = Counter()
    kept: list[dict[str, str]] = []
    seen: set[str] = set()
    norm_topic, norm_request = normalize(topic), normalize(request)
    for item in items:
        if not isinstance(item, dict) or not isinstance(item.get("instruction"), str) \
                or not isinstance(item.get("response"), str):
            rejected["not_a_pair"] += 1
            continue
        ins, resp = item["instruction"].strip(), item["response"].strip()
        ni, nr = normalize(ins), normalize(resp)
        if not ni or not nr:
            rejected["empty"] += 1
        elif len(ins) > INSTRUCTION_MAX_CHARS or len(resp) > RESPONSE_MAX_CHARS:
            rejected["too_long"] += 1
        elif ni == norm_topic or nr == norm_topic or (len(ni) >= 12 and ni in norm_request):
            rejected["echo"] += 1
        elif nr == ni or (len(ni) >= 12 and nr in ni):
            rejected["response_equals_instruction"] += 1
        elif ni in seen:
            rejected["duplicate"] += 1
        elif len(kept) >= k:
            rejected["extra"] += 1
        else:
            seen.add(ni)
            kept.append({"instruction": ins, "response": resp})
    return kept, rejected


class DemonstrationApi:
    """demonstration_generation(topic, k?, grounded?): k instruction-response pairs on a topic."""

    name = "demonstration_generation"
    description = "write k example instruction-response pairs about a topic (optionally from retrieved passages)"

    def __init__(self, model: Model, index: Bm25Index | None = None, *, cost: float = 3.0, default_k: int = 3,
                 max_k: int = 8, grounded: bool = False, top_k: int = 2, context_chars: int = 1500,
                 max_topic_chars: int = 500, temperature: float = 0.7, seed: int = 0,
                 tokens_per_pair: int = 200):
        self.model, self.index = model, index
        self.cost = cost
        self.default_k, self.default_grounded = default_k, grounded
        self.top_k, self.context_chars = top_k, context_chars
        self.temperature, self.seed, self.tokens_per_pair = temperature, seed, tokens_per_pair
        self.args = {
            "topic": ArgSpec("string", "what the examples are about", max_length=max_topic_chars),
            "k": ArgSpec("integer", "number of pairs", required=False, minimum=1, maximum=max_k, default=default_k),
            "grounded": ArgSpec("boolean", "write from retrieved passages", required=False, default=grounded),
        }

    def _context(self, topic: str) -> tuple[str, list[dict[str, Any]]]:
        if self.index is None:
            return "", []
        passages = [h.passage() for h in self.index.search(topic, self.top_k)]
        blocks, used = [], 0
        for p in passages:
            block = f"{p['title']}: {p['text']}"[: max(0, self.context_chars - used)]
            if block:
                blocks.append(block)
                used += len(block)
        return "\n".join(blocks), passages

    def request(self, topic: str, k: int, context: str) -> str:
        ref = f"Reference passages:\n{context}\n\n" if context else ""
        use = "Base every response on the reference passages. " if context else ""
        return (f"{ref}Topic: {topic}\nWrite {k} different instruction-response pairs about this topic. "
                f"Each instruction is a question or task a user might ask; each response answers it correctly "
                f"in one to three sentences. {use}Reply in JSON.")

    def __call__(self, topic: str, k: int | None = None, grounded: bool | None = None) -> Observation:
        k = k or self.default_k
        grounded = self.default_grounded if grounded is None else grounded
        context, passages = self._context(topic) if grounded else ("", [])
        request = self.request(topic, k, context)
        out = self.model.generate([{"role": "system", "content": SYSTEM}, {"role": "user", "content": request}],
                                  max_tokens=64 + k * self.tokens_per_pair, temperature=self.temperature,
                                  seed=self.seed, sample_id=f"demonstrations:{k}", json_schema=pairs_schema(k))
        rejected: Counter = Counter()
        obj, err = extract_json(out.text)
        if err is None and isinstance(obj, dict) and isinstance(obj.get("pairs"), list):
            pairs, rejected = validate_pairs(obj["pairs"], topic, self.request(topic, k, ""), k)
        else:
            pairs = []
            rejected["malformed_output"] += 1
            err = err or "JSON has no 'pairs' list"
        if pairs:
            text = f"Demonstrations on {topic}:\n" + "\n".join(
                f"Instruction: {p['instruction']}\nResponse: {p['response']}" for p in pairs)
        else:
            text = f"No valid demonstrations were produced for {topic!r} ({sum(rejected.values())} rejected)."
        payload = {"topic": topic, "k": k, "grounded": grounded, "pairs": pairs, "rejected": dict(rejected),
                   "n_rejected": sum(rejected.values()), "parse_error": err, "finish_reason": out.finish_reason,
                   "passages": [{"id": p["id"], "title": p["title"]} for p in passages]}
        return Observation(text=text, payload=payload, cost=self.cost)
