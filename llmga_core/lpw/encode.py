"""LLMGA's long-prompt (LPW) conditioning over a per-chunk encoder callable.

An encoder is ``encode(ids) -> (hidden, pooled)`` for one 77-id chunk: ``ids`` is a CPU
``LongTensor[1, 77]``, ``hidden`` is ``[1, 77, D]`` from the layer the layout wants and ``pooled`` is
``[1, P]`` or ``None``. The encoder picks the layer, device and dtype; this module only arranges
chunks, weights and padding, so it runs unchanged on ComfyUI's CLIP objects and on transformers models.

Three layouts, each reproducing an LLMGA code path:

- :func:`encode_sd15`: SD1.5 inference (community ``lpw_stable_diffusion`` and the vendored
  inpainting/editing LPW pipelines): A1111 weights, ``77m`` tokens, last layer, mean renormalisation;
- :func:`encode_sd15_training`: what SD1.5 fine-tuning saw: no weights, ``75m + 2`` tokens;
- :func:`encode_sdxl`: SDXL inference and training: both encoders, no weights, ``75m + 2`` tokens,
  pooled vector of the last chunk, zeros for an absent negative.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from ..errors import LLMGAInputError
from .layouts import (
    CHUNK_BODY,
    CLIP_G_TOKENS,
    CLIP_L_TOKENS,
    SD15_T2I_MAX_CHUNKS,
    SD15_TRAINING_MAX_CHUNKS,
    SDXL_MAX_CHUNKS,
    SpecialTokens,
    check_max_chunks,
    chunk_count,
    chunk_windows,
    join_full,
    join_trimmed,
    pad_to_chunks,
    spread_weights,
)
from .tokens import PromptTokens, Tokenize, plain_tokens, weighted_tokens

ChunkEncoder = Callable[[torch.Tensor], tuple[torch.Tensor, "torch.Tensor | None"]]
# SDXL: one call per chunk with the CLIP-L ids and the CLIP-G ids (they differ only in padding);
# returns hidden ``[1, 77, D_l + D_g]`` (CLIP-L features first) and CLIP-G's pooled vector.
PairEncoder = Callable[[torch.Tensor, torch.Tensor], tuple[torch.Tensor, "torch.Tensor | None"]]


@dataclass(frozen=True)
class Batched:
    """An encoder that takes all of a prompt's chunks in one call (hosts that batch, like ComfyUI, are faster).

    ``fn(ids, pooled_row)`` for SD1.5 and ``fn(ids_l, ids_g, pooled_row)`` for SDXL, with ``ids`` a CPU
    ``LongTensor[k, 77]``; it returns ``hidden [k, 77, D]`` and the pooled vector ``[1, P]`` of chunk
    ``pooled_row`` (or ``None``). Pass it wherever an ``encode`` / ``encode_pair`` callable is accepted.
    """

    fn: Callable[..., tuple[torch.Tensor, torch.Tensor | None]]


@dataclass(frozen=True)
class LPWConditioning:
    """Positive and negative conditioning of equal length, plus what the node should report."""

    cond: torch.Tensor  # [1, L, D]
    uncond: torch.Tensor  # [1, L, D]
    pooled: torch.Tensor | None  # [1, P]
    uncond_pooled: torch.Tensor | None
    chunks: int  # m
    dropped: int  # positive tokens cut off at the cap
    uncond_dropped: int  # negative tokens cut off


def _as_ids(window: Sequence[int]) -> torch.Tensor:
    return _as_batch([window])


def _as_batch(windows: Sequence[Sequence[int]]) -> torch.Tensor:
    return torch.tensor([list(w) for w in windows], dtype=torch.long)


def _encode_windows(
    windows: Sequence[Sequence[int]], encode: ChunkEncoder | Batched
) -> tuple[list[torch.Tensor], list[torch.Tensor | None]]:
    """Hidden states of every window, and the pooled vectors (only the first one for a batched encoder)."""
    if isinstance(encode, Batched):
        hidden_all, first_pooled = encode.fn(_as_batch(windows), 0)
        return list(hidden_all.split(1, dim=0)), [first_pooled]
    hidden, pooled = [], []
    for window in windows:
        h, p = encode(_as_ids(window))
        hidden.append(h)
        pooled.append(p)
    return hidden, pooled


def renormalised_weighting(hidden: torch.Tensor, weights: Sequence[float]) -> torch.Tensor:
    """Multiply each token's output by its weight, then rescale to the unweighted mean.

    The mean runs over tokens *and* channels of the whole sequence, in fp32 or wider, as in the SD1.5 LPW
    pipelines. All-1 weights return ``hidden`` itself (the original's arithmetic is exact there too).
    """
    if all(w == 1.0 for w in weights):
        return hidden
    w = torch.tensor(list(weights), dtype=hidden.dtype, device=hidden.device).reshape(1, -1, 1)
    # At least fp32 (the original's .float() lifts fp16 encoders); a float64 encoder keeps its precision.
    mean_dtype = torch.promote_types(hidden.dtype, torch.float32)
    previous_mean = hidden.to(mean_dtype).mean(dim=(-2, -1)).to(hidden.dtype)
    weighted = hidden * w
    # An encoder whose last LayerNorm has no bias (random test CLIPs) has a mean that is only rounding noise:
    # the original's rescale would then multiply by noise/noise (inf on some CPUs). There is no mean to restore.
    scale = hidden.to(mean_dtype).abs().mean(dim=(-2, -1))
    if bool((previous_mean.to(mean_dtype).abs() <= 1e-5 * scale).all()):
        return weighted
    current_mean = weighted.to(mean_dtype).mean(dim=(-2, -1)).to(hidden.dtype)
    out = weighted * (previous_mean / current_mean).reshape(-1, 1, 1)
    if not torch.isfinite(out).all() and torch.isfinite(hidden).all():
        raise LLMGAInputError(
            "The prompt weights cancel the whole embedding out (its mean became zero or overflowed); "
            "use weights closer to 1, e.g. (word:1.3) instead of (word:0) or huge numbers."
        )
    return out


def _check_prompt(name: str, text: Any) -> str:
    if not isinstance(text, str):
        raise LLMGAInputError(f"The {name} prompt must be text, got {type(text).__name__}.")
    return text


def _encode_sd15_pair(
    positive: str,
    negative: str | None,
    tokenize: Tokenize,
    encode: ChunkEncoder | Batched,
    max_chunks: int,
    special: SpecialTokens,
    to_tokens: Callable[[str, Tokenize, int], PromptTokens],
    join: Callable[[list[torch.Tensor], PromptTokens, int], torch.Tensor],
) -> LPWConditioning:
    """The two SD1.5 layouts share this: both prompts padded to the same ``m``, first chunk's pooled."""
    check_max_chunks(max_chunks)
    cap = CHUNK_BODY * max_chunks
    pos = to_tokens(_check_prompt("positive", positive), tokenize, cap)
    neg = to_tokens(_check_prompt("negative", "" if negative is None else negative), tokenize, cap)
    chunks = chunk_count(max(len(pos.ids), len(neg.ids)), max_chunks)

    def run(tokens: PromptTokens) -> tuple[torch.Tensor, torch.Tensor | None]:
        windows = chunk_windows(pad_to_chunks(tokens.ids, chunks, special), special)
        hidden, pooled = _encode_windows(windows, encode)
        return join(hidden, tokens, chunks), pooled[0]

    with torch.no_grad():
        cond, pooled = run(pos)
        uncond, uncond_pooled = run(neg)
    return LPWConditioning(cond, uncond, pooled, uncond_pooled, chunks, pos.dropped, neg.dropped)


def encode_sd15(
    positive: str,
    negative: str | None = "",
    *,
    tokenize: Tokenize,
    encode: ChunkEncoder | Batched,
    max_chunks: int = SD15_T2I_MAX_CHUNKS,
    special: SpecialTokens = CLIP_L_TOKENS,
) -> LPWConditioning:
    """SD1.5 inference LPW: A1111 weights, both prompts padded to the same ``m``, ``77m`` tokens.

    ``encode`` should return the CLIP text model's last layer after the final layer norm. A ``None``
    negative is ``""``, as in the pipelines.
    ``max_chunks`` is 3 for LLMGA's SD1.5 T2I (225 tokens) and 4 for inpainting/editing (300).
    ``pooled`` is the first chunk's pooled vector when the encoder returns one (the SD1.5 UNet does not
    use it; ComfyUI's native encoder reports the same chunk).
    """

    def join(hidden: list[torch.Tensor], tokens: PromptTokens, chunks: int) -> torch.Tensor:
        return renormalised_weighting(join_full(hidden), spread_weights(tokens.weights, chunks))

    return _encode_sd15_pair(positive, negative, tokenize, encode, max_chunks, special, weighted_tokens, join)


def encode_sd15_training(
    positive: str,
    negative: str | None = "",
    *,
    tokenize: Tokenize,
    encode: ChunkEncoder | Batched,
    max_chunks: int = SD15_TRAINING_MAX_CHUNKS,
    special: SpecialTokens = CLIP_L_TOKENS,
) -> LPWConditioning:
    """The layout LLMGA's SD1.5 fine-tuning used: brackets literal, ``75m + 2`` tokens, last layer.

    Both prompts share ``m`` (training padded a batch to its longest caption the same way).
    """

    def join(hidden: list[torch.Tensor], _tokens: PromptTokens, _chunks: int) -> torch.Tensor:
        return join_trimmed(hidden)

    return _encode_sd15_pair(positive, negative, tokenize, encode, max_chunks, special, plain_tokens, join)


def encode_sdxl(
    positive: str,
    negative: str | None = None,
    *,
    tokenize: Tokenize,
    encode_pair: PairEncoder | Batched,
    max_chunks: int = SDXL_MAX_CHUNKS,
    zero_empty_negative: bool = True,
    tokenize_g: Tokenize | None = None,
    special_l: SpecialTokens = CLIP_L_TOKENS,
    special_g: SpecialTokens = CLIP_G_TOKENS,
) -> LPWConditioning:
    """SDXL LPW as LLMGA trained and samples it: ``75m + 2`` tokens, pooled vector of the last chunk.

    ``encode_pair`` should return both encoders' penultimate layer (no final layer norm), CLIP-L
    first, and CLIP-G's projected pooled vector. Brackets are literal text (no weighting).

    Negative: ``None`` (LLMGA's CLIs pass none) gives all-zero conditioning and pooled vector; so does
    an empty or blank string while ``zero_empty_negative`` holds. Any other negative is encoded with the
    positive's chunk count, padded or truncated to it (``uncond_dropped`` counts what was cut), so the
    positive is always exactly the original's. (LLMGA itself fails when the two chunk counts differ.)
    """
    check_max_chunks(max_chunks)
    cap = CHUNK_BODY * max_chunks
    tokenize_g = tokenize if tokenize_g is None else tokenize_g
    positive = _check_prompt("positive", positive)
    pos_l = plain_tokens(positive, tokenize, cap)
    pos_g = plain_tokens(positive, tokenize_g, cap)
    chunks = chunk_count(max(len(pos_l.ids), len(pos_g.ids)), max_chunks)

    def run(ids_l: Sequence[int], ids_g: Sequence[int]) -> tuple[torch.Tensor, torch.Tensor | None]:
        windows_l = chunk_windows(pad_to_chunks(ids_l, chunks, special_l), special_l)
        windows_g = chunk_windows(pad_to_chunks(ids_g, chunks, special_g), special_g)
        hidden, pooled = [], None
        if isinstance(encode_pair, Batched):
            hidden_all, pooled = encode_pair.fn(_as_batch(windows_l), _as_batch(windows_g), len(windows_l) - 1)
            return join_trimmed(list(hidden_all.split(1, dim=0))), pooled
        for window_l, window_g in zip(windows_l, windows_g, strict=True):
            h, pooled = encode_pair(_as_ids(window_l), _as_ids(window_g))
            hidden.append(h)
        # Every chunk ends in EOS, the largest id, so the original's "keep the chunk with the larger
        # max id, else the newer one" always lands on the last chunk.
        return join_trimmed(hidden), pooled

    zero_negative = negative is None or (zero_empty_negative and not _check_prompt("negative", negative).strip())
    with torch.no_grad():
        cond, pooled = run(pos_l.ids, pos_g.ids)
        if zero_negative:
            uncond = torch.zeros_like(cond)
            uncond_pooled = None if pooled is None else torch.zeros_like(pooled)
            uncond_dropped = 0
        else:
            room = CHUNK_BODY * chunks
            neg_l = plain_tokens(_check_prompt("negative", negative), tokenize, room)
            neg_g = plain_tokens(negative, tokenize_g, room)
            uncond, uncond_pooled = run(neg_l.ids, neg_g.ids)
            uncond_dropped = max(neg_l.dropped, neg_g.dropped)
    return LPWConditioning(
        cond, uncond, pooled, uncond_pooled, chunks, max(pos_l.dropped, pos_g.dropped), uncond_dropped
    )


def pair_encoders(encode_l: ChunkEncoder, encode_g: ChunkEncoder) -> PairEncoder:
    """Build an SDXL pair encoder from two single-encoder callables (hidden concatenated, G pooled)."""

    def encode_pair(ids_l: torch.Tensor, ids_g: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        hidden_l, _ = encode_l(ids_l)
        hidden_g, pooled_g = encode_g(ids_g)
        return torch.cat([hidden_l, hidden_g.to(hidden_l.dtype)], dim=-1), pooled_g

    return encode_pair


def hf_clip_encoder(model: Any, hidden_layer: int | None = None) -> ChunkEncoder:
    """Chunk encoder over a transformers ``CLIPTextModel`` / ``CLIPTextModelWithProjection``.

    ``hidden_layer=None`` returns the last layer after the final layer norm (SD1.5);
    ``hidden_layer=-2`` returns ``hidden_states[-2]`` without it (SDXL). Pooled is ``text_embeds``
    when the model projects, else ``pooler_output``.
    """

    def encode(ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        out = model(ids.to(model.device), output_hidden_states=hidden_layer is not None)
        hidden = out.last_hidden_state if hidden_layer is None else out.hidden_states[hidden_layer]
        pooled = getattr(out, "text_embeds", None)
        if pooled is None:
            pooled = getattr(out, "pooler_output", None)
        return hidden, pooled

    return encode
