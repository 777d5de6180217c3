"""The tool-use run's config, and the parts it builds: the tool registry and graphs (with their
artifact files) and the conversation pipeline.

Both the generator (ads/generators/tool_use.py) and the `main.py tools` command line build these
from one config, on the driver and in every executor worker, so the code lives here once.
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Literal

from pydantic import Field

from ads.config import ConfigError, ModelConfig, RunConfig, Strict
from ads.generators.tools.conversation import DialogueSettings
from ads.generators.tools.ingest import ToolFileError
from ads.generators.tools.pipeline import Built, ToolUsePipeline, build_all
from ads.quality.validator_specs import ValidatorSpec
from ads.store import atomic_write_json

REPO_ROOT = Path(__file__).resolve().parents[3]
DEFAULT_CONFIG = REPO_ROOT / "configs" / "tool_use.yaml"
Mode = Literal["sequential", "multi_tool", "clarification_first", "parallel", "mixed"]


class ToolSources(Strict):
    paths: list[str] = ["data/toolbench"]  # files or folders of ToolBench / NESTFUL / OpenAI JSON (data/README.md)
    nestful: bool = True  # add the 39 NESTFUL RapidAPI specs shipped in the nestful-wrapper package


class ToolUseModels(Strict):
    assistant: ModelConfig = ModelConfig(name="qwen2.5-coder-0.5b-instruct", n_ctx=4096)
    user: ModelConfig | None = None  # None: the assistant's model plays the user too
    judge: ModelConfig | None = None  # None: the assistant's model judges


class ToolUseConfig(RunConfig):
    LEGACY_ROLE_KEYS = {"model": "assistant", "user_model": "user", "judge": "judge"}

    kind: Literal["tool_use"] = "tool_use"
    name: str = "tool-use"
    tools: ToolSources = ToolSources()
    models: ToolUseModels = ToolUseModels()
    n: int = Field(6, ge=1)
    mode: Mode = "mixed"
    min_steps: int = Field(2, ge=1, le=6)
    max_steps: int = Field(3, ge=1, le=6)
    candidates: int = Field(4, ge=1, le=32)  # chains proposed per conversation for steering
    corpus_memory: bool = True
    memory_k: int = Field(3, ge=1, le=50)  # steering: mean similarity to the k nearest remembered chains
    evaluate: bool = True
    threshold: float = Field(3.5, ge=1, le=5)
    max_repairs: int = Field(2, ge=0, le=5)  # design document: a surgical repair, then a full rewrite
    judge_attempts: int = Field(2, ge=1, le=5)
    max_arg_attempts: int = Field(2, ge=1, le=5)
    temperature: float = Field(0.7, ge=0)
    max_tokens: int = Field(120, ge=32)  # arguments JSON; prose turns have their own small limits
    novelty_threshold: float | None = Field(0.8, gt=0, le=1)
    use_examples: bool = False  # show a real ToolBench query to the user proxy (tiny models copy its topic)
    validators: list[ValidatorSpec] = []
    output: str | None = None  # default: <run folder>/conversations.jsonl


def build_pipeline(cfg: ToolUseConfig, built: Built, model: Any, judge_model: Any = None, user_model: Any = None,
                   embedder: Any = None) -> ToolUsePipeline:
    return ToolUsePipeline(
        built, model, judge_model=judge_model, user_model=user_model, seed=cfg.seed, mode=cfg.mode,
        min_steps=cfg.min_steps, max_steps=cfg.max_steps, candidates=cfg.candidates, corpus_memory=cfg.corpus_memory,
        embedder=embedder, evaluate=cfg.evaluate, threshold=cfg.threshold, max_repairs=cfg.max_repairs,
        novelty_threshold=cfg.novelty_threshold, validators=cfg.validators, use_examples=cfg.use_examples,
        judge_attempts=cfg.judge_attempts, memory_k=cfg.memory_k,
        settings=DialogueSettings(temperature=cfg.temperature, max_arg_attempts=cfg.max_arg_attempts,
                                  max_tokens=cfg.max_tokens))


def resolve_paths(paths: list[str]) -> list[str]:
    """A relative tool path is read from the working directory, else from the repository root,
    so the default `data/toolbench` (in this repository) works wherever the command is started."""
    out = []
    for p in paths:
        q = Path(p).expanduser()
        if not q.is_absolute() and not q.exists() and (REPO_ROOT / q).exists():
            q = REPO_ROOT / q
        out.append(str(q))
    return out


def load_built(cfg: ToolUseConfig) -> Built:
    try:
        return build_all(resolve_paths(cfg.tools.paths), cfg.tools.nestful)
    except ToolFileError as e:
        raise ConfigError(f"tool file error: {e}") from None


def write_artifacts(built: Built, out_dir: Path) -> dict[str, Any]:
    out_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_json(out_dir / "registry.json", built.reg.to_dict())
    atomic_write_json(out_dir / "heterogeneous_graph.json", built.hetero.to_dict())
    atomic_write_json(out_dir / "projected_graph.json", built.projected.to_dict())
    manifest = {"registry": built.reg.stats, "heterogeneous_graph": {"nodes": built.hetero.count_by_type(),
                                                                    "edges": len(built.hetero.edges)},
                "projected_graph": built.projected.stats(), "built_at": time.time()}
    atomic_write_json(out_dir / "build_manifest.json", manifest)
    return manifest
