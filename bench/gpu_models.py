"""Random-weight models for bench/gpu_bench.py, built in memory from their configs (no files, no hub).

Two families, each at full size (the GPU run) or scaled down (``--smoke`` on a CPU), from the same code:

- SD1.5 / SDXL checkpoints as ComfyUI state dicts (UNet from ComfyUI's own ``UNetModel`` class, the
  text encoders from its CLIP classes, the KL VAE from its ``AutoencoderKL``), loaded through
  ``comfy.sd.load_state_dict_guess_config``, i.e. ComfyUI's own detection picks SD15 / SDXL exactly as it
  does for a released checkpoint. Scaled down, only the UNet shrinks (to the test fixtures' shapes): the
  CLIP configs are fixed in ComfyUI and detection needs their real widths.
- The LLMGA MLLM in the LLaVA layout (``LLMGAModel``: stock transformers LLM + CLIP ViT-L/14-336 tower +
  mlp2x_gelu projector) with the Qwen2-7B shapes of ``llmga-Qwen2-7B-full-finetune``, built directly on
  the target device in the target dtype; the tokenizer is the Qwen2.5 one ComfyUI ships.

Weights are tiled from one seeded random pool (norm gains 1, biases 0, as the test fixtures do): speed does
not depend on the values, and filling 3 B parameters this way costs a memory copy, not a random draw each.
"""

from __future__ import annotations

import math
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

REPO = Path(__file__).resolve().parents[1]

# --- SD UNet configs (ComfyUI UNetModel kwargs) --------------------------------------------------------------

_COMMON = dict(
    image_size=32,
    in_channels=4,
    out_channels=4,
    model_channels=320,
    use_spatial_transformer=True,
    legacy=False,
    use_temporal_attention=False,
    use_temporal_resblock=False,
)
# SD1.5 (runwayml v1.5 / LLMGA's SD1.5 T2I): 4 levels, attention on the first three, 859.5 M parameters.
SD15_FULL = dict(
    _COMMON,
    num_res_blocks=[2, 2, 2, 2],
    channel_mult=[1, 2, 4, 4],
    transformer_depth=[1, 1, 1, 1, 1, 1, 0, 0],
    transformer_depth_output=[1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0],
    transformer_depth_middle=1,
    use_linear_in_transformer=False,
    context_dim=768,
    num_heads=8,
    adm_in_channels=None,
)
# SDXL base 1.0 (LLMGA's SDXL T2I): 3 levels, 0/2/10 transformer blocks, 2.57 B parameters.
SDXL_FULL = dict(
    _COMMON,
    num_res_blocks=[2, 2, 2],
    channel_mult=[1, 2, 4],
    transformer_depth=[0, 0, 2, 2, 10, 10],
    transformer_depth_output=[0, 0, 0, 2, 2, 2, 10, 10, 10],
    transformer_depth_middle=10,
    num_head_channels=64,
    use_linear_in_transformer=True,
    context_dim=2048,
    adm_in_channels=2816,
    num_classes="sequential",
)
# The KL VAE of SD1.5 and SDXL (same shapes).
VAE_DDCONFIG = {
    "double_z": True,
    "z_channels": 4,
    "resolution": 256,
    "in_channels": 3,
    "out_ch": 3,
    "ch": 128,
    "ch_mult": [1, 2, 4, 4],
    "num_res_blocks": 2,
    "attn_resolutions": [],
    "dropout": 0.0,
}


def unet_kwargs(kind: str, smoke: bool) -> dict[str, Any]:
    """UNetModel kwargs: the real SD1.5 / SDXL shapes, or the test fixtures' tiny ones for ``--smoke``."""
    if kind not in ("sd15", "sdxl"):
        raise ValueError(f"unknown SD kind {kind!r}")
    if not smoke:
        return dict(SD15_FULL if kind == "sd15" else SDXL_FULL)
    sys.path.insert(0, str(REPO / "tests" / "fixtures"))
    if kind == "sd15":
        from build_tiny_sd import UNET_KWARGS

        return dict(
            UNET_KWARGS,
            in_channels=4,
            out_channels=4,
            transformer_depth_output=[1, 1],
            use_temporal_attention=False,
            use_temporal_resblock=False,
        )
    from build_tiny_sdxl import VEGA_KWARGS

    return dict(VEGA_KWARGS)


# --- random fill ---------------------------------------------------------------------------------------------

_POOL_SIZE = 1_048_573  # prime, so tiled tensors do not repeat along any power-of-two axis


def _pool(seed: int) -> torch.Tensor:
    return torch.randn(_POOL_SIZE, generator=torch.Generator().manual_seed(seed))


def _is_norm(name: str) -> bool:
    # the same rule as tests/fixtures/build_tiny_sd.randomised: group/layer norm gains start at 1
    return "norm" in name or ".in_layers.0." in name or ".out_layers.0." in name or name.endswith("out.0.weight")


def random_state(
    shapes: dict[str, torch.Size], seed: int, scale: float = 0.02, dtype: torch.dtype = torch.float16
) -> dict[str, torch.Tensor]:
    """CPU tensors for every name: norm gains 1, biases 0, the rest ``scale`` x a seeded random pool."""
    pool = (_pool(seed) * scale).to(dtype)
    out: dict[str, torch.Tensor] = {}
    for name in sorted(shapes):
        shape = shapes[name]
        n = math.prod(shape)
        if name.endswith(".bias"):
            out[name] = torch.zeros(shape, dtype=dtype)
        elif _is_norm(name) and name.endswith(".weight") and len(shape) == 1:
            out[name] = torch.ones(shape, dtype=dtype)
        else:
            out[name] = pool.repeat(n // _POOL_SIZE + 1)[:n].reshape(shape).clone()
    return out


def _shapes(module: torch.nn.Module) -> dict[str, torch.Size]:
    return {k: v.shape for k, v in module.state_dict().items()}


# --- SD checkpoints through ComfyUI ---------------------------------------------------------------------------


def sd_state_dict(kind: str, smoke: bool, seed: int = 0) -> dict[str, torch.Tensor]:
    """An LDM single-file checkpoint state dict (UNet + text encoders + KL VAE), fp16, on the CPU.

    Needs ComfyUI importable (its classes give every key and shape).
    """
    import comfy.clip_model
    import comfy.ops
    import comfy.sdxl_clip
    import comfy.supported_models
    from comfy.ldm.models.autoencoder import AutoencoderKL
    from comfy.ldm.modules.diffusionmodules.openaimodel import UNetModel

    ops = comfy.ops.disable_weight_init
    with torch.device("meta"):
        unet = UNetModel(operations=ops, device="meta", **unet_kwargs(kind, smoke))
        vae = AutoencoderKL(ddconfig=VAE_DDCONFIG, embed_dim=4)
    state = {f"model.diffusion_model.{k}": v for k, v in random_state(_shapes(unet), seed).items()}
    del unet
    vae_sd = random_state(_shapes(vae), seed + 1, scale=0.05)
    state.update({f"first_stage_model.{k}": v for k, v in vae_sd.items()})
    if kind == "sd15":
        import json

        config = json.loads((Path(comfy.clip_model.__file__).parent / "sd1_clip_config.json").read_text())
        clip = comfy.clip_model.CLIPTextModel(config, torch.float16, "meta", ops)
        clip_sd = random_state(_shapes(clip), seed + 2)
        state.update({f"cond_stage_model.transformer.{k}": v for k, v in clip_sd.items() if "text_projection" not in k})
    else:
        with torch.device("meta"):
            clip = comfy.sdxl_clip.SDXLClipModel(device="meta", dtype=torch.float16)
        clip_sd = random_state(_shapes(clip), seed + 2)
        state.update(comfy.supported_models.SDXL({}).process_clip_state_dict_for_saving(clip_sd))
    return state


@dataclass
class SDModels:
    """ComfyUI's three checkpoint outputs."""

    model: Any  # ModelPatcher
    clip: Any
    vae: Any
    parameters: int  # UNet parameters
    detected: str  # the ComfyUI model class detection picked


def load_sd(kind: str, smoke: bool, seed: int = 0) -> SDModels:
    """Build the checkpoint in memory and load it the way CheckpointLoaderSimple does (no file)."""
    import comfy.sd

    state = sd_state_dict(kind, smoke, seed)
    unet_params = sum(v.numel() for k, v in state.items() if k.startswith("model.diffusion_model."))
    model, clip, vae, _ = comfy.sd.load_state_dict_guess_config(state, output_vae=True, output_clip=True)
    detected = type(model.model.model_config).__name__
    return SDModels(model=model, clip=clip, vae=vae, parameters=unet_params, detected=detected)


# --- the LLMGA MLLM (LLaVA layout) ----------------------------------------------------------------------------

# llmga-Qwen2-7B-full-finetune: Qwen2-7B text config + LLaVA mm fields (CLIP ViT-L/14-336, mlp2x_gelu).
QWEN2_7B = {
    "model_type": "qwen2",
    "hidden_size": 3584,
    "intermediate_size": 18944,
    "num_hidden_layers": 28,
    "num_attention_heads": 28,
    "num_key_value_heads": 4,
    "max_position_embeddings": 32768,
    "rope_theta": 1000000.0,
    "rms_norm_eps": 1e-6,
    "hidden_act": "silu",
    "tie_word_embeddings": False,
    "use_sliding_window": False,
}
CLIP_L14_336 = {
    "hidden_size": 1024,
    "intermediate_size": 4096,
    "num_hidden_layers": 24,
    "num_attention_heads": 16,
    "image_size": 336,
    "patch_size": 14,
    "projection_dim": 768,
    "hidden_act": "quick_gelu",
    "layer_norm_eps": 1e-5,
}
# --smoke: same layout, tiny widths; the tower keeps 336 px / patch 14, so the splice has the real 576 rows.
QWEN2_SMOKE = dict(
    QWEN2_7B, hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2
)
CLIP_SMOKE = dict(CLIP_L14_336, hidden_size=64, intermediate_size=128, num_hidden_layers=3, num_attention_heads=4)


def qwen_tokenizer_dir(comfy_dir: Path) -> Path:
    return comfy_dir / "comfy" / "text_encoders" / "qwen25_tokenizer"


@dataclass
class MLLMBench:
    """An in-memory LLMGA MLLM and what the bandwidth bound needs to know about it."""

    model: Any  # llmga_core.mllm.model.LLMGAModel
    tokenizer: Any
    llm_parameters: int
    decode_bytes_per_token: int  # weight bytes one decode step reads (all LLM weights but the embedding table)
    config: dict[str, Any]


def _fill_(module: torch.nn.Module, seed: int, scale: float = 0.02) -> None:
    """In place, on the module's device and dtype: the same rule as :func:`random_state`."""
    first = next(module.parameters())
    pool = (_pool(seed) * scale).to(device=first.device, dtype=first.dtype)
    with torch.no_grad():
        for name, p in module.named_parameters():
            if name.endswith(".bias"):
                p.zero_()
            elif p.ndim == 1 and "norm" in name:
                p.fill_(1.0)
            else:
                n = p.numel()
                p.copy_(pool.repeat(n // _POOL_SIZE + 1)[:n].view_as(p))


def build_mllm(comfy_dir: Path, smoke: bool, device: str, dtype: torch.dtype, seed: int = 0) -> MLLMBench:
    """``LLMGAModel`` with the released Qwen2-7B LLMGA layout, built directly on ``device`` in ``dtype``."""
    from transformers import AutoTokenizer, CLIPVisionConfig, CLIPVisionModel, Qwen2Config, Qwen2ForCausalLM

    from llmga_core.mllm.model import LLMGAModel, VisionSettings, build_projector

    tokenizer = AutoTokenizer.from_pretrained(str(qwen_tokenizer_dir(comfy_dir)), local_files_only=True)
    text = dict(QWEN2_SMOKE if smoke else QWEN2_7B)
    # load_mllm resizes the embeddings to len(tokenizer) (LLMGA's builder does); build at that size directly
    text["vocab_size"] = len(tokenizer)
    text.pop("model_type")
    vision = CLIP_SMOKE if smoke else CLIP_L14_336
    with torch.device(device):
        llm = Qwen2ForCausalLM._from_config(Qwen2Config(**text), dtype=dtype)
        tower = CLIPVisionModel._from_config(CLIPVisionConfig(**vision), dtype=dtype)
        projector = build_projector("mlp2x_gelu", vision["hidden_size"], text["hidden_size"]).to(dtype)
    for i, part in enumerate((llm, tower, projector)):
        _fill_(part, seed + i)
    settings = VisionSettings(select_layer=-2, select_feature="patch", image_size=vision["image_size"], max_length=2048)
    model = LLMGAModel(llm.eval(), tower.eval(), projector.eval(), settings).requires_grad_(False)
    llm_params = sum(p.numel() for p in llm.parameters())
    embed = llm.get_input_embeddings().weight
    element = embed.element_size()
    decode_bytes = (llm_params - embed.numel()) * element + embed.shape[1] * element  # one embedding row
    return MLLMBench(
        model=model,
        tokenizer=tokenizer,
        llm_parameters=llm_params,
        decode_bytes_per_token=decode_bytes,
        config={"text": text, "vision": vision, "projector": "mlp2x_gelu", "layout": "llmga-Qwen2-7B-full-finetune"},
    )
