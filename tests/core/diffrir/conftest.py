"""Shared fixtures: the seeded synthetic x1 network, the committed golden data, checkpoint files."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from llmga_core.diffrir import DiffRIRNet
from llmga_core.diffrir.synthetic import synthetic_network, synthetic_state_dict

GOLDEN_DIR = Path(__file__).resolve().parents[2] / "golden" / "diffrir"
WEIGHT_SEED = 20240115  # the seed the golden outputs were produced with (PROVENANCE.md)


@pytest.fixture(scope="session")
def net() -> DiffRIRNet:
    """Shared, read-only: tests must not modify it (use ``fresh_net`` to patch methods)."""
    return synthetic_network(WEIGHT_SEED)


@pytest.fixture
def fresh_net() -> DiffRIRNet:
    return synthetic_network(WEIGHT_SEED)


@pytest.fixture(scope="session")
def golden() -> dict[str, torch.Tensor]:
    return load_file(GOLDEN_DIR / "parity_x1.safetensors")


@pytest.fixture(scope="session")
def weights() -> dict[str, torch.Tensor]:
    return synthetic_state_dict(WEIGHT_SEED)


def as_float(t: torch.Tensor) -> torch.Tensor:
    return t.float() / 255.0


def case(golden: dict[str, torch.Tensor], name: str) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(generated, reference, mask) of golden case ``a`` or ``b`` as 0..1 floats."""
    return tuple(as_float(golden[f"{name}_{part}"]) for part in ("generated", "reference", "mask"))  # type: ignore[return-value]


def smooth_image(h: int, w: int, seed: int, batch: int = 1) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    yy, xx = torch.meshgrid(torch.linspace(0, 1, h), torch.linspace(0, 1, w), indexing="ij")
    out = []
    for _ in range(batch):
        ph = torch.rand(3, 3, generator=g) * 6
        base = torch.stack([0.5 + 0.3 * torch.sin(ph[i, 0] + 5 * xx * ph[i, 1] + 3 * yy * ph[i, 2]) for i in range(3)])
        out.append((base + 0.05 * torch.randn(3, h, w, generator=g)).clamp(0, 1))
    return torch.stack(out)


def box_mask(h: int, w: int, y0: int, y1: int, x0: int, x1: int) -> torch.Tensor:
    m = torch.zeros(1, 1, h, w)
    m[..., y0:y1, x0:x1] = 1.0
    return m
