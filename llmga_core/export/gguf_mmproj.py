"""LLMGA's CLIP tower + ``mlp2x_gelu`` projector as a llama.cpp mtmd "mmproj" GGUF (LLaVA-1.5 layout).

Keys and tensor names are those llama.cpp's clip loader reads (``tools/mtmd/clip-impl.h``) for the
``mlp`` projector: ``v.*`` for the tower, ``mm.0``/``mm.2`` for the two projector layers, no post-LN
(LLaVA takes a hidden state, not the pooled output), and the patch rows only (the graph drops one row).

Feature layer: LLaVA takes ``hidden_states[select_layer]`` (-2: the output of all blocks but the last).
The file stores that layer explicitly as ``clip.vision.feature_layer`` and only the blocks up to it.
Without the explicit layer, llama.cpp's llava graph runs ``block_count - 1`` blocks, and the legacy
converter already wrote ``block_count = n - 1``: one block short (llama.cpp issue #25817); with it, the
graph runs exactly ``feature_layer`` blocks on every version.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import gguf
import torch

from ..errors import LLMGAInputError

__all__ = ["feature_layer", "mmproj_hparams", "mmproj_tensors"]

_BLOCK_NAMES = {
    "layer_norm1": "ln1",
    "layer_norm2": "ln2",
    "self_attn.q_proj": "attn_q",
    "self_attn.k_proj": "attn_k",
    "self_attn.v_proj": "attn_v",
    "self_attn.out_proj": "attn_out",
    "mlp.fc1": "ffn_up",
    "mlp.fc2": "ffn_down",
}


def feature_layer(select_layer: int, num_layers: int) -> int:
    """LLaVA's ``mm_vision_select_layer`` as a count of blocks run (0 = the embeddings)."""
    layer = select_layer if select_layer >= 0 else num_layers + 1 + select_layer
    if not 1 <= layer <= num_layers:
        raise LLMGAInputError(f"mm_vision_select_layer {select_layer} is outside the tower's {num_layers} blocks.")
    return layer


def mmproj_hparams(
    writer: gguf.GGUFWriter, vision_cfg: Any, settings: Any, mean: tuple[float, ...], std: tuple[float, ...]
) -> None:
    """The ``clip.*`` keys."""
    if settings.select_feature != "patch":
        raise LLMGAInputError(
            f"GGUF export: mm_vision_select_feature {settings.select_feature!r} is not supported by llama.cpp's "
            "llava graph, which always drops the CLS row ('patch')."
        )
    layer = feature_layer(settings.select_layer, int(vision_cfg.num_hidden_layers))
    if vision_cfg.hidden_act not in ("quick_gelu", "gelu"):
        raise LLMGAInputError(f"GGUF export: CLIP activation {vision_cfg.hidden_act!r} is not supported.")
    writer.add_bool("clip.has_text_encoder", False)
    writer.add_bool("clip.has_vision_encoder", True)
    writer.add_bool("clip.has_llava_projector", True)
    writer.add_string("clip.projector_type", "mlp")
    writer.add_bool("clip.use_gelu", vision_cfg.hidden_act == "gelu")  # else llama.cpp uses quick GELU
    writer.add_uint32("clip.vision.image_size", int(vision_cfg.image_size))
    writer.add_uint32("clip.vision.patch_size", int(vision_cfg.patch_size))
    writer.add_uint32("clip.vision.embedding_length", int(vision_cfg.hidden_size))
    writer.add_uint32("clip.vision.feed_forward_length", int(vision_cfg.intermediate_size))
    writer.add_uint32("clip.vision.projection_dim", int(getattr(vision_cfg, "projection_dim", 0) or 0))
    writer.add_uint32("clip.vision.attention.head_count", int(vision_cfg.num_attention_heads))
    writer.add_float32("clip.vision.attention.layer_norm_epsilon", float(vision_cfg.layer_norm_eps))
    writer.add_uint32("clip.vision.block_count", layer)
    writer.add_array("clip.vision.feature_layer", [layer])
    writer.add_array("clip.vision.image_mean", [float(x) for x in mean])
    writer.add_array("clip.vision.image_std", [float(x) for x in std])


def mmproj_tensors(vision_tower: Any, projector: Any, select_layer: int) -> Iterator[tuple[str, torch.Tensor]]:
    """(GGUF name, tensor) for the tower blocks up to the feature layer, the embeddings and the projector."""
    cfg = vision_tower.config
    layer = feature_layer(select_layer, int(cfg.num_hidden_layers))
    for key, value in vision_tower.state_dict().items():
        key = key.removeprefix("vision_model.")
        if key == "embeddings.class_embedding":
            yield "v.class_embd", value
        elif key == "embeddings.patch_embedding.weight":
            yield "v.patch_embd.weight", value
        elif key == "embeddings.position_embedding.weight":
            yield "v.position_embd.weight", value
        elif key.startswith("pre_layrnorm."):
            yield "v.pre_ln." + key.split(".", 1)[1], value
        elif key.startswith("encoder.layers."):
            _, _, index, rest = key.split(".", 3)
            if int(index) >= layer:
                continue  # blocks after the feature layer never run
            module, param = rest.rsplit(".", 1)
            if module not in _BLOCK_NAMES:
                raise LLMGAInputError(f"GGUF export: unexpected CLIP tensor {key!r}.")
            yield f"v.blk.{index}.{_BLOCK_NAMES[module]}.{param}", value
        elif key.startswith("post_layernorm.") or key.endswith("position_ids"):
            continue  # LLaVA reads a hidden state, before the post-LN
        else:
            raise LLMGAInputError(f"GGUF export: unexpected CLIP tensor {key!r}.")
    linears = [m for m in projector.modules() if isinstance(m, torch.nn.Linear)]
    gelus = [m for m in projector.modules() if isinstance(m, torch.nn.GELU)]
    if len(linears) != 2 or len(gelus) != 1:
        raise LLMGAInputError(
            "GGUF export supports the mlp2x_gelu projector (Linear, GELU, Linear) only; llama.cpp's llava "
            "graph has no other LLaVA projector."
        )
    for index, linear in zip((0, 2), linears, strict=True):
        yield f"mm.{index}.weight", linear.weight
        yield f"mm.{index}.bias", linear.bias
