"""Tile layout and blending weights for running ``G`` on large images with bounded memory.

``G`` is not translation-equivariant below 32 px (PixelUnshuffle(4) then three 2x downsamplings), so every
tile start is a multiple of 32 and every tile a multiple of 32 in size; then each tile sees exactly the
pixel grouping the untiled run sees. Its channel attention pools over the whole tile, so tiles differ from
the untiled result everywhere a little, most near tile edges; overlapping tiles are blended with raised-
cosine ramps that fall towards interior edges (never to zero, so the weight sum is always positive).
"""

from __future__ import annotations

import math

import torch

from ..errors import LLMGAInputError

ALIGN = 32


def validate_tiling(tile_size: int, overlap: int) -> None:
    """Raise :class:`LLMGAInputError` unless ``tile_size``/``overlap`` are usable multiples of 32."""
    for name, value in (("tile size", tile_size), ("tile overlap", overlap)):
        if isinstance(value, bool) or not isinstance(value, int):
            raise LLMGAInputError(f"DiffRIR {name} must be a whole number of pixels, got {value!r}.")
    if tile_size < 64 or tile_size % ALIGN:
        raise LLMGAInputError(f"DiffRIR tile size must be a multiple of {ALIGN} and at least 64, got {tile_size}.")
    if overlap < 0 or overlap % ALIGN or overlap >= tile_size:
        raise LLMGAInputError(
            f"DiffRIR tile overlap must be a multiple of {ALIGN} in [0, tile size), got {overlap} "
            f"for tile size {tile_size}."
        )


def tile_starts(length: int, tile: int, overlap: int) -> list[int]:
    """Start offsets along one axis (``length`` a multiple of 32) covering it with ``tile``-long windows."""
    if length <= tile:
        return [0]
    step = tile - overlap
    starts = list(range(0, length - tile, step))
    starts.append(length - tile)
    return starts


def _axis_weight(start: int, size: int, length: int, overlap: int) -> torch.Tensor:
    w = torch.ones(size, dtype=torch.float32)
    ramp_len = min(overlap, size // 2)
    if ramp_len == 0:
        return w
    # raised cosine sampled at pixel centres: in (0, 1), symmetric, sums to 1 with its mirror image
    ramp = torch.tensor(
        [0.5 - 0.5 * math.cos(math.pi * (i + 0.5) / ramp_len) for i in range(ramp_len)], dtype=torch.float32
    )
    if start > 0:
        w[:ramp_len] = ramp
    if start + size < length:
        w[size - ramp_len:] = torch.minimum(w[size - ramp_len:], ramp.flip(0))
    return w


def tile_weight(y: int, x: int, th: int, tw: int, height: int, width: int, overlap: int) -> torch.Tensor:
    """``[th, tw]`` blending weight of the tile at ``(y, x)`` in a ``height x width`` image."""
    return _axis_weight(y, th, height, overlap)[:, None] * _axis_weight(x, tw, width, overlap)[None, :]


def tile_grid(height: int, width: int, tile: int, overlap: int) -> list[tuple[int, int, int, int]]:
    """``(y, x, th, tw)`` for every tile, row-major."""
    th, tw = min(tile, height), min(tile, width)
    return [
        (y, x, th, tw) for y in tile_starts(height, tile, overlap) for x in tile_starts(width, tile, overlap)
    ]
