"""question_answering: a model answers a question, closed-book or from retrieved passages.

Grounding is the point of this API for a data-acquisition policy: the same small model
that cannot name an article's subject from memory often can when the article is in its
prompt. The passages used are returned with the answer so the caller can see (and a
judge can check) what the answer rests on.
"""
from __future__ import annotations

from typing import Any

from apis.base import ArgSpec, Observation
from apis.retrieval import Bm25Index
from models.base import Model

CLOSED_SYSTEM = "Answer the question correctly and briefly, with a short phrase."
GROUNDED_SYSTEM = ("Answer the question correctly and briefly, with a short phrase. The passages below are "
                   "search results; use them when they contain the answer.")


class QuestionAnsweringApi:
    """question_answering(question, grounded?, top_k?): an answer and the passages it used."""

    name = "question_answering"
    description = "answer a question with a model, optionally grounded in retrieved encyclopedia passages"

    def __init__(self, model: Model, index: Bm25Index | None = None, *, cost: float = 2.0, grounded: bool = True,
                 default_top_k: int = 3, max_top_k: int = 20, max_question_chars: int = 500,
                 passage_chars: int = 600, max_tokens: int = 48, seed: int = 0):
        if grounded and index is None:
            raise ValueError("grounded question answering needs an index")
        self.model, self.index = model, index
        self.cost = cost
        self.default_grounded, self.default_top_k = grounded, default_top_k
        self.passage_chars, self.max_tokens, self.seed = passage_chars, max_tokens, seed
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
                                  seed=self.seed, sample_id="qa")
        answer = out.text.strip()
        text = f"Q: {question}\nA: {answer}"
        if passages:
            text += "\nSources: " + "; ".join(p["title"] for p in passages)
        payload = {"question": question, "answer": answer, "grounded": grounded, "top_k": k if grounded else 0,
                   "passages": passages, "finish_reason": out.finish_reason}
        return Observation(text=text, payload=payload, cost=self.cost)
