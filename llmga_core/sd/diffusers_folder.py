"""What a diffusers folder of LLMGA's SD models holds, decided from its configs before any weight is read.

LLMGA publishes its stage-2 models as diffusers folders (llmga-spec.md 2.1): SD1.5 and SDXL, each as a
4-channel text-to-image and a 9-channel inpainting UNet, with the base models' text encoders and VAE.
This module classifies a folder from ``unet/config.json``, picks the weight files to read, and turns the
diffusers UNet config into the LDM layout description ComfyUI's key converter needs. It reads JSON only.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from ..errors import LLMGAInputError
from ..safe_paths import check_links, confine

Precision = Literal["full", "fp16"]
PREFERENCES: tuple[Precision, ...] = ("full", "fp16")
_SUPPORTED = "LLMGA's SD1.5 or SDXL models (text-to-image with a 4-channel UNet, inpainting with a 9-channel one)"
_UNET_STEMS = ("diffusion_pytorch_model",)
_TEXT_STEMS = ("model", "pytorch_model")
FAMILY_NAMES = {"sd15": "SD1.5", "sdxl": "SDXL"}


@dataclass(frozen=True)
class WeightFiles:
    """The file(s) of one component: one file, or the shards an ``*.index.json`` lists."""

    files: tuple[Path, ...]
    fp16: bool  # the ``.fp16`` variant
    pickle: bool  # ``.bin`` files: only ever read with torch.load(weights_only=True)


@dataclass(frozen=True)
class SDFolder:
    path: Path
    family: Literal["sd15", "sdxl"]
    inpaint: bool
    unet_config: dict[str, Any]  # diffusers' unet/config.json
    unet: WeightFiles
    text_encoders: tuple[WeightFiles, ...]  # text_encoder (CLIP-L), then text_encoder_2 (CLIP-G) for SDXL
    vae: WeightFiles

    @property
    def kind(self) -> str:
        family = FAMILY_NAMES[self.family]
        return f"{family} {'inpainting (9-channel)' if self.inpaint else 'text-to-image (4-channel)'}"


def _variant(name: str, fp16: bool) -> str:
    """diffusers' variant naming: the variant goes before the last suffix (``x.fp16.safetensors``)."""
    if not fp16:
        return name
    stem, _, suffix = name.rpartition(".")
    return f"{stem}.fp16.{suffix}"


def _shards(index: Path, roots: Sequence[str | Path] = ()) -> tuple[Path, ...]:
    try:
        weight_map = json.loads(index.read_text(encoding="utf-8"))["weight_map"]
        names = sorted(set(weight_map.values()))
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as err:
        raise LLMGAInputError(
            f"{index.parent.name}/{index.name} is not a readable weight index ({type(err).__name__}); download it "
            "again."
        ) from None
    if not all(isinstance(n, str) for n in names):
        raise LLMGAInputError(f"{index.parent.name}/{index.name}: weight_map values must be file names.")
    source = f"{index.parent.parent.name}/{index.parent.name}/{index.name}"
    files = tuple(confine(n, index.parent, source=source, key="weight_map", roots=roots) for n in names)
    missing = [f.name for f in files if not f.is_file()]
    if missing:
        raise LLMGAInputError(f"{index.parent} lacks the shards {', '.join(missing)} listed in {index.name}.")
    return files


def pick_weights(
    folder: Path, stems: tuple[str, ...], prefer: Precision = "full", roots: Sequence[str | Path] = ()
) -> WeightFiles | None:
    """The weights to read in ``folder``: safetensors before pickles, then the preferred precision.

    Full precision is preferred by default: ComfyUI casts weights to its compute dtype anyway, so the
    full-precision file loses nothing, while CPUs compute in fp32 and would get rounded fp16 weights.
    """
    order = [prefer, *(p for p in PREFERENCES if p != prefer)]
    for suffix, pickle in ((".safetensors", False), (".bin", True)):
        for precision in order:
            fp16 = precision == "fp16"
            for stem in stems:
                single = folder / _variant(stem + suffix, fp16)
                if single.is_file():
                    return WeightFiles((single,), fp16, pickle)
                index = folder / _variant(f"{stem}{suffix}.index.json", fp16)
                if index.is_file():
                    return WeightFiles(_shards(index, roots), fp16, pickle)
    return None


def _found(path: Path) -> str:
    """A short description of a folder that is not an SD UNet folder, for the error message."""
    index = path / "model_index.json"
    pipeline = None
    if index.is_file():
        try:
            pipeline = json.loads(index.read_text()).get("_class_name")
        except ValueError:
            pipeline = "an unreadable model_index.json"
    parts = sorted(p.name for p in path.iterdir() if p.is_dir()) if path.is_dir() else []
    what = f"a {pipeline} folder" if pipeline else "a folder"
    return f"{what} with sub-folders [{', '.join(parts) or 'none'}]"


def _heads_per_block(config: dict[str, Any]) -> list[int]:
    blocks = len(config["block_out_channels"])
    heads = config.get("num_attention_heads") or config.get("attention_head_dim", 8)
    return _per_block(heads, blocks)


def _family(path: Path, config: dict[str, Any]) -> Literal["sd15", "sdxl"]:
    context = config.get("cross_attention_dim")
    extra = config.get("addition_embed_type")
    linear = bool(config.get("use_linear_projection", False))
    widths = list(config.get("block_out_channels", []))
    heads = _heads_per_block(config)
    if context == 768 and extra is None and not linear:
        # ComfyUI's SD1 model class uses 8 heads; a UNet with other heads would load but compute wrongly
        if any(h != 8 for h in heads):
            raise LLMGAInputError(f"{path.name}: an SD1.5-like UNet with {heads} attention heads; SD1.5 has 8.")
        return "sd15"
    if context == 2048 and extra == "text_time":
        if any(w != h * 64 for w, h in zip(widths, heads, strict=False)):
            raise LLMGAInputError(f"{path.name}: an SDXL-like UNet whose heads are not 64 channels wide ({heads}).")
        return "sdxl"
    guess = {1024: " (SD2.x?)", 1280: " (an SDXL refiner?)"}.get(context, "")
    raise LLMGAInputError(
        f"{path.name} holds a UNet with cross_attention_dim {context}, addition_embed_type {extra}{guess}; "
        f"this loader reads {_SUPPORTED}."
    )


def _check_unet_config(path: Path, config: Any) -> None:
    """The fields the layout is computed from have the types and sizes diffusers writes; a hand-edited or
    hostile config gets a message naming the file and field instead of a Python error deep inside."""
    where = f"{path.name}/unet/config.json"
    fix = "download that file again (it must match the folder's UNet weights)."
    if not isinstance(config, dict):
        raise LLMGAInputError(f"{where} holds a JSON {type(config).__name__}, not an object of settings; {fix}")
    widths = config.get("block_out_channels")
    if not isinstance(widths, list) or not widths or not all(isinstance(w, int) and 0 < w <= 16384 for w in widths):
        raise LLMGAInputError(f"{where}: block_out_channels must be a non-empty list of positive widths; {fix}")
    blocks = len(widths)
    for key in ("down_block_types", "up_block_types"):
        value = config.get(key)
        if not isinstance(value, list) or len(value) != blocks or not all(isinstance(v, str) for v in value):
            raise LLMGAInputError(f"{where}: {key} must list one block type per block_out_channels entry; {fix}")
    for key in ("layers_per_block", "transformer_layers_per_block", "num_attention_heads", "attention_head_dim"):
        value = config.get(key)
        items = value if isinstance(value, list) else [value]
        if value is None and key != "layers_per_block":
            continue
        if (isinstance(value, list) and len(value) != blocks) or not all(
            isinstance(v, int) and not isinstance(v, bool) and 0 < v <= 4096 for v in items if v is not None
        ):
            raise LLMGAInputError(f"{where}: {key} must be a positive whole number or one per block; {fix}")
    for key in ("in_channels", "out_channels", "cross_attention_dim"):
        value = config.get(key)
        if value is not None and not (isinstance(value, int) and not isinstance(value, bool) and 0 < value <= 65536):
            raise LLMGAInputError(f"{where}: {key} must be a positive whole number; {fix}")


def _required(
    path: Path, part: str, stems: tuple[str, ...], prefer: Precision, roots: Sequence[str | Path]
) -> WeightFiles:
    found = pick_weights(path / part, stems, prefer, roots)
    if found is None:
        names = " or ".join(f"{s}[.fp16].safetensors" for s in stems)
        raise LLMGAInputError(f"{path.name}/{part} has no {names}; download the folder's {part} weights.")
    return found


def inspect_folder(path: Path, prefer: Precision = "full", roots: Sequence[str | Path] = ()) -> SDFolder:
    """Classify ``path`` and pick its weight files; a clear error for anything that is not LLMGA's kind.

    Every file read from the folder and every shard an index names must stay inside it or inside
    ``roots`` (ComfyUI's diffusers folders) after symbolic links (llmga_core.safe_paths)."""
    if path.is_dir():
        check_links(path, roots, depth=2)
    config_file = path / "unet" / "config.json"
    if not config_file.is_file():
        raise LLMGAInputError(
            f"{path.name} is {_found(path)}, with no unet/config.json; this loader reads {_SUPPORTED}."
        )
    try:
        config = json.loads(config_file.read_text(encoding="utf-8"))
    except (ValueError, OSError) as err:
        raise LLMGAInputError(f"{path.name}/unet/config.json is not valid JSON ({err}); download it again.") from None
    _check_unet_config(path, config)
    family = _family(path, config)
    in_channels = int(config.get("in_channels", 4))
    if in_channels not in (4, 9):
        name = FAMILY_NAMES[family]
        what = " (an InstructPix2Pix model?)" if in_channels == 8 else ""
        raise LLMGAInputError(
            f"{path.name} holds an {name} UNet with {in_channels} input channels{what}; this loader reads {_SUPPORTED}."
        )
    mid = config.get("mid_block_type", "UNetMidBlock2DCrossAttn")
    if mid != "UNetMidBlock2DCrossAttn":
        raise LLMGAInputError(f"{path.name}: a UNet with mid block {mid}; SD1.5/SDXL use UNetMidBlock2DCrossAttn.")
    encoders = ["text_encoder"] + (["text_encoder_2"] if family == "sdxl" else [])
    return SDFolder(
        path=path,
        family=family,
        inpaint=in_channels == 9,
        unet_config=config,
        unet=_required(path, "unet", _UNET_STEMS, prefer, roots),
        text_encoders=tuple(_required(path, part, _TEXT_STEMS, prefer, roots) for part in encoders),
        vae=_required(path, "vae", _UNET_STEMS, prefer, roots),
    )


def _per_block(value: Any, blocks: int) -> list[int]:
    return list(value) if isinstance(value, list | tuple) else [int(value)] * blocks


def ldm_unet_config(config: dict[str, Any]) -> dict[str, Any]:
    """The LDM (``openaimodel.UNetModel``) layout of a diffusers UNet config.

    Only the layout: levels, res blocks and transformer depths per block, which is what
    ``comfy.utils.unet_to_diffusers`` needs to name every diffusers key in LDM terms. Output blocks are
    listed the way the LDM model pops them (last entry = first output block, the lowest resolution).
    """
    widths = list(config["block_out_channels"])
    blocks = len(widths)
    res = _per_block(config.get("layers_per_block", 2), blocks)
    depth = _per_block(config.get("transformer_layers_per_block", 1), blocks)
    up_depth = config.get("reverse_transformer_layers_per_block") or list(reversed(depth))
    up_depth = _per_block(up_depth, blocks)
    down_types = list(config["down_block_types"])
    up_types = list(config["up_block_types"])

    transformer_depth: list[int] = []
    for level in range(blocks):
        layers = depth[level] if "CrossAttn" in down_types[level] else 0
        transformer_depth += [layers] * res[level]
    transformer_depth_output: list[int] = []
    for level in range(blocks):  # highest resolution first: up block (blocks - 1 - level)
        up = blocks - 1 - level
        layers = up_depth[up] if "CrossAttn" in up_types[up] else 0
        transformer_depth_output += [layers] * (res[level] + 1)
    return {
        "in_channels": int(config.get("in_channels", 4)),
        "out_channels": int(config.get("out_channels", 4)),
        "model_channels": widths[0],
        "channel_mult": [w // widths[0] for w in widths],
        "num_res_blocks": res,
        "transformer_depth": transformer_depth,
        "transformer_depth_output": transformer_depth_output,
        "transformer_depth_middle": depth[-1],
        "context_dim": config.get("cross_attention_dim"),
        "use_linear_in_transformer": bool(config.get("use_linear_projection", False)),
    }
