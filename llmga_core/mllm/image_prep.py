"""The image the MLLM sees, prepared per task as LLMGA's CLIs prepare it (llmga-spec §1.4).

- similar image / chat: the image is **stretched** to a square of side max(w, h) with LANCZOS (the
  original's ``Image.ANTIALIAS``, removed from Pillow 10), then CLIP-processed;
- inpainting / outpainting: the mask is binarised at 125/255, the hole is painted black, and that
  masked image is stretched and CLIP-processed;
- editing: centre-cropped to a square, resized to 512x512 (Pillow's default bicubic), CLIP-processed;
  the same 512 image feeds the SD editing pipeline;
- LLaVA's "pad" mode (pad to a square with the processor's mean colour) is available for other models.

The CLIP processor is re-implemented with Pillow + numpy to match ``CLIPImageProcessor`` of the
transformers version LLMGA pinned (4.37.2): PIL bicubic resize of the shortest edge, centre crop,
``uint8 * rescale_factor`` in float64 cast to float32, float32 normalisation. Recent transformers
releases switched ``CLIPImageProcessor`` to a torchvision backend whose pixels differ, so the model's
own processor class is deliberately not used.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from PIL import Image

from ..errors import LLMGAInputError

__all__ = [
    "CLIP_VIT_L14_336",
    "OPENAI_CLIP_MEAN",
    "OPENAI_CLIP_STD",
    "ClipPreprocessConfig",
    "MLLMImage",
    "binarize_mask",
    "center_crop_resize",
    "clip_preprocess",
    "clip_resize_crop",
    "mask_out",
    "pad_to_square",
    "prepare_mllm_image",
    "stretch_to_square",
    "to_pil_rgb",
]

OPENAI_CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
OPENAI_CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
MASK_THRESHOLD = 125  # on 0..255: below is kept, at or above is the hole
EDIT_SIZE = 512


@dataclass(frozen=True)
class ClipPreprocessConfig:
    """The values of a CLIP ``preprocessor_config.json`` that the pixels depend on."""

    shortest_edge: int = 336
    crop_height: int = 336
    crop_width: int = 336
    image_mean: tuple[float, float, float] = OPENAI_CLIP_MEAN
    image_std: tuple[float, float, float] = OPENAI_CLIP_STD
    rescale_factor: float = 0.00392156862745098  # the 1/255 written in the released configs
    resample: int = 3  # PIL BICUBIC
    do_resize: bool = True
    do_center_crop: bool = True
    do_rescale: bool = True
    do_normalize: bool = True

    @classmethod
    def from_dict(cls, cfg: Mapping[str, Any]) -> ClipPreprocessConfig:
        """From a ``preprocessor_config.json`` (old ``size: 336`` and new ``{"shortest_edge": 336}``)."""
        size = cfg.get("size", 336)
        edge = size.get("shortest_edge", size.get("height", 336)) if isinstance(size, Mapping) else size
        crop = cfg.get("crop_size", edge)
        ch, cw = (crop.get("height", edge), crop.get("width", edge)) if isinstance(crop, Mapping) else (crop, crop)
        d = cls()
        return cls(
            shortest_edge=int(edge),
            crop_height=int(ch),
            crop_width=int(cw),
            image_mean=tuple(float(x) for x in cfg.get("image_mean", d.image_mean)),  # type: ignore[arg-type]
            image_std=tuple(float(x) for x in cfg.get("image_std", d.image_std)),  # type: ignore[arg-type]
            rescale_factor=float(cfg.get("rescale_factor", d.rescale_factor)),
            resample=int(cfg.get("resample", d.resample)),
            do_resize=bool(cfg.get("do_resize", True)),
            do_center_crop=bool(cfg.get("do_center_crop", True)),
            do_rescale=bool(cfg.get("do_rescale", True)),
            do_normalize=bool(cfg.get("do_normalize", True)),
        )

    @property
    def mean_fill(self) -> tuple[int, int, int]:
        """The pad colour LLaVA uses for "pad" mode: ``int(mean * 255)`` per channel."""
        return tuple(int(x * 255) for x in self.image_mean)  # type: ignore[return-value]


CLIP_VIT_L14_336 = ClipPreprocessConfig()
"""openai/clip-vit-large-patch14-336, the tower of every new-version LLMGA model."""


# ------------------------------------------------------------------------------------------ inputs


def to_pil_rgb(image: Any) -> Image.Image:
    """A PIL RGB image from PIL, a uint8 HWC array, or a float HWC array/tensor in [0, 1].

    A leading batch axis of size 1 (ComfyUI's ``IMAGE``) is accepted. Floats are rounded, so an 8-bit
    image that went through ``/255`` comes back exactly.
    """
    if isinstance(image, Image.Image):
        return image if image.mode == "RGB" else image.convert("RGB")
    arr = _as_numpy(image)
    if arr.ndim == 4:
        if arr.shape[0] != 1:
            raise LLMGAInputError(f"Expected one image, got a batch of {arr.shape[0]}; pick one image.")
        arr = arr[0]
    if arr.ndim == 2:
        arr = arr[:, :, None]
    if arr.ndim != 3 or arr.shape[2] not in (1, 3, 4):
        raise LLMGAInputError(f"Expected an H x W x C image, got shape {tuple(arr.shape)}.")
    if arr.dtype != np.uint8:
        arr = np.clip(np.round(arr.astype(np.float64) * 255.0), 0, 255).astype(np.uint8)
    if arr.shape[2] == 1:
        arr = np.repeat(arr, 3, axis=2)
    return Image.fromarray(np.ascontiguousarray(arr[:, :, :3]), "RGB")


def _as_numpy(x: Any) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        return x.detach().to("cpu").float().numpy() if x.dtype.is_floating_point else x.detach().cpu().numpy()
    return np.asarray(x)


def binarize_mask(mask: Any) -> np.ndarray:
    """An H x W uint8 array of 0 (keep) / 1 (hole) with LLMGA's 125/255 threshold.

    Accepts a PIL mask (converted to L), a uint8 array on 0..255, or a float array/tensor on [0, 1]
    (ComfyUI's ``MASK``, leading batch axis of size 1 allowed).
    """
    if isinstance(mask, Image.Image):
        arr = np.asarray(mask if mask.mode == "L" else mask.convert("L"))
    else:
        arr = _as_numpy(mask)
        if arr.ndim == 3 and arr.shape[0] == 1:
            arr = arr[0]
        if arr.ndim == 3 and arr.shape[2] in (1, 3, 4):
            arr = arr[:, :, 0]
        if arr.ndim != 2:
            raise LLMGAInputError(f"Expected an H x W mask, got shape {tuple(arr.shape)}.")
        if arr.dtype == np.bool_:
            return arr.astype(np.uint8)
        if arr.dtype != np.uint8:
            arr = np.clip(np.round(arr.astype(np.float64) * 255.0), 0, 255).astype(np.uint8)
    return (arr >= MASK_THRESHOLD).astype(np.uint8)


# ------------------------------------------------------------------------------------------ geometry


def stretch_to_square(image: Image.Image) -> Image.Image:
    """Resize (not pad, not crop) to a max(w, h) square with LANCZOS, as every LLMGA CLI does."""
    side = max(image.size)
    if image.size == (side, side):
        # The original resizes anyway; LANCZOS at scale 1 returns the same pixels, so skip the work.
        return image.copy()
    return image.resize((side, side), Image.Resampling.LANCZOS)


def pad_to_square(image: Image.Image, fill: Sequence[int]) -> Image.Image:
    """Pad to a max(w, h) square with ``fill``, the image centred (LLaVA's "pad" aspect mode)."""
    w, h = image.size
    if w == h:
        return image
    side = max(w, h)
    canvas = Image.new(image.mode, (side, side), tuple(fill))
    canvas.paste(image, ((side - w) // 2, (side - h) // 2))
    return canvas


def center_crop_resize(image: Image.Image, size: int = EDIT_SIZE) -> Image.Image:
    """The editing CLI's square: central crop of side min(w, h), then bicubic resize to ``size``."""
    w, h = image.size
    side = min(w, h)
    left, top = (w - side) // 2, (h - side) // 2
    square = image.crop((left, top, left + side, top + side))
    return square.resize((size, size), Image.Resampling.BICUBIC)


def mask_out(image: Image.Image, mask: Any) -> Image.Image:
    """``image * (1 - mask)``: the hole painted black, as the inpainting CLIs show it to the MLLM."""
    hole = binarize_mask(mask)
    arr = np.asarray(image.convert("RGB"))
    if hole.shape != arr.shape[:2]:
        raise LLMGAInputError(
            f"The mask is {hole.shape[1]}x{hole.shape[0]} but the image is {arr.shape[1]}x{arr.shape[0]}; "
            "use a mask of the image's size."
        )
    return Image.fromarray(arr * (1 - hole)[:, :, None], "RGB")


# ------------------------------------------------------------------------------------------ CLIP


def clip_resize_crop(image: Image.Image, config: ClipPreprocessConfig = CLIP_VIT_L14_336) -> np.ndarray:
    """The uint8 (crop_h, crop_w, 3) pixels the CLIP processor normalises: what a serving engine gets."""
    img = image if image.mode == "RGB" else image.convert("RGB")
    if config.do_resize:
        w, h = img.size
        short, long = (w, h) if w <= h else (h, w)
        new_short, new_long = config.shortest_edge, int(config.shortest_edge * long / short)
        new_w, new_h = (new_short, new_long) if w <= h else (new_long, new_short)
        img = img.resize((new_w, new_h), Image.Resampling(config.resample))
    arr = np.asarray(img)
    if config.do_center_crop:
        arr = _center_crop(arr, config.crop_height, config.crop_width)
    return arr


def clip_preprocess(image: Image.Image, config: ClipPreprocessConfig = CLIP_VIT_L14_336) -> torch.Tensor:
    """``pixel_values`` of shape (1, 3, crop_h, crop_w), float32, as transformers 4.37's CLIP processor."""
    arr = clip_resize_crop(image, config)
    out = arr.astype(np.float32)
    if config.do_rescale:
        out = (arr.astype(np.float64) * config.rescale_factor).astype(np.float32)
    if config.do_normalize:
        mean = np.asarray(config.image_mean, dtype=np.float32)
        std = np.asarray(config.image_std, dtype=np.float32)
        out = (out - mean) / std
    return torch.from_numpy(np.ascontiguousarray(out.transpose(2, 0, 1)))[None]


def _center_crop(arr: np.ndarray, crop_h: int, crop_w: int) -> np.ndarray:
    h, w = arr.shape[:2]
    top, left = (h - crop_h) // 2, (w - crop_w) // 2
    if top >= 0 and left >= 0:
        return arr[top : top + crop_h, left : left + crop_w]
    # Smaller than the crop: zero-pad around it first, with transformers' offsets.
    nh, nw = max(crop_h, h), max(crop_w, w)
    canvas = np.zeros((nh, nw, arr.shape[2]), dtype=arr.dtype)
    tp, lp = (nh - h) // 2, (nw - w) // 2
    canvas[tp : tp + h, lp : lp + w] = arr
    top, left = top + tp, left + lp
    return canvas[max(0, top) : min(nh, top + crop_h), max(0, left) : min(nw, left + crop_w)]


# ------------------------------------------------------------------------------------------ per task


@dataclass(frozen=True)
class MLLMImage:
    """The MLLM's view of the task image."""

    pixel_values: torch.Tensor  # (1, 3, H, W) float32; the caller casts to the tower's dtype
    square: Image.Image  # the image the CLIP processor received (preview; the SD input for editing)


_SQUARE_MODES = ("stretch", "pad")


def prepare_mllm_image(
    task: str,
    image: Any,
    mask: Any = None,
    config: ClipPreprocessConfig = CLIP_VIT_L14_336,
    square: str = "stretch",
) -> MLLMImage:
    """Prepare ``image`` (and ``mask`` for inpainting/outpainting) for ``task``.

    ``task`` is one of "similar image", "chat", "inpainting", "outpainting", "edit" (the values of
    :class:`~.turns.Task` plus "edit"). ``square`` is "stretch" (LLMGA) or "pad" (LLaVA's pad mode);
    editing always centre-crops.
    """
    if square not in _SQUARE_MODES:
        raise LLMGAInputError(f"square must be one of {_SQUARE_MODES}, got {square!r}.")
    if task == "text-to-image":
        raise LLMGAInputError("The text-to-image task takes no image; disconnect it or pick another task.")
    pil = to_pil_rgb(image)
    if task in ("edit", "editing"):
        shown = center_crop_resize(pil, EDIT_SIZE)
        return MLLMImage(clip_preprocess(shown, config), shown)
    if task in ("inpainting", "outpainting"):
        if mask is None:
            raise LLMGAInputError(f"The {task} task needs a mask: connect one (white = area to fill).")
        pil = mask_out(pil, mask)
    elif task not in ("similar image", "chat"):
        raise LLMGAInputError(f"Unknown task {task!r}.")
    shown = stretch_to_square(pil) if square == "stretch" else pad_to_square(pil, config.mean_fill)
    return MLLMImage(clip_preprocess(shown, config), shown)
