"""Where LLMGA inpaints: the model resolution and, for the aspect-keeping mode, the crop around the mask.

LLMGA's pipelines stretch the whole picture to the model's square (SD1.5 512², SDXL 1024²; llmga-spec.md
3.2) and return that size. The sampler node resizes back to the input size; ``fit`` keeps the aspect ratio
at about the same pixel count; ``crop`` samples only a box around the mask (plus context) and is pasted
back, so the rest of the picture is untouched.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import torch

from ..errors import LLMGAInputError

Family = Literal["sd15", "sdxl"]
MODES = ("llmga", "fit", "crop")
NATIVE_SIDE: dict[str, int] = {"sd15": 512, "sdxl": 1024}
LATENT_STEP = 8  # the VAE downsamples by 8: sizes must be multiples of it


@dataclass(frozen=True)
class Box:
    left: int
    top: int
    width: int
    height: int

    @property
    def slices(self) -> tuple[slice, slice]:
        """(rows, columns) of an (…, H, W, …) tensor."""
        return slice(self.top, self.top + self.height), slice(self.left, self.left + self.width)


def model_size(family: Family, side: int = 0) -> int:
    """The square side the model samples at: LLMGA's (512 / 1024) unless ``side`` overrides it."""
    if side < 0 or side % LATENT_STEP:
        raise LLMGAInputError(f"size {side} must be 0 (the model's own) or a positive multiple of {LATENT_STEP}.")
    return side or NATIVE_SIDE[family]


def fit_size(width: int, height: int, side: int) -> tuple[int, int]:
    """(width, height) with the aspect ratio of ``width``×``height`` and about ``side``² pixels, in steps of 8."""
    if width <= 0 or height <= 0:
        raise LLMGAInputError(f"cannot fit an empty {width}x{height} region.")
    scale = side / math.sqrt(width * height)
    return (
        max(LATENT_STEP, round(width * scale / LATENT_STEP) * LATENT_STEP),
        max(LATENT_STEP, round(height * scale / LATENT_STEP) * LATENT_STEP),
    )


def sample_size(mode: str, family: Family, width: int, height: int, side: int = 0) -> tuple[int, int]:
    """The (width, height) to sample a ``width``×``height`` region at in ``mode``."""
    if mode not in MODES:
        raise LLMGAInputError(f"unknown resolution mode {mode!r}; use one of {', '.join(MODES)}.")
    target = model_size(family, side)
    if mode == "llmga":
        return target, target
    return fit_size(width, height, target)


def crop_box(mask: torch.Tensor, context: float) -> Box:
    """The box around every masked pixel (mask ≥ 0.5, any batch item), grown by ``context`` on each side.

    ``context`` is a fraction of the masked region's larger side, so the model sees that much of the
    surroundings; the box is clipped to the picture. An empty mask gives the whole picture.
    """
    if context < 0:
        raise LLMGAInputError(f"crop context {context} must be ≥ 0.")
    height, width = mask.shape[-2:]
    hit = (mask >= 0.5).reshape(-1, height, width).any(dim=0)
    rows, cols = torch.nonzero(hit.any(dim=1)).flatten(), torch.nonzero(hit.any(dim=0)).flatten()
    if rows.numel() == 0:
        return Box(0, 0, width, height)
    top, bottom = int(rows[0]), int(rows[-1]) + 1
    left, right = int(cols[0]), int(cols[-1]) + 1
    grow = math.ceil(context * max(bottom - top, right - left))
    top, left = max(0, top - grow), max(0, left - grow)
    bottom, right = min(height, bottom + grow), min(width, right + grow)
    return Box(left, top, right - left, bottom - top)
