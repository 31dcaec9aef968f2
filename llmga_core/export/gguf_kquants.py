"""K-quant mixes for the GGUF export (Q4_K_M, Q5_K_M, Q6_K): llama.cpp's type per tensor, its quantizers.

The ``gguf`` package has no K-quant quantizers, so the bytes come from llama.cpp's own
``ggml_quantize_chunk`` in the xllamacpp library the GGUF loader already uses: the same reference
quantizers ``llama-quantize`` runs without an importance matrix. Which type each tensor gets follows
``llama-quantize``'s mixes for dense (non-MoE) models, as in its ``src/llama-quant.cpp``:

- the output head (or the token embeddings when the head is tied to them): Q6_K, Q8_0 when its rows are not
  whole 256-element blocks;
- ``attn_v`` (and a fused ``attn_qkv``) and ``ffn_down`` of the first and last eighth of the layers and every
  third layer between: Q6_K under Q4_K_M and Q5_K_M;
- every other matrix: the mix's base type (Q4_K, Q5_K, Q6_K);
- rows that are not whole 256-element blocks fall back to Q5_0 (for Q4_K), Q5_1 (Q5_K) or Q8_0 (Q6_K), and
  to f16 when not whole 32-element blocks either (Qwen2-0.5B's 896-wide rows are an example).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import gguf
import numpy as np

from ..errors import LLMGAInputError

__all__ = ["KQUANT_MIXES", "KQuantMix", "ggml_quantize", "tensor_type"]

Q = gguf.GGMLQuantizationType


@dataclass(frozen=True)
class KQuantMix:
    file_type: gguf.LlamaFileType
    base: gguf.GGMLQuantizationType
    more_bits: bool  # attn_v / ffn_down of some layers in Q6_K


KQUANT_MIXES = {
    "q4_k_m": KQuantMix(gguf.LlamaFileType.MOSTLY_Q4_K_M, Q.Q4_K, True),
    "q5_k_m": KQuantMix(gguf.LlamaFileType.MOSTLY_Q5_K_M, Q.Q5_K, True),
    "q6_k": KQuantMix(gguf.LlamaFileType.MOSTLY_Q6_K, Q.Q6_K, False),
}
_FALLBACK = {Q.Q4_K: Q.Q5_0, Q.Q5_K: Q.Q5_1, Q.Q6_K: Q.Q8_0}
_LAYER = re.compile(r"blk\.(\d+)\.")


def _more_bits(layer: int, n_layers: int) -> bool:
    """llama-quantize's choice of layers that keep more bits: first and last eighth, every third between."""
    return layer < n_layers // 8 or layer >= 7 * n_layers // 8 or (layer - n_layers // 8) % 3 == 2


def _blocks(kind: gguf.GGMLQuantizationType) -> int:
    return gguf.GGML_QUANT_SIZES[kind][0]


def tensor_type(
    name: str, row_length: int, mix: KQuantMix, n_layers: int, tied_head: bool
) -> gguf.GGMLQuantizationType:
    """The GGUF type of matrix ``name`` (rows of ``row_length`` elements) under ``mix``."""
    kind = mix.base
    if name == "output.weight" or (tied_head and name == "token_embd.weight"):
        kind = Q.Q8_0 if row_length % _blocks(kind) else Q.Q6_K
    elif mix.more_bits and (name.endswith(("attn_v.weight", "attn_qkv.weight", "ffn_down.weight"))):
        layer = _LAYER.match(name)
        if layer is not None and _more_bits(int(layer.group(1)), n_layers):
            kind = Q.Q6_K
    if row_length % _blocks(kind):
        kind = _FALLBACK.get(kind, kind)
        if row_length % _blocks(kind):
            kind = Q.F16
    return kind


def ggml_quantize(matrix: np.ndarray, kind: gguf.GGMLQuantizationType) -> np.ndarray:
    """``matrix`` (rows × n, float32) in ``kind``'s blocks, by llama.cpp's quantizer: uint8, rows × row bytes."""
    from ..llamacpp.binding import library

    rows, n = matrix.shape
    if n % _blocks(kind):
        raise LLMGAInputError(f"rows of {n} elements are not whole {kind.name} blocks of {_blocks(kind)}.")
    lib = library()
    src = np.ascontiguousarray(matrix, dtype=np.float32)
    row_bytes = int(lib.ggml_row_size(int(kind), n))
    out = np.empty((rows, row_bytes), dtype=np.uint8)
    written = lib.ggml_quantize_chunk(int(kind), src.ctypes.data, out.ctypes.data, 0, rows, n, None)
    if written != out.nbytes:
        raise RuntimeError(f"llama.cpp wrote {written} bytes of {kind.name}, expected {out.nbytes}.")
    return out
