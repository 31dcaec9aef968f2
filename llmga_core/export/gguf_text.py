"""The base LLM of an LLMGA model as a llama.cpp text GGUF: tensor names, layouts and hyper-parameters.

Per backbone (llama.cpp architecture in brackets):

- Llama / vicuna / Llama-3 / Mistral [``llama``]: llama.cpp's llama graph rotates *adjacent* pairs while
  transformers rotates the two halves of each head (``rotate_half``), so the rows of ``q_proj``/``k_proj``
  are re-ordered per head (halves interleaved) -- the same permutation llama.cpp's converter applies;
- Qwen2 [``qwen2``]: q/k/v biases; halves rotation on both sides, no permutation;
- Phi-3 [``phi3``]: fused ``qkv_proj`` and ``gate_up_proj`` are llama.cpp's ``attn_qkv``/``ffn_up``
  (its SwiGLU takes the gate from the first half, as ``Phi3MLP`` does); LongRoPE's per-dimension factors
  are the ``rope_factors_{short,long}`` tensors, its cos/sin factor ``rope.scaling.attn_factor``, and
  llama.cpp uses the long factors only when the context is longer than the original 4k, as
  transformers does with the sequence length;
- Gemma [``gemma``]: ``GemmaRMSNorm`` multiplies by ``1 + w``, llama.cpp's RMSNorm by ``w``, so every norm
  weight is stored plus one. llama.cpp's gemma graph scales *all* input embeddings, image rows included,
  by sqrt(n_embd): the scaling LLMGA-gemma was trained with (llmga-spec §1.3 caveat 3), so nothing is
  folded anywhere.

A head absent from the checkpoint (tied embeddings) is not written: llama.cpp then reuses
``token_embd``. The vocabulary is the loaded model's (LLMGA's loader already shrank Qwen2/Phi-3's padded
rows to ``len(tokenizer)``, spec §1.3), so llama.cpp's softmax runs over the same rows.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator
from typing import Any

import gguf
import numpy as np
import torch

from ..errors import LLMGAInputError

__all__ = ["GGUF_ARCH", "text_hparams", "text_tensors"]

# transformers model_type of the base LLM -> llama.cpp architecture
GGUF_ARCH = {"llama": "llama", "mistral": "llama", "qwen2": "qwen2", "phi3": "phi3", "gemma": "gemma"}

_LAYER = re.compile(r"model\.layers\.(\d+)\.(.+)")
_LAYER_NAMES = {
    "input_layernorm.weight": "attn_norm.weight",
    "post_attention_layernorm.weight": "ffn_norm.weight",
    "self_attn.q_proj.weight": "attn_q.weight",
    "self_attn.q_proj.bias": "attn_q.bias",
    "self_attn.k_proj.weight": "attn_k.weight",
    "self_attn.k_proj.bias": "attn_k.bias",
    "self_attn.v_proj.weight": "attn_v.weight",
    "self_attn.v_proj.bias": "attn_v.bias",
    "self_attn.o_proj.weight": "attn_output.weight",
    "self_attn.qkv_proj.weight": "attn_qkv.weight",
    "mlp.gate_proj.weight": "ffn_gate.weight",
    "mlp.up_proj.weight": "ffn_up.weight",
    "mlp.gate_up_proj.weight": "ffn_up.weight",
    "mlp.down_proj.weight": "ffn_down.weight",
}
_GLOBAL_NAMES = {
    "model.embed_tokens.weight": "token_embd.weight",
    "model.norm.weight": "output_norm.weight",
    "lm_head.weight": "output.weight",
}


def _rope_parameters(cfg: Any) -> dict[str, Any]:
    params = dict(getattr(cfg, "rope_parameters", None) or {})
    legacy = getattr(cfg, "rope_scaling", None)  # transformers < 5 kept these apart
    if isinstance(legacy, dict):
        params = {**legacy, **params}
    if "rope_theta" not in params and getattr(cfg, "rope_theta", None) is not None:
        params["rope_theta"] = cfg.rope_theta
    return params


def head_dim(cfg: Any) -> int:
    return int(getattr(cfg, "head_dim", None) or cfg.hidden_size // cfg.num_attention_heads)


def _longrope(cfg: Any) -> tuple[list[float], list[float], float, int] | None:
    """(short factors, long factors, cos/sin factor, original context) for Phi-3's LongRoPE, else None."""
    params = _rope_parameters(cfg)
    kind = str(params.get("rope_type") or params.get("type") or "default").lower()
    if kind == "default":
        return None
    if kind not in ("longrope", "su"):
        raise LLMGAInputError(f"GGUF export: Phi-3 rope scaling {kind!r} is not supported (LongRoPE is).")
    original = int(params.get("original_max_position_embeddings") or cfg.original_max_position_embeddings)
    factor = cfg.max_position_embeddings / original
    attn = params.get("attention_factor")
    if attn is None:
        attn = math.sqrt(1 + math.log(factor) / math.log(original)) if factor > 1 else 1.0
    return list(params["short_factor"]), list(params["long_factor"]), float(attn), original


def text_hparams(writer: gguf.GGUFWriter, cfg: Any, vocab_rows: int) -> None:
    """The ``<arch>.*`` keys for the base LLM config ``cfg``."""
    dim = head_dim(cfg)
    writer.add_context_length(int(cfg.max_position_embeddings))
    writer.add_embedding_length(int(cfg.hidden_size))
    writer.add_block_count(int(cfg.num_hidden_layers))
    writer.add_feed_forward_length(int(cfg.intermediate_size))
    writer.add_head_count(int(cfg.num_attention_heads))
    writer.add_head_count_kv(int(getattr(cfg, "num_key_value_heads", None) or cfg.num_attention_heads))
    writer.add_layer_norm_rms_eps(float(cfg.rms_norm_eps))
    writer.add_rope_freq_base(float(_rope_parameters(cfg).get("rope_theta", 10000.0)))
    rotary = float(_rope_parameters(cfg).get("partial_rotary_factor", 1.0) or 1.0)
    writer.add_rope_dimension_count(int(dim * rotary))
    writer.add_key_length(dim)
    writer.add_value_length(dim)
    writer.add_vocab_size(vocab_rows)
    if cfg.model_type == "phi3" and (rope := _longrope(cfg)) is not None:
        writer.add_rope_scaling_attn_factors(rope[2])
        writer.add_rope_scaling_orig_ctx_len(rope[3])


def _permute_rotary(weight: torch.Tensor, heads: int) -> torch.Tensor:
    """transformers' half-split rotary rows -> llama.cpp's interleaved pairs, per head."""
    rows = weight.shape[0]
    return weight.reshape(heads, 2, rows // heads // 2, *weight.shape[1:]).transpose(1, 2).reshape(weight.shape)


def text_tensors(language_model: Any) -> Iterator[tuple[str, torch.Tensor]]:
    """(GGUF name, tensor) of every base-LLM tensor, in llama.cpp's layout."""
    cfg = language_model.config
    kind = cfg.model_type
    if kind not in GGUF_ARCH:
        raise LLMGAInputError(f"GGUF export supports {sorted(GGUF_ARCH)} base models, not {kind!r}.")
    tied = bool(getattr(cfg, "tie_word_embeddings", False))
    heads = int(cfg.num_attention_heads)
    kv_heads = int(getattr(cfg, "num_key_value_heads", None) or heads)
    for key, value in language_model.state_dict().items():
        if key == "lm_head.weight" and tied:
            continue
        if key in _GLOBAL_NAMES:
            name = _GLOBAL_NAMES[key]
        elif (match := _LAYER.fullmatch(key)) and match.group(2) in _LAYER_NAMES:
            name = f"blk.{match.group(1)}.{_LAYER_NAMES[match.group(2)]}"
        else:
            raise LLMGAInputError(f"GGUF export: no llama.cpp name for the {kind} tensor {key!r}.")
        if kind == "gemma" and name.endswith("norm.weight"):
            value = value.float() + 1  # GemmaRMSNorm scales by (1 + w); in f32, 1 + w rounds in 16 bits
        if GGUF_ARCH[kind] == "llama" and name.endswith(("attn_q.weight", "attn_q.bias")):
            value = _permute_rotary(value, heads)
        elif GGUF_ARCH[kind] == "llama" and name.endswith(("attn_k.weight", "attn_k.bias")):
            value = _permute_rotary(value, kv_heads)
        yield name, value
    if kind == "phi3" and (rope := _longrope(cfg)) is not None:
        half = int(head_dim(cfg) * float(_rope_parameters(cfg).get("partial_rotary_factor", 1.0) or 1.0)) // 2
        for name, factors in (("rope_factors_short.weight", rope[0]), ("rope_factors_long.weight", rope[1])):
            if len(factors) != half:
                raise LLMGAInputError(f"GGUF export: Phi-3 {name} has {len(factors)} factors, expected {half}.")
            yield name, torch.tensor(factors, dtype=torch.float32)


def as_array(value: torch.Tensor, f16: bool) -> np.ndarray:
    """numpy data for the writer: matrices in f16 when asked, vectors (norms, biases, factors) in f32."""
    dtype = torch.float16 if f16 and value.ndim >= 2 else torch.float32
    return value.detach().to("cpu", dtype).contiguous().numpy()
