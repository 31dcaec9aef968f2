"""Stable Diffusion side of LLMGA: reading its diffusers folders and its inpainting geometry."""

from __future__ import annotations

from .diffusers_folder import SDFolder, WeightFiles, inspect_folder, ldm_unet_config, pick_weights
from .geometry import MODES, Box, crop_box, fit_size, model_size, sample_size

__all__ = [
    "MODES",
    "Box",
    "SDFolder",
    "WeightFiles",
    "crop_box",
    "fit_size",
    "inspect_folder",
    "ldm_unet_config",
    "model_size",
    "pick_weights",
    "sample_size",
]
