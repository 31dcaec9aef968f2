"""Shared fixtures: the tiny UNet, SD1.5's ᾱ, the committed golden data of the original pipeline."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
import torch
from diffusers.models.attention_processor import AttnProcessor
from safetensors.torch import load_file

from llmga_core.editing import Denoiser, sd15_alphas_cumprod
from tests.core.editing.tiny_models import tiny_unet, unet_eps, unet_eps_batch

GOLDEN_DIR = Path(__file__).resolve().parents[2] / "golden" / "editing"


@pytest.fixture(scope="session")
def unet() -> torch.nn.Module:
    model = tiny_unet()
    # The original's invert() switches the UNet to the plain attention processor, and the sampling keeps it.
    model.set_attn_processor(AttnProcessor())
    return model


@pytest.fixture(scope="session")
def unet64(unet: torch.nn.Module) -> torch.nn.Module:
    """The same UNet in float64: the parity tests' machine-independent reference (tests/tolerances.py)."""
    return copy.deepcopy(unet).double()


@pytest.fixture(scope="session")
def alphas() -> torch.Tensor:
    return sd15_alphas_cumprod()


@pytest.fixture(scope="session")
def single(unet: torch.nn.Module) -> Denoiser:
    """One UNet call per conditioning, like the original's inversion loop."""
    return Denoiser(unet_eps(unet))


@pytest.fixture(scope="session")
def batched(unet: torch.nn.Module) -> Denoiser:
    """All conditionings in one UNet batch, like the original's mask and sampling calls."""
    return Denoiser(unet_eps(unet), unet_eps_batch(unet))


@pytest.fixture(scope="session")
def single64(unet64: torch.nn.Module) -> Denoiser:
    return Denoiser(unet_eps(unet64))


@pytest.fixture(scope="session")
def batched64(unet64: torch.nn.Module) -> Denoiser:
    return Denoiser(unet_eps(unet64), unet_eps_batch(unet64))


class Golden:
    def __init__(self) -> None:
        info = json.loads((GOLDEN_DIR / "edit_parity.json").read_text(encoding="utf-8"))
        self.fingerprints: dict[str, float] = info["fingerprints"]
        self.configs: dict[str, dict[str, Any]] = info["configs"]
        self.tensors = load_file(str(GOLDEN_DIR / "edit_parity.safetensors"))

    def get(self, config: str, name: str, dtype: torch.dtype = torch.float32) -> torch.Tensor:
        return self.tensors[f"{config}.{name}"].to(dtype)


@pytest.fixture(scope="session")
def golden() -> Golden:
    return Golden()


def generator(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)
