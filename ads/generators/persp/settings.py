"""The perspectives pipeline's config, in the shape of the original JSON configs.

The original configs (`task_type`, `model_config`, `agent_perspectives`, `data_config`,
`add_references`, `api_provider`) load unchanged; everything this harness adds (retries,
quality checks, the judge) has a default, so a seed-style JSON file needs only `kind`.
As in every generator the models live under `models:` (`models.generator`, `models.judge`); the
seed's `model_config` is read as `models.generator`.
"""
from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from ads.config import ModelConfig, RunConfig, Strict
from ads.generators.persp.inputs import check_input_path
from ads.quality.judge import Criterion
from ads.quality.validator_specs import DistinctNCfg, LengthCfg, ValidatorSpec

Provider = Literal["auto", "local", "openai", "together", "openai_compatible"]
TEST_SAMPLES, TEST_PERSPECTIVES = 10, 4


class PerspModelConfig(Strict):
    """The seed's `model_config` (model_name, max_tokens, temperature) plus how to reach the model.

    The reaching part mirrors `ads.config.ModelConfig`, which this is converted into once the
    provider is known (see persp/provider.py).
    """

    model_name: str = "smollm2-135m"
    max_tokens: int = Field(200, ge=1)
    temperature: float = Field(0.7, ge=0)
    n_ctx: int = Field(2048, ge=256)
    n_threads: int | None = None
    base_url: str | None = None
    api_key_env: str | None = None  # default per provider: OPENAI_API_KEY / TOGETHER_API_KEY
    timeout_s: float = Field(60.0, gt=0)
    max_retries: int = Field(4, ge=0)
    max_concurrency: int = Field(2, ge=1)  # work units in flight at once (threads)
    requests_per_minute: float | None = None
    tokens_per_minute: float | None = None

    @field_validator("api_key_env")
    @classmethod
    def _env_name(cls, v: str | None) -> str | None:
        # same rule as ModelConfig: a key pasted here would end up in config.yaml
        return ModelConfig.model_validate({"api_key_env": v}).api_key_env if v is not None else v


class Perspective(Strict):
    """One agent: a label, an optional reading (preparation) step, and the response strategy.

    `strategy` and `reading` may use `{input}` (the task's context) and `strategy` may use
    `{notes}` (what the reading step wrote); where they do not, those blocks are appended.
    """

    condition: str = Field(min_length=1)
    reading: str | None = None
    strategy: str = Field(min_length=1)
    temperature: float | None = Field(None, ge=0)  # overrides model_config.temperature

    @field_validator("reading")
    @classmethod
    def _blank_is_none(cls, v: str | None) -> str | None:
        return v if v and v.strip() else None


class DataConfig(Strict):
    input_data_path: str = Field(min_length=1)  # a JSON file, or builtin:NAME (see persp/inputs.py)
    sample_size: int = Field(100, ge=1)
    shuffle: bool = True  # sample with the run seed; False takes the first sample_size items
    max_input_chars: int = Field(4000, ge=100)  # longer inputs are cut (flagged) to fit small contexts


class RetryConfig(Strict):
    """Exponential backoff with full jitter around each model call that raises ModelError."""

    max_attempts: int = Field(3, ge=1, le=10)
    base_delay_s: float = Field(0.5, ge=0)
    max_delay_s: float = Field(20.0, ge=0)


class JudgeSection(Strict):
    """Optional LLM judge scoring each accepted response against its input (0-10 per criterion)."""

    enabled: bool = False  # its model: models.judge (None: the generator's own model)
    criteria: list[Criterion] | None = None  # None: faithfulness to the input
    max_attempts: int = Field(2, ge=1, le=10)
    max_tokens: int = Field(160, ge=16)


class QualityConfig(Strict):
    """Checks on every response; a response that fails them after `max_attempts` is rejected
    (kept as null with its reasons), counted, and never crashes the run."""

    max_attempts: int = Field(2, ge=1, le=10)
    retry_temperature: float = Field(0.8, ge=0)
    # a text response cut at max_tokens: trim it back to its last complete sentence (rejected when
    # no sentence ended), keep it as it is, or reject it (retried like any failed check)
    truncated: Literal["trim", "keep", "reject"] = "trim"
    validators: list[ValidatorSpec] = Field(default_factory=lambda: [
        LengthCfg(type="length", min_words=2),
        DistinctNCfg(type="distinct_n", n=2, min=0.3, min_ngrams=8),
    ])
    # flag a response whose word 3-grams are >= this fraction from the input (copy_of_input), or that
    # is this Jaccard-similar to an earlier perspective's response on the same input (near_duplicate_of_X)
    novelty_threshold: float = Field(0.8, gt=0, le=1)
    judge: JudgeSection = JudgeSection()


class OutputFormat(Strict):
    """Structured responses: the model is constrained to `json_schema`; `field` picks the
    response text out of the object (None keeps the whole object as the response)."""

    json_schema: dict[str, Any]
    field: str | None = None

    @model_validator(mode="after")
    def _field_in_schema(self) -> "OutputFormat":
        if self.json_schema.get("type") != "object":
            raise ValueError("json_schema must describe an object ({'type': 'object', ...})")
        props = self.json_schema.get("properties") or {}
        if self.field is not None and self.field not in props:
            raise ValueError(f"field {self.field!r} is not one of the schema's properties {sorted(props)}")
        return self


class PerspModels(Strict):
    generator: PerspModelConfig = Field(default_factory=PerspModelConfig)  # the seed's `model_config`
    judge: ModelConfig | None = None  # quality.judge's model; None: the generator's own


class PerspectivesConfig(RunConfig):
    # the seed's `model_config` (and this harness's older `generator:` and `quality.judge.model`)
    LEGACY_ROLE_KEYS = {"model_config": "generator", "generator": "generator", "quality.judge.model": "judge"}

    kind: Literal["perspectives"] = "perspectives"
    name: str = "perspectives"
    task_type: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_\-]+$")
    task_description: str = Field(min_length=1)
    models: PerspModels = Field(default_factory=PerspModels)
    agent_perspectives: list[Perspective] = Field(min_length=1)
    data_config: DataConfig
    add_references: bool = False  # prepend the input's reference as a first "Reference" agent
    api_provider: Provider = "auto"
    output_format: OutputFormat | None = None  # structured responses (json_schema) instead of text
    test: bool = False  # the original --test: 10 samples, first 4 perspectives
    retry: RetryConfig = RetryConfig()
    quality: QualityConfig = QualityConfig()
    output_dir: str | None = None  # also write [task_type]_[model]_[timestamp].json here (e.g. data/agents)

    @model_validator(mode="after")
    def _input_exists(self) -> "PerspectivesConfig":
        # Checked when the config loads, so a missing file is one error before any run folder or
        # model exists. The message names the file and the format to put there.
        check_input_path(self.data_config.input_data_path, self.task_type)
        return self


def effective(cfg: PerspectivesConfig) -> tuple[list[Perspective], int]:
    """(perspectives, sample size) a run really uses: the original tool's --test means 10 samples
    whatever sample_size says, and the first 4 perspectives."""
    if cfg.test:
        return cfg.agent_perspectives[:TEST_PERSPECTIVES], TEST_SAMPLES
    return list(cfg.agent_perspectives), cfg.data_config.sample_size
