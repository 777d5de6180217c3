"""question_answering: a model answers a question, closed-book or from retrieved passages.

Grounding is the point of this API for a data-acquisition policy: the same small model
that cannot name an article's subject from memory often can when the article is in its
prompt. The passages used are returned with the answer so the caller can see (and a
judge can check) what the answer rests on.

Like demonstration_generation, the reply is constrained by a JSON schema
(`{"answer": string, maxLength N}`; a grammar on llama.cpp) and then validated, because a
small model left to free text rambles past the answer, repeats the question, or returns
nothing. A reply that fails a check gives an empty answer and one rejection counted by
reason in the payload (`malformed_output`, `empty`, `too_long`, `echo`), never an
exception, so a caller can see what a bad question cost. The observation text stays a
readable "Q: ... A: ..." line for the policy that reads it.
"""
from __future__ import annotations

from collections import Counter
from typing import Any

from apis.api_registry import ArgSpec, Observation
from apis.demonstrations import normalize
from apis.retrieval import Bm25Index
from models.base import Model
from models.structured import extract_json

CLOSED_SYSTEM = "Answer the question correctly and briefly, with a short phrase. Reply in JSON."
GROUNDED_SYSTEM = ("Answer the question correctly and briefly, with a short phrase. The passages below are "
                   "search results; use them when they contain the answer. Reply in JSON.")
ANSWER_MAX_CHARS = 200


def answer_schema(max_chars: int = ANSWER_MAX_CHARS) -> dict[str, Any]:
    """The shape a reply must have: one non-empty answer string of bounded length, nothing else."""
    return {"type": "object",
            "properties": {"answer": {"type": "string", "minLength": 1, "maxLength": max_chars}},
            "required": ["answer"], "additionalProperties": False}


def validate_answer(raw: str, question: str, max_chars: int) -> tuple[str, str | None, str | None]:
    """(answer, rejection reason or None, parse error or None) for one model reply.

    The checks are done here rather than trusted to the grammar: backends without grammars
    (HTTP servers, transformers) give no guarantee, and a grammar cut off by max_tokens
    leaves unterminated JSON.
    """
    obj, err = extract_json(raw)
    if err is None and not (isinstance(obj, dict) and isinstance(obj.get("answer"), str)):
        err = "JSON has no 'answer' string"
    if err is not None:
        return "", "malformed_output", err
    answer = obj["answer"].strip()
    if not normalize(answer):
        return "", "empty", None
    if len(answer) > max_chars:
        return "", "too_long", None
    if normalize(answer) == normalize(question):
        return "", "echo", None
    return answer, None, None


class QuestionAnsweringApi:
    """question_answering(question, grounded?, top_k?): an answer and the passages it used."""

    name = "question_answering"
    description = "answer a question with a model, optionally grounded in retrieved encyclopedia passages"

    def __init__(self, model: Model, index: Bm25Index | None = None, *, cost: float = 2.0, grounded: bool = True,
                 default_top_k: int = 3, max_top_k: int = 20, max_question_chars: int = 500,
                 passage_chars: int = 600, max_tokens: int = 48, max_answer_chars: int = ANSWER_MAX_CHARS,
                 seed: int = 0):
        if grounded and index is None:
            raise ValueError("grounded question answering needs an index")
        self.model, self.index = model, index
        self.cost = cost
        self.default_grounded, self.default_top_k = grounded, default_top_k
        self.passage_chars, self.max_tokens, self.seed = passage_chars, max_tokens, seed
        self.max_answer_chars = max_answer_chars
        self.schema = answer_schema(max_answer_chars)
        self.args = {
            "question": ArgSpec("string", "the question", max_length=max_question_chars),
            "grounded": ArgSpec("boolean", "answer from retrieved passages", required=False, default=grounded),
            "top_k": ArgSpec("integer", "passages to read", required=False, minimum=1, maximum=max_top_k,
                             default=default_top_k),
        }

    def messages(self, question: str, passages: list[dict[str, Any]]) -> list[dict[str, str]]:
        if not passages:
            return [{"role": "system", "content": CLOSED_SYSTEM},
                    {"role": "user", "content": f"Question: {question}\nAnswer:"}]
        ctx = "\n".join(f"[{i}] {p['title']}: {p['text'][: self.passage_chars]}" for i, p in enumerate(passages, 1))
        return [{"role": "system", "content": GROUNDED_SYSTEM},
                {"role": "user", "content": f"Passages:\n{ctx}\n\nQuestion: {question}\nAnswer:"}]

    def __call__(self, question: str, grounded: bool | None = None, top_k: int | None = None) -> Observation:
        grounded = self.default_grounded if grounded is None else grounded
        k = top_k or self.default_top_k
        if grounded and self.index is None:
            raise ValueError("this question_answering API has no index, so it cannot answer grounded")
        passages = [h.passage() for h in self.index.search(question, k)] if grounded else []
        out = self.model.generate(self.messages(question, passages), max_tokens=self.max_tokens, temperature=0.0,
                                  seed=self.seed, sample_id="qa", json_schema=self.schema)
        answer, reason, err = validate_answer(out.text, question, self.max_answer_chars)
        rejected = Counter({reason: 1}) if reason else Counter()
        text = f"Q: {question}\nA: {answer}" if reason is None else \
            f"Q: {question}\nA: (no valid answer: {reason})"
        if passages:
            text += "\nSources: " + "; ".join(p["title"] for p in passages)
        payload = {"question": question, "answer": answer, "valid": reason is None, "rejected": dict(rejected),
                   "n_rejected": sum(rejected.values()), "parse_error": err, "grounded": grounded,
                   "top_k": k if grounded else 0, "passages": passages, "finish_reason": out.finish_reason}
        return Observation(text=text, payload=payload, cost=self.cost)
