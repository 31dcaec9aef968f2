"""Checks on loaded weights that would otherwise poison every output silently.

A weight file can be intact as a file and still be wrong as numbers: a NaN in a norm or an embedding
row turns every reply into ``!!!!!!`` or every image into NaN without any error, and an embedding
stored as integers loads (torch casts it) into garbage. These checks run once per load: dtypes on every
tensor (cheap: metadata), finite values on the tensors whose damage spreads everywhere (norms,
embeddings; all of them when ``everything``).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping

import torch

from .errors import LLMGAInputError

__all__ = ["SPREADING", "check_weights"]

# Norm scales/shifts and embeddings: one bad value here reaches every token or pixel.
SPREADING = re.compile(r"norm|embed|\.ln_?\w*\.|layernorm|layer_norm|\bln\b", re.IGNORECASE)
_INTEGER_OK = ("position_ids", "num_batches_tracked")  # integer buffers some checkpoints keep


def check_weights(
    state: Mapping[str, torch.Tensor],
    where: str,
    *,
    everything: bool = False,
    fix: str = "download it again",
    integer_ok: Callable[[str], bool] | None = None,
) -> None:
    """Refuse non-floating weights (naming key and dtype) and non-finite norms/embeddings (naming the key).
    ``integer_ok(key)`` admits integer tensors where a format stores them (bitsandbytes-quantised layers)."""
    for key, value in state.items():
        if key.endswith(_INTEGER_OK) or (integer_ok is not None and integer_ok(key)):
            continue
        if not (value.is_floating_point() or value.is_complex()):
            raise LLMGAInputError(
                f"{where}: {key} is stored as {str(value.dtype).removeprefix('torch.')}, but weights are floating "
                f"point numbers; the file is corrupt or was converted wrongly: {fix}."
            )
        if (everything or SPREADING.search(key)) and value.numel() and not bool(torch.isfinite(value).all()):
            bad = int((~torch.isfinite(value)).sum())
            raise LLMGAInputError(
                f"{where}: {key} holds {bad} NaN or infinite values, which would make every output NaN or "
                f"garbage; the file is damaged: {fix}."
            )
