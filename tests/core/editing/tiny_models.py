"""Tiny random-weight SD1.5-shaped models for the editing parity tests (UNet, VAE, CLIP text encoder).

Weights are drawn parameter by parameter (sorted names) from one seeded generator, not by the libraries'
initialisers, so they do not change with the diffusers/transformers version; ``fingerprint`` lets a test
tell a changed fixture from a changed algorithm. The golden data in tests/golden/editing was produced by the
original LLMGA pipeline on exactly these weights (see its PROVENANCE.md). Building takes well under a second.
"""

from __future__ import annotations

from typing import Any

import torch
from diffusers import AutoencoderKL, UNet2DConditionModel

from tests.fixtures.random_init import fill_scaled_noise

CROSS_ATTENTION_DIM = 32
LATENT_SIZE = 8  # 64x64 px images
UNET_SEED = 2401
VAE_SEED = 2402
CLIP_SEED = 2403


def tiny_unet() -> UNet2DConditionModel:
    unet = UNet2DConditionModel(
        sample_size=LATENT_SIZE,
        in_channels=4,
        out_channels=4,
        block_out_channels=(32, 64),
        layers_per_block=1,
        down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
        cross_attention_dim=CROSS_ATTENTION_DIM,
        attention_head_dim=8,
    )
    fill_scaled_noise(unet, UNET_SEED)
    return unet.eval()


def tiny_vae() -> AutoencoderKL:
    """8x downsampling like SD's VAE (four blocks), 4 latent channels, very narrow."""
    vae = AutoencoderKL(
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D",) * 4,
        up_block_types=("UpDecoderBlock2D",) * 4,
        block_out_channels=(8, 8, 16, 16),
        layers_per_block=1,
        latent_channels=4,
        norm_num_groups=4,
        sample_size=LATENT_SIZE * 8,
    )
    fill_scaled_noise(vae, VAE_SEED)
    return vae.eval()


def tiny_clip() -> Any:
    """CLIP text encoder with the SD1 vocabulary and a 32-wide output (the UNet's cross-attention width)."""
    from transformers import CLIPTextConfig, CLIPTextModel

    config = CLIPTextConfig(
        vocab_size=49408,
        hidden_size=CROSS_ATTENTION_DIM,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        max_position_embeddings=77,
        hidden_act="quick_gelu",
        bos_token_id=49406,
        eos_token_id=49407,
        pad_token_id=1,
    )
    config._attn_implementation = "eager"
    model = CLIPTextModel(config)
    fill_scaled_noise(model, CLIP_SEED)
    return model.eval()


def fingerprint(model: torch.nn.Module) -> float:
    """Sum of |w| over every parameter, in float64."""
    return float(sum(p.detach().double().abs().sum() for p in model.parameters()))


def unet_eps(unet: UNet2DConditionModel):
    """Test-side denoiser: ``eps(x, t, cond)`` with ``cond`` a [1, L, 32] CLIP embedding tensor."""

    def eps(x: torch.Tensor, t: int, cond: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return unet(x, t, encoder_hidden_states=cond.expand(x.shape[0], -1, -1)).sample

    return eps


def unet_eps_batch(unet: UNet2DConditionModel):
    """Batched form: all conditionings in one UNet call (they must share a length), as CFG hosts do."""

    def eps_batch(x: torch.Tensor, t: int, conds: list[torch.Tensor]) -> list[torch.Tensor]:
        n = x.shape[0]
        hidden = torch.cat([c.expand(n, -1, -1) for c in conds])
        with torch.no_grad():
            out = unet(torch.cat([x] * len(conds)), t, encoder_hidden_states=hidden).sample
        return list(out.chunk(len(conds)))

    return eps_batch
