"""One work unit = one input seen from one perspective: optional reading step, then the strategy.

The reading (preparation) call runs first and its notes are handed to the strategy call.
Every model call goes through `call_with_backoff` (exponential backoff with jitter on
ModelError); every response goes through the structured-output parse (when the task has a
schema) and the shared ValidatorSuite, and is retried with a fresh sample at
`retry_temperature` up to `quality.max_attempts`. A unit whose response never passes is
*rejected* (kept, null response, reasons listed); a unit whose model calls keep failing is
*failed* (not stored, so `--resume` tries it again). Nothing here raises on bad output.
"""
from __future__ import annotations

import json
import random
import re
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable

from ads.generators.persp.settings import OutputFormat, Perspective, QualityConfig, RetryConfig
from ads.generators.persp.inputs import TaskInput
from ads.quality import Judge, ValidatorSuite
from models.base import Completion, Message, Model, ModelError, approx_tokens
from models.structured import parse_json


class UnitFailed(Exception):
    """Model calls for a unit failed on every retry; the unit is left for a resumed run."""


def unit_id(task_id: str, p_idx: int) -> str:
    return f"{task_id}-p{p_idx:02d}"


# --- prompts -------------------------------------------------------------------------------------
def _fill(template: str, **values: str) -> tuple[str, set[str]]:
    """Replace {input}/{notes} where present, in one pass (other braces are left alone, and a
    placeholder inside the substituted text is not expanded); report which were used."""
    used: set[str] = set()

    def sub(m: re.Match[str]) -> str:
        used.add(m.group(1))
        return values[m.group(1)]

    pattern = re.compile(r"\{(" + "|".join(map(re.escape, values)) + r")\}")
    return pattern.sub(sub, template), used


def system_prompt(task_description: str) -> str:
    return (f"{task_description.strip()}\nFollow the instruction exactly. Reply with the requested output only, "
            f"no preamble.")


def reading_messages(task_description: str, p: Perspective, task: TaskInput) -> list[Message]:
    text, used = _fill(p.reading or "", input=task.input)
    if "input" not in used:
        text = f"{text.strip()}\n\nINPUT:\n{task.input}"
    return [{"role": "system", "content": system_prompt(task_description)}, {"role": "user", "content": text}]


def strategy_messages(task_description: str, p: Perspective, task: TaskInput, notes: str | None) -> list[Message]:
    text, used = _fill(p.strategy, input=task.input, notes=notes or "")
    if "input" not in used:
        text = f"{text.strip()}\n\nINPUT:\n{task.input}"
    if notes is not None and "notes" not in used:
        text = f"{text}\n\nYOUR NOTES FROM READING IT:\n{notes.strip()}"
    return [{"role": "system", "content": system_prompt(task_description)}, {"role": "user", "content": text}]


# --- token estimation ----------------------------------------------------------------------------
class TokenCounter:
    """Prompt tokens as the model will see them: the GGUF's own chat template rendered and
    tokenized by llama.cpp when available (exact for llama-cpp models), else the backend's
    `count_tokens` plus a per-message allowance, else ~4 characters a token."""

    PER_MESSAGE = 5  # role markers of ChatML-style templates; used only without a template

    def __init__(self, model: Any):
        self.method = "approx (4 chars/token)"
        self._render: Callable[[list[Message]], str] | None = None
        self._count: Callable[[str], int] | None = None
        llm = _find_attr(model, "llm")
        if llm is not None and hasattr(llm, "tokenize"):
            self._count = lambda s: len(llm.tokenize(s.encode("utf-8"), add_bos=False, special=True))
            self.method = "model tokenizer (llama.cpp)"
            template = (getattr(llm, "metadata", None) or {}).get("tokenizer.chat_template")
            if template:
                try:
                    from llama_cpp.llama_chat_format import Jinja2ChatFormatter

                    fmt = Jinja2ChatFormatter(template=template, eos_token=llm._model.token_get_text(llm.token_eos()),
                                              bos_token=llm._model.token_get_text(llm.token_bos()),
                                              add_generation_prompt=True)
                    self._render = lambda msgs: fmt(messages=msgs).prompt
                    self.method = "model tokenizer + chat template (llama.cpp)"
                except Exception:  # an exotic template: fall back to content + allowance
                    self._render = None
        elif callable(_find_attr(model, "count_tokens")):
            self._count = _find_attr(model, "count_tokens")
            self.method = "model tokenizer (count_tokens)"

    def prompt_tokens(self, messages: list[Message]) -> int:
        if self._render is not None and self._count is not None:
            try:
                return self._count(self._render(messages))
            except Exception:  # a template that rejects these messages (e.g. no system role)
                self._render = None
                self.method = "model tokenizer (llama.cpp), per-message allowance"
        if self._count is not None:
            return sum(self._count(m["content"]) + self.PER_MESSAGE for m in messages) + 3
        return sum(approx_tokens(m["content"]) + self.PER_MESSAGE for m in messages) + 3


def _find_attr(model: Any, name: str) -> Any:
    """Look through wrappers (ledger -> cache -> backend) without triggering FakeModel errors."""
    node, seen = model, 0
    while node is not None and seen < 6:
        if name in getattr(node, "__dict__", {}):
            return node.__dict__[name]
        if hasattr(type(node), name):
            return getattr(node, name)
        node, seen = node.__dict__.get("inner") if hasattr(node, "__dict__") else None, seen + 1
    return None


def estimate_tokens(counter: TokenCounter, task_description: str, perspectives: list[Perspective],
                    tasks: list[TaskInput], max_tokens: int, n_ctx: int | None) -> dict[str, Any]:
    """Token budget before generation. Reading notes are not known yet, so the strategy prompt of a
    perspective with a reading step counts `max_tokens` of notes: the figures are upper bounds
    for completions and for those prompts, exact for the rest."""
    prompt = calls = over = 0
    per_persp: dict[str, int] = {}
    placeholder = " ".join(["note"] * max_tokens)  # ~1 token per word
    for p in perspectives:
        n = 0
        for t in tasks:
            if p.reading:
                n += counter.prompt_tokens(reading_messages(task_description, p, t))
                calls += 1
            s = counter.prompt_tokens(strategy_messages(task_description, p, t, placeholder if p.reading else None))
            n += s
            calls += 1
            if n_ctx is not None and s + max_tokens > n_ctx:
                over += 1
        per_persp[p.condition] = n
        prompt += n
    return {"method": counter.method, "calls": calls, "prompt_tokens": prompt,
            "max_completion_tokens": calls * max_tokens, "total_tokens_upper_bound": prompt + calls * max_tokens,
            "prompt_tokens_by_perspective": per_persp, "units_over_context": over, "n_ctx": n_ctx}


def computed_prompt_tokens(c: Completion) -> int:
    """Prompt tokens the request took when it was computed (a cache hit reports 0 but keeps the original)."""
    if c.cached:
        return int((c.meta.get("original_usage") or (0, 0))[0])
    return c.prompt_tokens


_SENT_END = re.compile(r"[.!?\u3002](?:[\"')\]]*)(?=\s|$)")


def trim_to_sentence(text: str) -> str | None:
    """Text cut at max_tokens, trimmed back to its last complete sentence (None if none ended)."""
    ends = [m.end() for m in _SENT_END.finditer(text)]
    return text[:ends[-1]].strip() if ends else None


# --- calls ---------------------------------------------------------------------------------------
def backoff_delay(attempt: int, retry: RetryConfig, rng: random.Random) -> float:
    """attempt 0,1,2... -> a delay in [cap/2, cap] with cap = min(max, base * 2**attempt)."""
    cap = min(retry.max_delay_s, retry.base_delay_s * (2 ** attempt))
    return cap / 2 + rng.uniform(0, cap / 2)


@dataclass
class Usage:
    calls: int = 0
    cached_calls: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    replayed_tokens: int = 0
    model_errors: int = 0

    def add(self, c: Completion) -> None:
        self.calls += 1
        self.cached_calls += int(c.cached)
        self.prompt_tokens += c.prompt_tokens
        self.completion_tokens += c.completion_tokens
        if c.cached:
            self.replayed_tokens += sum(c.meta.get("original_usage", (0, 0)))


@dataclass
class Engine:
    model: Model
    task_description: str
    perspectives: list[Perspective]
    max_tokens: int
    temperature: float
    seed: int
    retry: RetryConfig
    quality: QualityConfig
    suite: ValidatorSuite | None = None
    judge: Judge | None = None
    output: OutputFormat | None = None
    sleep: Callable[[float], None] = time.sleep
    _rng: random.Random = field(default_factory=lambda: random.Random(0))
    _lock: threading.Lock = field(default_factory=threading.Lock)
    backoff_sleeps: list[float] = field(default_factory=list)
    # the backend retries transient failures itself (HTTP client): one attempt here, one retry layer
    client_retries: bool = False

    def call(self, messages: list[Message], usage: Usage, *, sample_id: str, temperature: float,
             json_schema: dict[str, Any] | None = None) -> Completion:
        last: Exception | None = None
        attempts = 1 if self.client_retries else self.retry.max_attempts
        for attempt in range(attempts):
            try:
                out = self.model.generate(messages, max_tokens=self.max_tokens, temperature=temperature,
                                          seed=self.seed, sample_id=sample_id, json_schema=json_schema)
                usage.add(out)
                return out
            except ModelError as e:
                usage.model_errors += 1
                last = e
                if attempt + 1 < attempts:
                    with self._lock:
                        delay = backoff_delay(attempt, self.retry, self._rng)
                        self.backoff_sleeps.append(delay)
                    self.sleep(delay)
        layer = " (after the client's own retries)" if self.client_retries else ""
        raise UnitFailed(f"model call failed {attempts} time(s){layer}; last error: {last}")

    def _parse(self, text: str, finish_reason: str | None = None) -> tuple[Any, str | None, bool]:
        """(value, rejection reason or None, trimmed?) for one completion."""
        if self.output is None:
            cleaned = text.strip().strip('"').strip()
            trimmed = False
            if finish_reason == "length" and cleaned:
                if self.quality.truncated == "reject":
                    return None, "cut at max_tokens", False
                if self.quality.truncated == "trim":
                    cut = trim_to_sentence(cleaned)
                    if cut is None:
                        return None, "cut at max_tokens before the first sentence ended", False
                    cleaned, trimmed = cut, cut != cleaned
            return cleaned, None if cleaned else "empty response", trimmed
        obj, err = parse_json(text, self.output.json_schema)
        if err is not None:
            return None, f"malformed structured output: {err}", False
        if self.output.field is None:
            return obj, None, False
        value = obj.get(self.output.field)
        if not isinstance(value, str) or not value.strip():
            return None, f"malformed structured output: field {self.output.field!r} is empty or not a string", False
        return value.strip(), None, False

    def run_unit(self, task: TaskInput, p_idx: int) -> dict[str, Any]:
        p = self.perspectives[p_idx]
        uid = unit_id(task.id, p_idx)
        usage = Usage()
        t0 = time.perf_counter()
        temperature = self.temperature if p.temperature is None else p.temperature
        notes = None
        first_pass = 0  # prompt tokens of the reading call + the first strategy call (what estimate_tokens predicts)
        if p.reading:
            c = self.call(reading_messages(self.task_description, p, task), usage, sample_id=f"{uid}:reading",
                          temperature=temperature)
            first_pass += computed_prompt_tokens(c)
            notes = c.text.strip()
        msgs = strategy_messages(self.task_description, p, task, notes)
        schema = self.output.json_schema if self.output else None
        reasons: list[str] = []
        response: Any = None
        validation: dict[str, Any] | None = None
        finish = None
        attempts = 0
        trimmed = False
        for attempt in range(self.quality.max_attempts):
            attempts = attempt + 1
            temp = temperature if attempt == 0 else self.quality.retry_temperature
            sid = uid if attempt == 0 else f"{uid}:retry{attempt}"
            c = self.call(msgs, usage, sample_id=sid, temperature=temp, json_schema=schema)
            if attempt == 0:
                first_pass += computed_prompt_tokens(c)
            finish = c.finish_reason
            value, err, trimmed = self._parse(c.text, c.finish_reason)
            if err is not None:
                reasons.append(err + (" (cut at max_tokens)" if c.finish_reason == "length" and "max_tokens" not in err
                                      else ""))
                continue
            text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
            if self.suite is not None:
                res = self.suite.run({"text": text, "source": task.input, "reference": task.reference or ""},
                                     item_id=f"{uid}:{attempt}")
                validation = res.to_dict()
                if not res.passed:
                    reasons.append("; ".join(f"{k}: {v}" for k, v in res.reasons.items()))
                    continue
            response = value
            break
        status = "ok" if response is not None else "rejected"
        judgment = None
        if response is not None and self.judge is not None:
            text = response if isinstance(response, str) else json.dumps(response, ensure_ascii=False)
            j = self.judge.judge(text, instruction=self.task_description, reference=task.input, seed=self.seed,
                                 sample_id=f"{uid}:judge")
            judgment = {k: v for k, v in j.to_dict().items() if k != "raw"}
        return {
            "id": uid, "task_id": task.id, "perspective": p_idx, "condition": p.condition, "input_sha": task.sha,
            "status": status, "preparation": notes, "response": response, "attempts": attempts, "reasons": reasons,
            "validation": validation, "judge": judgment, "finish_reason": finish, "trimmed": trimmed,
            "usage": {**usage.__dict__, "first_pass_prompt_tokens": first_pass},
            "wall_s": round(time.perf_counter() - t0, 3),
        }
