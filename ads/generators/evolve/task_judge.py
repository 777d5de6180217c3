"""The benchmark judge: the shared `ads.quality.Judge`, asked a different question.

The shared judge brings retries at a higher temperature, clamping, failure counting and
defensive parsing; this subclass only swaps the prompt (task + answer + the nearest
existing tasks) and the schema (analysis, difficulty, novel, score_0_10, tags; the analysis is
stored as the verdict's `rationale`, see prompts.py for why it is not called that). The one
rubric criterion is named `score_0_10`, which the shared parser finds at the top level of
the flat reply; the other fields are read from the same reply. A reply without a boolean
`novel` is a counted malformed judgment, not a guess; a bad difficulty or tag list is
dropped (they are descriptive only).
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from ads.generators.evolve.prompts import judge_messages, judge_schema
from ads.generators.evolve.seeds import DIFFICULTIES
from ads.quality.judge import Criterion, Judge, JudgeConfig
from models.base import Model
from models.structured import extract_json

SCORE = Criterion(name="score_0_10", description="Overall quality of the task and correctness of the answer.")


@dataclass
class TaskVerdict:
    ok: bool
    score: float | None = None
    novel: bool | None = None
    difficulty: str | None = None
    tags: list[str] = field(default_factory=list)
    rationale: str = ""
    attempts: int = 0
    error: str | None = None
    model_error: bool = False  # the backend failed (not a malformed reply)

    def to_dict(self) -> dict[str, Any]:
        return {"score_0_10": self.score, "novel": self.novel, "difficulty": self.difficulty, "tags": self.tags,
                "rationale": self.rationale, "attempts": self.attempts, "error": self.error}


class TaskJudge(Judge):
    def __init__(self, model: Model, *, temperature: float = 0.2, max_tokens: int = 200, max_attempts: int = 2,
                 input_chars: int = 600, rationale_chars: int = 200):
        # a short rationale bound keeps the whole reply inside max_tokens on grammar backends
        cfg = JudgeConfig(criteria=[SCORE], temperature=temperature, max_tokens=max_tokens,
                          max_attempts=max_attempts, retry_temperature=max(0.7, temperature),
                          rationale_max_chars=rationale_chars)
        super().__init__(model, cfg)
        self.schema = judge_schema(cfg.rationale_max_chars)
        self.input_chars = input_chars

    def messages(self, response: str, instruction: str | None = None, reference: str | None = None) -> list[dict]:
        # `instruction` carries the task and `reference` the similar tasks, as JSON (see evaluate).
        task = json.loads(instruction or "{}")
        similar = json.loads(reference or "[]")
        return judge_messages(task, response, similar, self.input_chars)

    def evaluate(self, task: dict[str, Any], answer: str, similar: list[dict[str, Any]], *, seed: int,
                 sample_id: str) -> TaskVerdict:
        view = {k: task[k] for k in ("instruction", "user_input", "category")}
        sim = [{"instruction": s["instruction"], "user_input": s["user_input"]} for s in similar]
        j = self.judge(answer, json.dumps(view, ensure_ascii=False), json.dumps(sim, ensure_ascii=False),
                       seed=seed, sample_id=sample_id)
        if not j.ok:
            return TaskVerdict(ok=False, attempts=j.attempts, error=j.error,
                               model_error="last: model error" in (j.error or ""))
        obj, _ = extract_json(j.raw)  # parsed once already by the shared judge, so it is an object
        novel = obj.get("novel") if isinstance(obj, dict) else None
        if not isinstance(novel, bool):  # the one extra field a decision rests on: no guessing
            return TaskVerdict(ok=False, score=j.overall, attempts=j.attempts,
                               error=f"malformed judgment: 'novel' is {novel!r}, not true/false")
        diff = obj.get("difficulty") if obj.get("difficulty") in DIFFICULTIES else None
        analysis = obj.get("analysis")
        rationale = analysis.strip()[:self.cfg.rationale_max_chars] if isinstance(analysis, str) else j.rationale
        raw_tags = obj.get("tags") if isinstance(obj.get("tags"), list) else []
        tags = list(dict.fromkeys(str(t).strip()[:30] for t in raw_tags
                                  if isinstance(t, (str, int, float)) and str(t).strip()))[:3]
        return TaskVerdict(ok=True, score=float(j.overall), novel=novel, difficulty=diff, tags=tags,
                           rationale=rationale, attempts=j.attempts)
