"""What LLMGA's SD1.5 edit encodes from a prompt's *text* for its mask and inversion stages.

The original encodes the captions three ways (llmga-spec.md 3.4), and two of them cannot be cut out of the
sampling encoding (LPW, 4 chunks, A1111 weights, mean renormalisation):

* inversion: the plain tokenizer, brackets as literal text, no weights, cut at 77 ids: ``BOS`` + the first 76
  ids (a caption over 75 tokens loses its EOS), padded with EOS;
* mask: LPW over at most 3 chunks, with both prompts padded to the longer one's chunk count *before* the
  weights are renormalised (the mean runs over the padded sequence).

:func:`encode_stage_prompt` keeps, per prompt, the inversion encoding and the unweighted mask-stage chunks with
their weights; :func:`mask_pair` finishes the mask stage once both prompts are known. Prompt encoders attach
the result to a conditioning under :data:`STAGE_KEY`, and :mod:`.conditioning` uses it when present.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..lpw.encode import Batched, ChunkEncoder, _encode_windows, renormalised_weighting
from ..lpw.layouts import (
    CHUNK_BODY,
    CHUNK_LENGTH,
    CLIP_L_TOKENS,
    SpecialTokens,
    chunk_count,
    chunk_windows,
    join_full,
    pad_to_chunks,
    spread_weights,
)
from ..lpw.tokens import Tokenize, plain_tokens, weighted_tokens

STAGE_KEY = "llmga_edit_stages"  # the conditioning extras key carrying a StagePrompt
MASK_MAX_CHUNKS = 3  # generate_mask encodes with max_embeddings_multiples=3


@dataclass(frozen=True)
class StagePrompt:
    inversion: torch.Tensor  # [1, 77, D]
    mask_hidden: torch.Tensor  # [1, 77·k, D], unweighted, k ≤ 3 own chunks
    mask_weights: tuple[float, ...]  # one per position of mask_hidden (1.0 on BOS/EOS/padding)
    empty_chunk: torch.Tensor  # [1, 77, D]: BOS + PAD…, what LPW pads a shorter prompt with

    @property
    def mask_chunks(self) -> int:
        return int(self.mask_hidden.shape[1]) // CHUNK_LENGTH


def inversion_ids(text: str, tokenize: Tokenize, special: SpecialTokens = CLIP_L_TOKENS) -> list[int]:
    """``[BOS] + ids + [EOS]`` padded with PAD and cut at 77: the original's ``encode_text`` input."""
    ids = [special.bos, *plain_tokens(text, tokenize, 10**9).ids, special.eos]
    ids += [special.pad] * (CHUNK_LENGTH - len(ids))
    return ids[:CHUNK_LENGTH]


def encode_stage_prompt(
    text: str, tokenize: Tokenize, encode: ChunkEncoder | Batched, special: SpecialTokens = CLIP_L_TOKENS
) -> StagePrompt:
    """Encode ``text`` for the edit's inversion and mask stages (``encode``: last layer after the final LN)."""
    tokens = weighted_tokens(text, tokenize, CHUNK_BODY * MASK_MAX_CHUNKS)
    chunks = chunk_count(len(tokens.ids), MASK_MAX_CHUNKS)
    windows = chunk_windows(pad_to_chunks(tokens.ids, chunks, special), special)
    empty = chunk_windows(pad_to_chunks([], 1, special), special)[0]
    with torch.no_grad():
        hidden, _ = _encode_windows([inversion_ids(text, tokenize, special), empty, *windows], encode)
    return StagePrompt(
        inversion=hidden[0],
        mask_hidden=join_full(hidden[2:]),
        mask_weights=tuple(spread_weights(tokens.weights, chunks)),
        empty_chunk=hidden[1],
    )


def _padded(prompt: StagePrompt, chunks: int) -> torch.Tensor:
    extra = chunks - prompt.mask_chunks
    fill = [prompt.empty_chunk.to(prompt.mask_hidden)] * extra
    hidden = torch.cat([prompt.mask_hidden, *fill], dim=1)
    return renormalised_weighting(hidden, [*prompt.mask_weights, *([1.0] * (CHUNK_LENGTH * extra))])


def mask_pair(target: StagePrompt, source: StagePrompt) -> tuple[torch.Tensor, torch.Tensor]:
    """(target, source) as the original's mask stage feeds them: a common chunk count, then the weighting."""
    chunks = max(target.mask_chunks, source.mask_chunks)
    return _padded(target, chunks), _padded(source, chunks)
