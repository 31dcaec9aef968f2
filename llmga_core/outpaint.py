"""Outpainting canvas: grow an image on any side and mark the new area for inpainting.

LLMGA has no canvas code of its own: outpainting is inpainting with a border mask, and its training data
frames the new area as black border strips (llmga-spec.md 3.3). This module builds that frame for any
border sizes, with the new pixels filled black, by edge replication or by mirroring, and a mask that is 1
on the new area, optionally feathered towards the original pixels (which always stay 0).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch

from .errors import LLMGAInputError

Fill = Literal["black", "edge", "reflect"]
FILLS: tuple[Fill, ...] = ("black", "edge", "reflect")
MAX_SIDE = 16384  # ComfyUI's own MAX_RESOLUTION; larger canvases cannot be encoded or saved


@dataclass(frozen=True)
class Borders:
    """Pixels to add on each side of the image."""

    left: int = 0
    top: int = 0
    right: int = 0
    bottom: int = 0

    def validate(self) -> None:
        for side in ("left", "top", "right", "bottom"):
            value = getattr(self, side)
            if isinstance(value, bool) or not isinstance(value, int):
                raise LLMGAInputError(f"Outpaint border '{side}' must be a whole number of pixels, got {value!r}.")
            if value < 0:
                raise LLMGAInputError(
                    f"Outpaint border '{side}' is {value} px; borders cannot be negative. "
                    "To crop an image use a crop node instead."
                )

    def grown_size(self, height: int, width: int) -> tuple[int, int]:
        return height + self.top + self.bottom, width + self.left + self.right


def _check_image(image: torch.Tensor) -> None:
    if not isinstance(image, torch.Tensor):
        raise LLMGAInputError(f"Expected an IMAGE tensor [batch, height, width, channels], got {type(image).__name__}.")
    if image.ndim != 4 or image.shape[-1] not in (1, 3, 4):
        raise LLMGAInputError(
            f"Expected an IMAGE tensor [batch, height, width, channels] with 1, 3 or 4 channels, "
            f"got shape {list(image.shape)}. Connect an image output (for example Load Image), not a mask or latent."
        )
    if not image.is_floating_point():
        raise LLMGAInputError(f"Expected a floating-point IMAGE with values in 0..1, got dtype {image.dtype}.")
    if image.shape[0] == 0 or image.shape[1] == 0 or image.shape[2] == 0:
        raise LLMGAInputError(f"The image is empty (shape {list(image.shape)}).")


def source_indices(size: int, before: int, after: int, fill: Fill) -> torch.Tensor:
    """For each position of a grown axis, the source index to copy (or -1 where the fill is black).

    Index arithmetic instead of ``torch.nn.functional.pad`` because reflect padding there is limited to
    borders smaller than the image, while users outpaint by more than the image's own size.
    """
    pos = torch.arange(-before, size + after)
    if fill == "black":
        return torch.where((pos >= 0) & (pos < size), pos, torch.full_like(pos, -1))
    if fill == "edge" or size == 1:
        return pos.clamp(0, size - 1)
    # Mirror without repeating the edge pixel (torch's "reflect"), periodic with period 2(size-1),
    # so any border width works.
    period = 2 * (size - 1)
    folded = pos.remainder(period)
    return torch.where(folded < size, folded, period - folded)


def _gather(image: torch.Tensor, rows: torch.Tensor, cols: torch.Tensor) -> torch.Tensor:
    out = image.index_select(1, rows.clamp(min=0)).index_select(2, cols.clamp(min=0))
    outside = (rows < 0)[:, None] | (cols < 0)[None, :]
    if bool(outside.any()):
        out = out.masked_fill(outside[None, :, :, None], 0.0)
    return out


def new_area_mask(height: int, width: int, borders: Borders, feather: int) -> torch.Tensor:
    """Mask [H', W'] of the grown canvas: 0 on the original pixels, 1 on the new area.

    With ``feather > 0`` the new pixels nearest the original ramp up as d / (feather + 1), where d >= 1 is
    their Euclidean distance in pixels to the original rectangle, so exactly ``feather`` pixels lie in
    the transition and the original pixels stay 0.
    """
    grown_h, grown_w = borders.grown_size(height, width)
    y = torch.arange(grown_h, dtype=torch.float32)[:, None]
    x = torch.arange(grown_w, dtype=torch.float32)[None, :]
    top, left = borders.top, borders.left
    dy = torch.clamp(top - y, min=0) + torch.clamp(y - (top + height - 1), min=0)
    dx = torch.clamp(left - x, min=0) + torch.clamp(x - (left + width - 1), min=0)
    if feather <= 0:
        return ((dy > 0) | (dx > 0)).float()
    distance = torch.sqrt(dy * dy + dx * dx)
    return torch.clamp(distance / (feather + 1), max=1.0)


def grow_canvas(
    image: torch.Tensor, borders: Borders, fill: Fill = "black", feather: int = 0
) -> tuple[torch.Tensor, torch.Tensor]:
    """Grow ``image`` [B, H, W, C] by ``borders``; return (canvas [B, H', W', C], mask [B, H', W']).

    The original pixels are copied unchanged; the mask is 1 where new content should be generated.
    """
    _check_image(image)
    borders.validate()
    if fill not in FILLS:
        raise LLMGAInputError(f"Unknown fill {fill!r}; choose one of {', '.join(FILLS)}.")
    if isinstance(feather, bool) or not isinstance(feather, int) or feather < 0:
        raise LLMGAInputError(f"Feather must be a whole number of pixels >= 0, got {feather!r}.")
    batch, height, width, _ = image.shape
    grown_h, grown_w = borders.grown_size(height, width)
    if grown_h > MAX_SIDE or grown_w > MAX_SIDE:
        raise LLMGAInputError(
            f"The outpainted canvas would be {grown_w}x{grown_h} px; each side must be at most {MAX_SIDE} px. "
            "Use smaller borders or downscale the image first."
        )
    rows = source_indices(height, borders.top, borders.bottom, fill).to(image.device)
    cols = source_indices(width, borders.left, borders.right, fill).to(image.device)
    canvas = _gather(image, rows, cols)
    mask = new_area_mask(height, width, borders, feather).to(image.device)
    return canvas, mask.expand(batch, grown_h, grown_w).clone()
