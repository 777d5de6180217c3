"""Shared fixtures. Real-model fixtures load each GGUF once per session."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
MODELS = ROOT / "cache" / "models"
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("WANDB_MODE", "offline")


@pytest.fixture(scope="session")
def smollm_path() -> Path:
    p = MODELS / "smollm2-135m.gguf"
    if not p.exists():
        pytest.fail(f"{p} missing: run bash setup.sh first (integration tests need the real model)")
    return p


@pytest.fixture(scope="session")
def smollm(smollm_path):
    from models.llamacpp import LlamaCppModel

    return LlamaCppModel(smollm_path, model_id="smollm2-135m", n_ctx=2048)


@pytest.fixture(scope="session")
def qwen():
    from models.llamacpp import LlamaCppModel

    p = MODELS / "qwen2.5-coder-0.5b-instruct.gguf"
    if not p.exists():
        pytest.fail(f"{p} missing: run bash setup.sh first")
    return LlamaCppModel(p, model_id="qwen2.5-coder-0.5b-instruct", n_ctx=4096)
