"""The policy: answers an instruction with a task's training data in context, and is scored.

The reference block comes first in the prompt and the instruction last, so the calls for one
task's instructions share their whole prefix whenever the dataset fits the budget. A prompt
that does not fit the model's context, or any other model failure that is not fatal, is a
counted policy error scored 0, never a crash.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ads.active_search.instruction_sets import Instruction, scorer
from ads.active_search.training_data import render, select_rows
from models.base import Model, ModelError

POLICY_SYSTEM = "You are a careful assistant. Use the reference material when it is relevant. Be brief."


@dataclass
class Answer:
    text: str
    score: float
    error: str | None = None


class Policy:
    def __init__(self, model: Model, *, seed: int, answer_max_tokens: int, reasoning_max_tokens: int,
                 context_chars: int, context_rows: int | None = None, judge: Any | None = None):
        self.model, self.seed, self.judge = model, seed, judge
        self.answer_max_tokens, self.reasoning_max_tokens = answer_max_tokens, reasoning_max_tokens
        self.context_chars, self.context_rows = context_chars, context_rows

    @staticmethod
    def messages(ins: Instruction, context: str) -> list[dict[str, str]]:
        user = f"Reference material:\n{context}\n\nTask: {ins.prompt}" if context else f"Task: {ins.prompt}"
        return [{"role": "system", "content": POLICY_SYSTEM}, {"role": "user", "content": user}]

    def context_for(self, ins: Instruction, rows: list[dict[str, Any]]) -> str:
        return render(select_rows(rows, ins.content(), self.context_chars, self.context_rows)) if rows else ""

    def answer(self, ins: Instruction, rows: list[dict[str, Any]] | None = None, context: str | None = None) -> Answer:
        """Answer with the task's dataset rows (selected for this instruction) or a given context."""
        ctx = context if context is not None else self.context_for(ins, rows or [])
        long = ins.scorer in ("math", "judge") or (ins.scorer in ("exact", "contains", "f1") and ins.gold is None)
        try:
            out = self.model.generate(self.messages(ins, ctx), temperature=0.0, seed=self.seed, sample_id="policy",
                                      max_tokens=self.reasoning_max_tokens if long else self.answer_max_tokens)
        except ModelError as e:  # e.g. a prompt longer than the context window: counted, scored 0
            return Answer(text="", score=0.0, error=f"policy error: {e}")
        return Answer(text=out.text, score=self.score(ins, out.text))

    def score(self, ins: Instruction, text: str) -> float:
        fn = scorer(ins)
        if fn is not None:
            return float(fn(text))
        if self.judge is None:
            raise ValueError(f"instruction {ins.id} is scored by the judge but no judge is configured "
                             "(set judge: in the config)")
        j = self.judge.judge(instruction=ins.prompt, response=text)
        return float(j.overall) / 10.0 if j.ok else 0.0
