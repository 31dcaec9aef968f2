"""Chunk layouts of LLMGA's long-prompt CLIP encoding (pure token arithmetic, no model).

A prompt of ``n`` content tokens uses ``m = clamp(ceil(n / 75), 1, max_chunks)`` chunks. The padded id
sequence is ``[BOS] + tokens + [PAD] * (75m - n) + [EOS]`` (the EOS comes only after the padding), and
chunk ``i`` is the 77-token window starting at ``75 i`` with its first id forced to BOS and its last
to EOS, so every chunk reads ``BOS + 75 tokens + EOS``.

Two ways to join the chunk outputs:

- ``join_full``: every chunk's 77 outputs (``77m`` tokens): SD1.5 inference pipelines;
- ``join_trimmed``: interior BOS/EOS outputs dropped (``75m + 2`` tokens): SD1.5 training and SDXL.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from ..errors import LLMGAInputError

CHUNK_LENGTH = 77
CHUNK_BODY = CHUNK_LENGTH - 2

# Default chunk caps of the original call sites.
SD15_T2I_MAX_CHUNKS = 3  # diffusers community ``lpw_stable_diffusion`` (LLMGA's SD1.5 T2I CLIs)
SD15_TRAINING_MAX_CHUNKS = 4  # ``get_text_index`` default, used by SD1.5 fine-tuning
SDXL_MAX_CHUNKS = 4  # ``get_text_index`` default, used by SDXL inference and training


@dataclass(frozen=True)
class SpecialTokens:
    """Ids a tokenizer puts around and after the prompt."""

    bos: int = 49406
    eos: int = 49407
    pad: int = 49407


CLIP_L_TOKENS = SpecialTokens()  # SD1.5 tokenizer and SDXL's first tokenizer pad with EOS
CLIP_G_TOKENS = SpecialTokens(pad=0)  # SDXL's second tokenizer pads with "!" (id 0)


def check_max_chunks(max_chunks: int) -> None:
    if not isinstance(max_chunks, int) or max_chunks < 1:
        raise LLMGAInputError(f"max_chunks must be a whole number of at least 1, got {max_chunks!r}.")


def chunk_count(n_tokens: int, max_chunks: int) -> int:
    """Chunks for ``n_tokens`` content tokens: ``ceil(n / 75)`` clamped to ``[1, max_chunks]``."""
    check_max_chunks(max_chunks)
    return max(1, min(max_chunks, -(-n_tokens // CHUNK_BODY)))


def pad_to_chunks(ids: Sequence[int], chunks: int, special: SpecialTokens) -> list[int]:
    """``[BOS] + ids + [PAD] * (75 chunks - n) + [EOS]``: ``75 chunks + 2`` ids."""
    room = CHUNK_BODY * chunks
    if len(ids) > room:
        raise ValueError(f"{len(ids)} tokens do not fit in {chunks} chunks; truncate first")
    return [special.bos, *ids, *([special.pad] * (room - len(ids))), special.eos]


def chunk_windows(padded: Sequence[int], special: SpecialTokens) -> list[list[int]]:
    """Cut a ``pad_to_chunks`` sequence into 77-id windows, each framed by BOS and EOS."""
    chunks = (len(padded) - 2) // CHUNK_BODY
    if len(padded) != CHUNK_BODY * chunks + 2 or chunks < 1:
        raise ValueError(f"padded length {len(padded)} is not 75m + 2")
    windows = []
    for i in range(chunks):
        window = list(padded[i * CHUNK_BODY : i * CHUNK_BODY + CHUNK_LENGTH])
        window[0], window[-1] = special.bos, special.eos
        windows.append(window)
    return windows


def spread_weights(weights: Sequence[float], chunks: int) -> list[float]:
    """Per-output weights for the ``77m`` layout: 1.0 on every BOS, EOS and padding position."""
    spread: list[float] = []
    for i in range(chunks):
        body = list(weights[i * CHUNK_BODY : (i + 1) * CHUNK_BODY])
        spread += [1.0, *body, *([1.0] * (CHUNK_BODY - len(body))), 1.0]
    return spread


def join_full(hidden_chunks: Sequence[torch.Tensor]) -> torch.Tensor:
    """Concatenate every chunk's 77 outputs along the token axis (``77m``)."""
    return torch.cat(list(hidden_chunks), dim=1)


def join_trimmed(hidden_chunks: Sequence[torch.Tensor]) -> torch.Tensor:
    """Concatenate chunk outputs without the interior BOS/EOS (``75m + 2``)."""
    last = len(hidden_chunks) - 1
    if last == 0:
        return hidden_chunks[0]
    parts = []
    for i, hidden in enumerate(hidden_chunks):
        start = 0 if i == 0 else 1
        stop = hidden.shape[1] if i == last else hidden.shape[1] - 1
        parts.append(hidden[:, start:stop])
    return torch.cat(parts, dim=1)
