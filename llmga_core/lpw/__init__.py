"""LLMGA's long-prompt-weighting (LPW) CLIP conditioning, independent of the host.

``parser`` reads the A1111 attention syntax, ``tokens`` turns prompts into content ids, ``layouts`` does
the chunk arithmetic, ``encode`` runs a per-chunk encoder callable over the layouts.
"""

from __future__ import annotations

from .encode import (
    Batched,
    ChunkEncoder,
    LPWConditioning,
    PairEncoder,
    encode_sd15,
    encode_sd15_training,
    encode_sdxl,
    hf_clip_encoder,
    pair_encoders,
    renormalised_weighting,
)
from .layouts import (
    CHUNK_BODY,
    CHUNK_LENGTH,
    CLIP_G_TOKENS,
    CLIP_L_TOKENS,
    SD15_T2I_MAX_CHUNKS,
    SD15_TRAINING_MAX_CHUNKS,
    SDXL_MAX_CHUNKS,
    SpecialTokens,
)
from .parser import parse_attention
from .tokens import PromptTokens, Tokenize, hf_tokenize, plain_tokens, weighted_tokens

__all__ = [
    "CHUNK_BODY",
    "CHUNK_LENGTH",
    "CLIP_G_TOKENS",
    "CLIP_L_TOKENS",
    "SD15_T2I_MAX_CHUNKS",
    "SD15_TRAINING_MAX_CHUNKS",
    "SDXL_MAX_CHUNKS",
    "Batched",
    "ChunkEncoder",
    "LPWConditioning",
    "PairEncoder",
    "PromptTokens",
    "SpecialTokens",
    "Tokenize",
    "encode_sd15",
    "encode_sd15_training",
    "encode_sdxl",
    "hf_clip_encoder",
    "hf_tokenize",
    "pair_encoders",
    "parse_attention",
    "plain_tokens",
    "renormalised_weighting",
    "weighted_tokens",
]
