"""Shared fixtures: the real CLIP tokenizer, the tiny encoders and the committed golden data."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors.torch import load_file

from llmga_core.lpw import ChunkEncoder, PairEncoder, Tokenize, hf_clip_encoder, hf_tokenize, pair_encoders
from tests.core.lpw.tiny_clip import load_tokenizer, tiny_clip_g, tiny_clip_l

GOLDEN_DIR = Path(__file__).resolve().parents[2] / "golden" / "lpw"


@pytest.fixture(scope="session")
def tokenize() -> Tokenize:
    return hf_tokenize(load_tokenizer())


@pytest.fixture(scope="session")
def tokenize_g() -> Tokenize:
    return hf_tokenize(load_tokenizer(pad="!"))


@pytest.fixture(scope="session")
def clip_l() -> torch.nn.Module:
    return tiny_clip_l()


@pytest.fixture(scope="session")
def clip_g() -> torch.nn.Module:
    return tiny_clip_g()


@pytest.fixture(scope="session")
def encode_last(clip_l: torch.nn.Module) -> ChunkEncoder:
    """SD1.5: last layer after the final layer norm."""
    return hf_clip_encoder(clip_l)


@pytest.fixture(scope="session")
def encode_xl(clip_l: torch.nn.Module, clip_g: torch.nn.Module) -> PairEncoder:
    """SDXL: both penultimate layers, CLIP-G projected pooled."""
    return pair_encoders(hf_clip_encoder(clip_l, -2), hf_clip_encoder(clip_g, -2))


@pytest.fixture(scope="session")
def golden() -> dict[str, Any]:
    with open(GOLDEN_DIR / "lpw_parity.json", encoding="utf-8") as f:
        data = json.load(f)
    data["tensors"] = load_file(str(GOLDEN_DIR / "lpw_parity.safetensors"))
    return data
