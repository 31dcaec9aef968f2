"""DiffRIR x1 (reference-based restoration after inpainting/outpainting), reimplemented in plain torch.

Public API:

- :func:`load_diffrir` / :func:`read_diffrir_state_dict` and :class:`DiffRIRCheckpointError` (strict
  loading of released ``.pth`` and of ``.safetensors``);
- :func:`restore` (inference with padding, seeded prior, optional tiling and compositing);
- :class:`DiffRIRNet` / :func:`build_diffrir_x1` (the network itself).
"""

from __future__ import annotations

from .checkpoint import DiffRIRCheckpointError, check_diffrir_state_dict, load_diffrir, read_diffrir_state_dict
from .network import X1_CONFIG, DiffRIRConfig, DiffRIRNet, build_diffrir_x1
from .restore import AUTO_TILE_ABOVE, DEFAULT_TILE_OVERLAP, DEFAULT_TILE_SIZE, auto_tile_size, restore

__all__ = [
    "AUTO_TILE_ABOVE",
    "DEFAULT_TILE_OVERLAP",
    "DEFAULT_TILE_SIZE",
    "X1_CONFIG",
    "DiffRIRCheckpointError",
    "DiffRIRConfig",
    "DiffRIRNet",
    "auto_tile_size",
    "build_diffrir_x1",
    "check_diffrir_state_dict",
    "load_diffrir",
    "read_diffrir_state_dict",
    "restore",
]
