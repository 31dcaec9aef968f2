"""Deterministic stand-in weights for tests and benchmarks (real checkpoints are never downloaded).

The procedure is deliberately simple so that any implementation (this one, or the original DiffRIR code
in a parity harness) can reproduce it from the key names and shapes alone:

1. take every key of the x1 state dict that does not start with ``diffusion.``, in sorted order;
2. draw ``t = torch.randn(shape, generator=g)`` (float32, CPU) from ONE ``torch.Generator`` seeded with
   ``seed``, in that order;
3. value = ``1 + 0.1 * t`` for layer-norm gains (``...norm1.body.weight``, ``...norm2.body.weight``) and
   attention ``...temperature``; ``0.1 * t`` for other 1-D tensors (biases);
   ``t / sqrt(fan_in)`` otherwise, ``fan_in = numel / shape[0]`` (keeps activations O(1) so the
   parity check exercises every layer);
4. ``diffusion.condition.*`` / ``diffusion.model.*`` copy ``condition.*`` / ``denoise.*``; the 12 schedule
   buffers are :func:`~.prior.linear_schedule` (0.1, 0.99, 4 steps).
"""

from __future__ import annotations

import math
import re

import torch

from .checkpoint import _complete, _expected_shapes
from .network import DiffRIRNet, build_diffrir_x1

_GAIN_KEY = re.compile(r"(norm[12]\.body\.weight|\.temperature)$")


def synthetic_state_dict(seed: int = 0) -> dict[str, torch.Tensor]:
    """A full 615-key x1 state dict filled by the documented seeded procedure."""
    shapes = _expected_shapes()
    gen = torch.Generator().manual_seed(seed)
    out: dict[str, torch.Tensor] = {}
    for key in sorted(k for k in shapes if not k.startswith("diffusion.")):
        shape = shapes[key]
        t = torch.randn(shape, generator=gen, dtype=torch.float32)
        if _GAIN_KEY.search(key):
            out[key] = 1.0 + 0.1 * t
        elif len(shape) == 1:
            out[key] = 0.1 * t
        else:
            out[key] = t / math.sqrt(t.numel() / shape[0])
    _complete(out, shapes, "synthetic")  # twins and schedule buffers, as a loaded checkpoint gets them
    return {k: out[k] for k in shapes}  # released key order


def synthetic_network(seed: int = 0) -> DiffRIRNet:
    """An eval-mode x1 network holding :func:`synthetic_state_dict` weights."""
    net = build_diffrir_x1()
    net.load_state_dict(synthetic_state_dict(seed), strict=True)
    return net.requires_grad_(False)
