"""The self-evolving benchmark's YAML keys, checked (`kind: self_evolving`).

Every knob of the loop lives here so that `--set KEY=VALUE`, the flag command line
(command_line.py) and a config file all reach the same validated object; the comments say
why a default is what it is.
"""
from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, model_validator

from ads.config import ModelConfig, RunConfig, Strict
from ads.quality.validator_specs import DistinctNCfg, LengthCfg, ValidatorSpec

__all__ = ["SeedsConfig", "SelfEvolvingConfig"]


class SeedsConfig(Strict):
    real: bool = True  # seeds cut from GSM8K and Wikipedia (ads.gold_tasks); see evolve/seeds.py
    per_category: int = Field(3, ge=1, le=50)
    path: str | None = None  # optional JSONL of extra seeds (instruction, user_input, category, ...)


def _default_validators() -> list[Any]:
    """Free checks before any answer is paid for: small models stuck in a loop repeat one
    phrase until max_tokens, and sometimes write a fragment ("Example 1, 2: {") as the
    instruction."""
    return [LengthCfg(type="length", name="instruction_min_words", field="instruction", min_words=4),
            DistinctNCfg(type="distinct_n", name="input_not_looping", field="user_input", n=2, min=0.5),
            DistinctNCfg(type="distinct_n", name="instruction_not_looping", field="instruction", n=2, min=0.5)]


class EvolveModels(Strict):
    generator: ModelConfig = ModelConfig()
    answerer: ModelConfig | None = None  # None: the generator's model
    judge: ModelConfig | None = None  # None: the generator's model


class SelfEvolvingConfig(RunConfig):
    LEGACY_ROLE_KEYS = {"generator": "generator", "answerer": "answerer", "judge": "judge"}

    kind: Literal["self_evolving"] = "self_evolving"
    name: str = "self-evolving"
    models: EvolveModels = EvolveModels()
    # the knobs of the loop (all settable with --set KEY=VALUE)
    accept_target: int = Field(50, ge=1)
    max_attempts: int = Field(400, ge=1)
    min_score: float = Field(6.5, ge=0, le=10)
    # reject when the judge says novel=false. Very small judges can be biased to one answer
    # (Qwen2.5-0.5B said false on every task in our runs): with false, its verdict is still
    # recorded in the item and the log, and novelty rests on the two shingle filters.
    judge_novelty_veto: bool = True
    ema_alpha: float = Field(0.1, gt=0, le=1)
    sim_threshold: float = Field(0.70, gt=0, le=1)
    shingle_k: int = Field(5, ge=1)
    # Self-Instruct's own filter: a new instruction must differ from every pooled one (the
    # paper uses ROUGE-L 0.7; here 3-word shingle Jaccard), else it is the same task with new
    # data. Checked before the answer is paid for. None: off.
    instruction_sim_threshold: float | None = Field(0.7, gt=0, le=1)
    instruction_shingle_k: int = Field(3, ge=1)
    novelty_method: Literal["exact", "minhash"] = "exact"
    demo_k: int = Field(4, ge=0, le=12)
    gen_temp: float = Field(0.9, ge=0)
    ans_temp: float = Field(0.3, ge=0)
    judge_temp: float = Field(0.2, ge=0)
    gen_max_tokens: int = Field(320, ge=32)
    # length bounds in the task schema; keep them inside gen_max_tokens (about 2.5-4 chars a
    # token), or long replies are cut before the JSON closes and count as malformed
    instruction_max_chars: int = Field(240, ge=20, le=4000)
    input_max_chars: int = Field(480, ge=20, le=8000)
    ans_max_tokens: int = Field(192, ge=8)
    judge_max_tokens: int = Field(200, ge=32)
    judge_attempts: int = Field(2, ge=1, le=5)
    judge_rationale_chars: int = Field(200, ge=20, le=2000)  # bound in the judge schema (fits judge_max_tokens)
    similar_k: int = Field(3, ge=0, le=10)  # nearest pool tasks shown to the judge
    category_power: float = Field(1.0, ge=0)
    hard_above: float = Field(8.0, ge=0, le=10)  # category EMA at/above this: ask for hard tasks
    easy_below: float | None = Field(None, ge=0, le=10)  # below this: easy; None = min_score + 1
    easy_accept_below: float = Field(0.2, ge=0, le=1)  # category acceptance EMA below this: easy
    round_size: int = Field(10, ge=1)  # attempts per round in logs and plots
    categories: list[str] | None = None  # None: the seed pool's categories
    seeds: SeedsConfig = SeedsConfig()
    validators: list[ValidatorSpec] = Field(default_factory=_default_validators)
    benchmark_path: str | None = None  # None: <run dir>/benchmark.jsonl
    runlog_path: str | None = None  # None: <run dir>/run_logs.jsonl

    @model_validator(mode="after")
    def _check(self) -> "SelfEvolvingConfig":
        if self.accept_target > self.max_attempts:
            raise ValueError(f"accept_target ({self.accept_target}) cannot exceed max_attempts ({self.max_attempts})")
        if not self.seeds.real and not self.seeds.path:
            raise ValueError("seeds: with real: false, give seeds.path (a JSONL of seed tasks)")
        if (self.benchmark_path is None) != (self.runlog_path is None):
            raise ValueError("benchmark_path and runlog_path go together (both set or both null): the event log "
                             "is what makes the benchmark resumable")
        return self
