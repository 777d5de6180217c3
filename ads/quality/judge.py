"""An LLM judge: integer scores 0-10 per rubric criterion plus a short rationale, as JSON.

The judge talks to any `models.base.Model` (llama-cpp GGUF, OpenAI-compatible server, fake)
and asks for JSON through `json_schema=`, which grammar-capable backends enforce. It still
parses defensively, because servers without grammars, truncated outputs (max_tokens) and
bounds that grammars do not enforce all happen:

* an unparseable reply (no JSON, a missing criterion, a non-numeric score) is retried with a
  different `sample_id`, at `retry_temperature` (at temperature 0 a llama.cpp backend would
  repeat the same greedy text whatever the sample id), up to `max_attempts` in all;
* a score outside 0-10 is clamped (and the criterion listed in `Judgment.clamped`);
* when every attempt fails, or the backend raises `ModelError`, the result is a failed
  `Judgment` (`ok=False`, `error` says why) and the failure is counted, never raised.

The rubric comes from YAML (`criteria: [{name, description, weight}]`); `overall` is the
weighted mean of the criterion scores, on the same 0-10 scale.
"""
from __future__ import annotations

import math
import threading
from dataclasses import asdict, dataclass, field
from typing import Any, Mapping

from pydantic import Field, field_validator

from ads.config import Strict, validate
from models.base import Model, ModelError
from models.structured import extract_json

SCORE_MIN, SCORE_MAX = 0, 10


class Criterion(Strict):
    name: str = Field(pattern=r"^[a-z][a-z0-9_]{0,39}$")
    description: str = Field(min_length=1)
    weight: float = Field(1.0, gt=0)


DEFAULT_CRITERIA = [
    Criterion(name="correctness", description="The response is factually and logically correct for the instruction."),
    Criterion(name="helpfulness", description="The response does what the instruction asks, completely and directly."),
    Criterion(name="clarity", description="The response is clear, well organised and free of repetition."),
]
FAITHFULNESS_CRITERIA = [
    Criterion(name="faithfulness",
              description="Every statement in the response is supported by the reference; nothing contradicts it "
                          "and nothing is invented. 10 = fully supported, 0 = contradicts or fabricates."),
]


class JudgeConfig(Strict):
    """The `judge_rubric:`-style YAML block. Model choice lives in the run's ModelConfig."""

    criteria: list[Criterion] = Field(default_factory=lambda: list(DEFAULT_CRITERIA), min_length=1)
    max_attempts: int = Field(3, ge=1, le=10)
    max_tokens: int = Field(256, ge=16)
    temperature: float = Field(0.0, ge=0)
    retry_temperature: float = Field(0.7, ge=0)
    rationale_max_chars: int = Field(400, ge=20)
    max_input_chars: int = Field(3000, ge=100)  # per field, so prompts fit small context windows

    @field_validator("criteria")
    @classmethod
    def _unique(cls, v: list[Criterion]) -> list[Criterion]:
        names = [c.name for c in v]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise ValueError(f"criterion names must be unique, repeated: {dup}")
        return v


@dataclass
class Judgment:
    ok: bool
    scores: dict[str, int] = field(default_factory=dict)
    overall: float | None = None
    rationale: str = ""
    attempts: int = 0
    error: str | None = None
    clamped: list[str] = field(default_factory=list)
    raw: str = ""

    def passed(self, min_score: float, criterion: str | None = None) -> bool:
        if not self.ok:
            return False
        value = self.overall if criterion is None else self.scores.get(criterion)
        return value is not None and value >= min_score

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def judgment_schema(criteria: list[Criterion], rationale_max_chars: int = 400) -> dict[str, Any]:
    """Rationale first (the model explains, then scores), then one bounded integer per criterion."""
    score = {"type": "integer", "minimum": SCORE_MIN, "maximum": SCORE_MAX}
    return {
        "type": "object",
        "properties": {
            "rationale": {"type": "string", "maxLength": rationale_max_chars},
            "scores": {"type": "object", "properties": {c.name: dict(score) for c in criteria},
                       "required": [c.name for c in criteria], "additionalProperties": False},
        },
        "required": ["rationale", "scores"],
        "additionalProperties": False,
    }


def _as_score(v: Any) -> float | None:
    if isinstance(v, bool):
        return None
    if isinstance(v, str):
        try:
            v = float(v.strip())
        except ValueError:
            return None
    if isinstance(v, (int, float)) and math.isfinite(v):
        return float(v)
    return None


def parse_judgment(text: str, criteria: list[Criterion]) -> tuple[dict[str, int], str, list[str], str | None]:
    """(scores, rationale, clamped criteria, error). Lenient about shape, strict about content:
    scores may sit under "scores" or at the top level and may be numeric strings or floats
    (rounded); every criterion must have one."""
    obj, err = extract_json(text)
    if err is not None:
        return {}, "", [], err
    if not isinstance(obj, dict):
        return {}, "", [], f"expected a JSON object, got {type(obj).__name__}"
    box = obj.get("scores") if isinstance(obj.get("scores"), dict) else obj
    scores: dict[str, int] = {}
    clamped: list[str] = []
    for c in criteria:
        if c.name not in box:
            return {}, "", [], f"no score for criterion '{c.name}'"
        v = _as_score(box[c.name])
        if v is None:
            return {}, "", [], f"score for '{c.name}' is not a number: {str(box[c.name])[:40]!r}"
        s = int(round(v))
        if s < SCORE_MIN or s > SCORE_MAX:
            clamped.append(c.name)
            s = min(SCORE_MAX, max(SCORE_MIN, s))
        scores[c.name] = s
    rationale = obj.get("rationale")
    return scores, rationale.strip() if isinstance(rationale, str) else "", clamped, None


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[:limit] + " [...]"


class Judge:
    def __init__(self, model: Model, config: JudgeConfig | Mapping[str, Any] | None = None, *,
                 criteria: list[Criterion] | None = None, source: str = "judge"):
        if config is None:
            config = JudgeConfig()
        elif not isinstance(config, JudgeConfig):
            config = validate(JudgeConfig, dict(config), source)
        if criteria is not None:
            config = config.model_copy(update={"criteria": list(criteria)})
        self.model, self.cfg = model, config
        self.criteria = list(config.criteria)
        self.schema = judgment_schema(self.criteria, config.rationale_max_chars)
        self._lock = threading.Lock()
        self.counts = {"judgments": 0, "ok": 0, "failures": 0, "retries": 0, "clamped": 0, "model_errors": 0}

    def messages(self, response: str, instruction: str | None = None, reference: str | None = None) -> list[dict]:
        lim = self.cfg.max_input_chars
        rubric = "\n".join(f"- {c.name}: {c.description}" for c in self.criteria)
        example = ", ".join(f'"{c.name}": <0-10>' for c in self.criteria)
        system = ("You are a strict, fair evaluator. Score the RESPONSE on each criterion with an integer from "
                  "0 (very poor) to 10 (excellent).\nCriteria:\n" + rubric +
                  "\nReply with JSON only: {\"rationale\": \"<one or two sentences>\", \"scores\": {" + example + "}}")
        parts = []
        if instruction:
            parts.append(f"INSTRUCTION:\n{_cut(instruction, lim)}")
        if reference:
            parts.append(f"REFERENCE:\n{_cut(reference, lim)}")
        parts.append(f"RESPONSE:\n{_cut(response, lim)}")
        return [{"role": "system", "content": system}, {"role": "user", "content": "\n\n".join(parts)}]

    def judge(self, response: str, instruction: str | None = None, reference: str | None = None, *,
              seed: int = 0, sample_id: int | str = "judge") -> Judgment:
        msgs = self.messages(response, instruction, reference)
        last_err, raw = "no attempt made", ""
        model_errors = 0
        for attempt in range(self.cfg.max_attempts):
            sid = sample_id if attempt == 0 else f"{sample_id}:retry{attempt}"
            temp = self.cfg.temperature if attempt == 0 else self.cfg.retry_temperature
            try:
                out = self.model.generate(msgs, max_tokens=self.cfg.max_tokens, temperature=temp, seed=seed,
                                          sample_id=sid, json_schema=self.schema)
            except ModelError as e:  # a FatalModelError is not one: a failing judge endpoint ends the run
                last_err, model_errors = f"model error: {e}", model_errors + 1
                continue
            raw = out.text
            scores, rationale, clamped, err = parse_judgment(raw, self.criteria)
            if err is None:
                total_w = sum(c.weight for c in self.criteria)
                overall = sum(scores[c.name] * c.weight for c in self.criteria) / total_w
                self._count(ok=True, retries=attempt, clamped=len(clamped), model_errors=model_errors)
                rationale = rationale[:self.cfg.rationale_max_chars]  # backends without grammars ignore maxLength
                return Judgment(ok=True, scores=scores, overall=round(overall, 4), rationale=rationale,
                                attempts=attempt + 1, clamped=clamped, raw=raw)
            last_err = f"unparseable judgment: {err}"
            if out.finish_reason == "length":
                last_err += f" (output cut at max_tokens={self.cfg.max_tokens})"
        self._count(ok=False, retries=self.cfg.max_attempts - 1, clamped=0, model_errors=model_errors)
        return Judgment(ok=False, attempts=self.cfg.max_attempts,
                        error=f"judge failed after {self.cfg.max_attempts} attempts; last: {last_err}", raw=raw)

    def _count(self, *, ok: bool, retries: int, clamped: int, model_errors: int) -> None:
        with self._lock:
            c = self.counts
            c["judgments"] += 1
            c["ok" if ok else "failures"] += 1
            c["retries"] += retries
            c["clamped"] += clamped
            c["model_errors"] += model_errors

    def stats(self) -> dict[str, int]:
        with self._lock:
            return dict(self.counts)
