"""Tiny random-weight CLIP text encoders and the real CLIP tokenizer for the LPW tests.

The weights are drawn parameter by parameter (sorted names) from one seeded generator rather than by
transformers' initialisers, so they do not depend on the transformers version; ``fingerprint`` lets
the parity tests tell a changed fixture from a changed algorithm. Building takes well under a second,
so nothing is cached.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch
from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection, CLIPTokenizer

from tests.fixtures.random_init import fill_scaled_noise

REPO_ROOT = Path(__file__).resolve().parents[3]
TOKENIZER_DIR = Path(
    os.environ.get("LLMGA_SD1_TOKENIZER", REPO_ROOT / ".cache" / "host" / "ComfyUI" / "comfy" / "sd1_tokenizer")
)

# Small on purpose: the committed golden embeddings scale with the hidden size.
CLIP_L_SHAPE = {"hidden_size": 16, "intermediate_size": 32, "num_attention_heads": 2, "seed": 1501}
CLIP_G_SHAPE = {"hidden_size": 20, "intermediate_size": 40, "num_attention_heads": 2, "seed": 1502}


def _config(hidden_size: int, intermediate_size: int, num_attention_heads: int) -> CLIPTextConfig:
    config = CLIPTextConfig(
        vocab_size=49408,
        hidden_size=hidden_size,
        intermediate_size=intermediate_size,
        num_hidden_layers=3,
        num_attention_heads=num_attention_heads,
        max_position_embeddings=77,
        projection_dim=hidden_size + 4,
        hidden_act="quick_gelu",
        bos_token_id=49406,
        eos_token_id=49407,
        pad_token_id=1,
    )
    config._attn_implementation = "eager"
    return config


def _build(model_class: type, shape: dict[str, int]) -> torch.nn.Module:
    config = _config(shape["hidden_size"], shape["intermediate_size"], shape["num_attention_heads"])
    model = model_class(config)
    fill_scaled_noise(model, shape["seed"])
    return model.eval()


def tiny_clip_l() -> CLIPTextModel:
    """SD1.5 text encoder / SDXL ``text_encoder`` stand-in."""
    return _build(CLIPTextModel, CLIP_L_SHAPE)


def tiny_clip_g() -> CLIPTextModelWithProjection:
    """SDXL ``text_encoder_2`` stand-in (projected pooled output)."""
    return _build(CLIPTextModelWithProjection, CLIP_G_SHAPE)


def fingerprint(model: torch.nn.Module) -> float:
    """Sum of |w| over every parameter, in float64."""
    return float(sum(p.detach().double().abs().sum() for p in model.parameters()))


def load_tokenizer(pad: str | None = None) -> CLIPTokenizer:
    """ComfyUI's bundled SD1 CLIP tokenizer with the SD folders' 77-token length.

    ``pad="!"`` gives SDXL's second tokenizer (same vocabulary, pads with id 0).
    """
    if not (TOKENIZER_DIR / "vocab.json").is_file():
        pytest.skip(f"CLIP tokenizer files not found in {TOKENIZER_DIR} (run scripts/setup_host.sh)")
    kwargs: dict[str, object] = {"model_max_length": 77}
    if pad is not None:
        kwargs["pad_token"] = pad
    return CLIPTokenizer.from_pretrained(str(TOKENIZER_DIR), **kwargs)
