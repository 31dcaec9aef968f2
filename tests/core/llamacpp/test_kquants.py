"""K-quant exports (``--dtype q4_k_m|q5_k_m|q6_k``): llama-quantize's type per tensor, llama.cpp's own block
bytes (read back by the ``gguf`` package's independent dequantizer), and a Q4_K_M file that llama.cpp loads
and that stays close to the f32 export."""

from __future__ import annotations

from pathlib import Path

import gguf
import numpy as np
import pytest

from llmga_core.export.gguf import export_gguf
from llmga_core.export.gguf_kquants import KQUANT_MIXES, ggml_quantize, tensor_type
from llmga_core.llamacpp import inspect_gguf
from tests.fixtures.gguf_exports import first_step_cosine
from tests.fixtures.llama_server import require_llama_server
from tests.fixtures.tiny_mllm import WIDE, tiny_wide_mllm_dir

require_llama_server()

Q = gguf.GGMLQuantizationType
Q4_K_M, Q5_K_M, Q6_K = KQUANT_MIXES["q4_k_m"], KQUANT_MIXES["q5_k_m"], KQUANT_MIXES["q6_k"]


def test_the_mixes_pick_llama_quantizes_types_for_a_32_layer_model() -> None:
    def kind(name: str, width: int = 4096, mix=Q4_K_M, tied: bool = False) -> Q:
        return tensor_type(name, width, mix, 32, tied)

    # more bits in layers < 4, >= 28 and (i - 4) % 3 == 2 (llama-quantize's use_more_bits for 32 layers)
    more = [i for i in range(32) if kind(f"blk.{i}.attn_v.weight") == Q.Q6_K]
    assert more == [0, 1, 2, 3, 6, 9, 12, 15, 18, 21, 24, 27, 28, 29, 30, 31]
    assert [i for i in range(32) if kind(f"blk.{i}.ffn_down.weight", 11008) == Q.Q6_K] == more
    assert kind("blk.5.attn_qkv.weight") == Q.Q4_K and kind("blk.6.attn_qkv.weight") == Q.Q6_K  # fused, as attn_v
    for name in ("attn_q", "attn_k", "attn_output", "ffn_gate", "ffn_up"):
        assert kind(f"blk.0.{name}.weight") == Q.Q4_K
    assert kind("output.weight") == Q.Q6_K and kind("token_embd.weight") == Q.Q4_K
    assert kind("token_embd.weight", tied=True) == Q.Q6_K  # the tied table is the head
    assert kind("blk.0.attn_q.weight", mix=Q5_K_M) == Q.Q5_K and kind("blk.0.attn_v.weight", mix=Q5_K_M) == Q.Q6_K
    assert {kind(f"blk.{i}.attn_v.weight", mix=Q6_K) for i in range(32)} == {Q.Q6_K}


def test_rows_that_are_not_whole_blocks_fall_back_as_llama_quantize_does() -> None:
    # Qwen2-0.5B: 896-wide rows (3.5 blocks of 256), 4864-wide ffn_down rows, head tied to the embeddings
    assert tensor_type("blk.10.attn_q.weight", 896, Q4_K_M, 24, True) == Q.Q5_0
    assert tensor_type("blk.10.ffn_down.weight", 4864, Q4_K_M, 24, True) == Q.Q4_K
    assert tensor_type("blk.0.ffn_down.weight", 4864, Q4_K_M, 24, True) == Q.Q6_K
    assert tensor_type("token_embd.weight", 896, Q4_K_M, 24, True) == Q.Q8_0
    assert tensor_type("blk.0.attn_q.weight", 896, Q5_K_M, 24, True) == Q.Q5_1
    assert tensor_type("blk.0.attn_q.weight", 896, Q6_K, 24, True) == Q.Q8_0
    assert tensor_type("blk.0.attn_q.weight", 40, Q4_K_M, 24, True) == Q.F16  # not whole 32-blocks either


@pytest.mark.parametrize(("kind", "rms"), [(Q.Q4_K, 0.08), (Q.Q5_K, 0.04), (Q.Q6_K, 0.02)])
def test_llama_cpps_block_bytes_read_back_with_the_gguf_packages_dequantizer(kind: Q, rms: float) -> None:
    matrix = np.random.default_rng(0).standard_normal((16, 512)).astype(np.float32)
    blocks = ggml_quantize(matrix, kind)
    assert blocks.dtype == np.uint8 and blocks.shape == (16, 512 // 256 * gguf.GGML_QUANT_SIZES[kind][1])
    back = gguf.quants.dequantize(blocks, kind).reshape(matrix.shape)
    error = float(np.sqrt(np.mean((back - matrix) ** 2)))
    assert 0.1 * rms < error < rms, error  # unit-variance weights: the type's known quantisation noise


@pytest.mark.parametrize("kind", [Q.Q8_0, Q.Q5_0])
def test_llama_cpps_bytes_equal_the_gguf_packages_reference_quantizer(kind: Q) -> None:
    matrix = np.random.default_rng(1).standard_normal((4, 256)).astype(np.float32)
    assert np.array_equal(ggml_quantize(matrix, kind), gguf.quants.quantize(matrix, kind))


def test_a_q4_k_m_export_follows_the_mix_loads_and_stays_close(tmp_path: Path) -> None:
    folder = tiny_wide_mllm_dir()
    reference = export_gguf(folder, tmp_path / "f32", "f32")
    export = export_gguf(folder, tmp_path / "q4_k_m", "q4_k_m")
    assert export.model.name.endswith("-q4_k_m.gguf") and export.mmproj.name.endswith("-f16.gguf")
    assert inspect_gguf(export.model).file_type == int(gguf.LlamaFileType.MOSTLY_Q4_K_M)
    full = {t.name: np.asarray(t.data) for t in gguf.GGUFReader(reference.model).tensors}
    tensors = gguf.GGUFReader(export.model).tensors
    types = {t.name: Q(int(t.tensor_type)) for t in tensors}
    assert types["blk.0.attn_norm.weight"] == Q.F32
    assert (types["blk.0.attn_v.weight"], types["blk.1.attn_v.weight"]) == (Q.Q4_K, Q.Q6_K)
    assert (types["blk.1.ffn_down.weight"], types["output.weight"]) == (Q.Q6_K, Q.Q6_K)
    # every matrix has its mix type, and its blocks hold that weight: the relative error of the type's
    # rounding on these normally distributed weights (measured 0.071 for Q4_K, 0.018 for Q6_K), no more
    noise = {Q.Q4_K: (0.05, 0.08), Q.Q6_K: (0.01, 0.02)}
    for tensor in tensors:
        if types[tensor.name] == Q.F32:
            continue
        width = WIDE.intermediate if "ffn_down" in tensor.name else WIDE.hidden
        assert types[tensor.name] == tensor_type(tensor.name, width, Q4_K_M, WIDE.layers, False), tensor.name
        want = full[tensor.name]
        back = gguf.quants.dequantize(np.asarray(tensor.data), types[tensor.name]).reshape(want.shape)
        low, high = noise[types[tensor.name]]
        assert low < np.sqrt(np.mean((back - want) ** 2) / np.mean(want**2)) < high, tensor.name
    cosine = first_step_cosine(export.model, reference.model, export.template)
    # random weights amplify rounding: 0.85 measured (q8_0 0.996, q4_0 with Q8_0 embeddings 0.957)
    assert cosine > 0.75, cosine
