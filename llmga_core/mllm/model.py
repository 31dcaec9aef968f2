"""The LLMGA MLLM as plain modules: stock transformers LLM + CLIP vision tower + LLaVA projector.

LLMGA's ``Llava*ForCausalLM`` classes are a stock causal LM whose input embeddings get the projected CLIP
features spliced in (llmga-spec §1.2, §1.3, §1.5). Rebuilding that from stock parts needs no remote
code and works on every transformers release:

- the LLM is ``AutoModelForCausalLM`` of the base ``model_type`` loaded from the ``model.*``/``lm_head.*``
  keys (an absent ``lm_head.weight`` means tied embeddings);
- the tower is ``CLIPVisionModel``; features are ``hidden_states[select_layer]`` (-2) with the CLS row
  dropped, no post-layernorm; the tower keeps its own dtype and the features are cast to the LLM dtype
  before the projector, as the original does with its fp32 tower and fp16 LLM;
- the projector is ``mlp{N}x_gelu`` (``Linear, GELU, Linear``; keys ``0.*``/``2.*``) or ``linear``;
- every ``-200`` in ``input_ids`` is replaced by the image's feature rows; the text pieces between are
  embedded with the LLM's own ``embed_tokens``.

Gemma: LLMGA trained with transformers releases that multiplied the whole ``inputs_embeds`` (image rows
included) by sqrt(hidden) inside ``GemmaModel``; current releases scale inside ``embed_tokens`` only, so
the image rows are scaled here by the same factor (spec §1.3 caveat 3).

:class:`LLMGAModel` is a plain ``nn.Module`` (no read-only ``device`` property), so a host's model
manager can wrap and move it.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..errors import LLMGAInputError, clean_message
from ..safe_paths import UnsafePathError, check_links, confine
from .checkpoint import (
    LLMGAFolder,
    _load_file,
    inspect_folder,
    load_state_dict,
    load_tokenizer,
    split_state_dict,
    text_config,
)
from .image_prep import ClipPreprocessConfig
from .quantize import (
    BNB_CHOICES,
    FP8,
    NONE,
    QUANTIZATIONS,
    bnb_config,
    fix_bnb_cpu_small_layers,
    follow_weight_device_,
    install_command,
    missing_packages,
    prequantized_reason,
    quantize_fp8_,
    quantize_tables_,
    quiet_bnb,
    raise_if_out_of_memory,
    serialized_bnb_choice,
)
from .tokenize import IMAGE_TOKEN_INDEX

__all__ = [
    "KNOWN_VISION_TOWERS",
    "LLMGAModel",
    "LoadedMLLM",
    "VisionSettings",
    "build_projector",
    "load_mllm",
    "vision_config_from_weights",
]

log = logging.getLogger(__name__)

# Vision configs of the towers LLMGA names in ``mm_vision_tower`` (the Hub configs' vision_config), so a
# released folder loads with no download. Only values that shape the tensors or the maths are listed.
_CLIP_L14 = {
    "hidden_size": 1024,
    "intermediate_size": 4096,
    "num_hidden_layers": 24,
    "num_attention_heads": 16,
    "patch_size": 14,
    "projection_dim": 768,
    "hidden_act": "quick_gelu",
    "layer_norm_eps": 1e-5,
    "num_channels": 3,
}
KNOWN_VISION_TOWERS: dict[str, dict[str, Any]] = {
    "openai/clip-vit-large-patch14-336": {**_CLIP_L14, "image_size": 336},  # every new-version model
    "openai/clip-vit-large-patch14": {**_CLIP_L14, "image_size": 224},  # old llama-2 v1 models
}

_VISION_HELP = (
    "The released LLMGA folders contain the CLIP tower weights. If yours does not, put the CLIP ViT-L/14-336 "
    "model (the Hugging Face folder openai/clip-vit-large-patch14-336: config.json + model.safetensors) in "
    "ComfyUI's models/clip_vision and select it as the vision tower."
)


@dataclass(frozen=True)
class VisionSettings:
    """How features are taken from the tower (config.json ``mm_*`` fields)."""

    select_layer: int = -2
    select_feature: str = "patch"  # "patch" drops the CLS row, "cls_patch" keeps it
    image_size: int = 336
    max_length: int | None = None  # tokenizer_model_max_length: LLaVA truncates spliced sequences to it

    @property
    def clip_preprocess(self) -> ClipPreprocessConfig:
        """The CLIP processor settings that match the tower's input size."""
        return ClipPreprocessConfig(
            shortest_edge=self.image_size, crop_height=self.image_size, crop_width=self.image_size
        )


def build_projector(kind: str, in_features: int, hidden: int) -> nn.Module:
    """LLaVA's projector: ``linear`` or ``mlp{N}x_gelu`` (Linear, then N-1 x (GELU, Linear))."""
    if kind == "linear":
        return nn.Linear(in_features, hidden)
    match = re.fullmatch(r"mlp(\d+)x_gelu", kind)
    if match is None:
        raise LLMGAInputError(
            f"mm_projector_type {kind!r} is not supported (LLMGA uses mlp2x_gelu; linear also works)."
        )
    layers: list[nn.Module] = [nn.Linear(in_features, hidden)]
    for _ in range(int(match.group(1)) - 1):
        layers += [nn.GELU(), nn.Linear(hidden, hidden)]
    return nn.Sequential(*layers)


def _clean_vision_keys(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """``vision_model.*`` keys of a CLIPVisionModel/CLIPModel state dict (old position_ids buffers dropped)."""
    if not any(k.startswith("vision_model.") for k in state) and "embeddings.patch_embedding.weight" in state:
        # saved by transformers 5, whose CLIPVisionModel has no vision_model level
        state = {f"vision_model.{k}": v for k, v in state.items() if not k.startswith(("visual_projection", "text"))}
    return {k: v for k, v in state.items() if k.startswith("vision_model.") and not k.endswith("position_ids")}


def vision_config_from_weights(
    vision: Mapping[str, torch.Tensor], base: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """CLIP vision config fields read off the weight shapes, on top of ``base`` (a known tower's).

    Head count cannot be read off shapes: it is ``base``'s when the width matches, else width/64 (CLIP's
    head width) and at least 1.
    """
    cfg = dict(base or _CLIP_L14)
    try:
        patch = vision["vision_model.embeddings.patch_embedding.weight"]
        positions = vision["vision_model.embeddings.position_embedding.weight"]
        fc1 = vision["vision_model.encoder.layers.0.mlp.fc1.weight"]
    except KeyError as exc:
        raise LLMGAInputError(f"The CLIP vision weights are incomplete (no {exc.args[0]}). {_VISION_HELP}") from exc
    hidden, channels, p, _ = patch.shape
    grid = round((positions.shape[0] - 1) ** 0.5)
    layers = 1 + max(int(k.split(".")[3]) for k in vision if k.startswith("vision_model.encoder.layers."))
    if cfg.get("hidden_size") != hidden:
        cfg["num_attention_heads"] = max(1, hidden // 64)
    cfg.update(
        hidden_size=int(hidden),
        num_channels=int(channels),
        patch_size=int(p),
        image_size=int(grid * p),
        intermediate_size=int(fc1.shape[0]),
        num_hidden_layers=layers,
    )
    return cfg


def _clip_config(folder: Path) -> dict[str, Any]:
    """A CLIP folder's vision config; an unreadable or odd config.json names the file."""
    from transformers import CLIPVisionConfig

    try:
        return CLIPVisionConfig.from_pretrained(str(folder), local_files_only=True).to_dict()
    except (OSError, ValueError, TypeError, AttributeError, KeyError) as exc:
        raise LLMGAInputError(
            f"{folder.name}/config.json is not a readable CLIP config ({type(exc).__name__}); download that "
            f"folder again. {_VISION_HELP}"
        ) from None


def _vision_from_folder(folder: Path) -> tuple[dict[str, Any] | None, dict[str, torch.Tensor]]:
    """Config (or None) and vision weights of a CLIP folder or single weight file (models/clip_vision)."""
    cfg = None
    if folder.is_file():
        files = [folder]
    else:
        if (folder / "config.json").is_file():
            cfg = _clip_config(folder)
        files = [folder / n for n in ("model.safetensors", "pytorch_model.bin") if (folder / n).is_file()][:1]
    if not files:
        raise LLMGAInputError(f"No CLIP weights (model.safetensors or pytorch_model.bin) in {folder}. {_VISION_HELP}")
    path = files[0]
    state = _load_file(path, "safetensors" if path.suffix == ".safetensors" else "bin")  # clear errors
    vision = _clean_vision_keys(state)
    if not vision:
        raise LLMGAInputError(f"{path} holds no CLIP vision weights (vision_model.* keys). {_VISION_HELP}")
    return cfg, vision


def _local_tower(folder: LLMGAFolder, tower: str, has_weights: bool, tower_roots: Sequence[str | Path]) -> Path | None:
    """``mm_vision_tower`` as a folder inside the MLLM folder or ComfyUI's clip_vision folders, else None.

    A Hub id (``openai/clip-vit-large-patch14-336``) is looked up there too, never relative to the working
    directory. A path leading elsewhere is refused when the tower is needed from it, and ignored (nothing
    is read from it) when the checkpoint holds the tower weights itself.
    """
    if tower in KNOWN_VISION_TOWERS and has_weights:
        return None
    try:
        local = confine(
            tower,
            folder.path,
            source=f"{folder.name}/config.json",
            key="mm_vision_tower",
            roots=tower_roots,
            search_roots=True,
        )
    except UnsafePathError as err:
        if has_weights:
            log.warning("LLMGA: %s (ignored: the checkpoint holds the tower weights)", err)
            return None
        raise
    return local if local.exists() else None


def _resolve_vision(
    folder: LLMGAFolder,
    vision: dict[str, torch.Tensor],
    clip_vision: str | Path | None,
    tower_roots: Sequence[str | Path] = (),
) -> tuple[dict[str, Any], dict[str, torch.Tensor], str]:
    """Pick the tower weights and config: the checkpoint's own, else ``clip_vision``, else a local
    ``mm_vision_tower`` folder (confined to the MLLM folder and ``tower_roots``). Returns (config dict,
    weights, where they came from)."""
    tower = str(folder.mm["mm_vision_tower"])
    vision = _clean_vision_keys(vision)
    local = _local_tower(folder, tower, bool(vision), tower_roots)
    base = KNOWN_VISION_TOWERS.get(tower)
    cfg: dict[str, Any] | None = None
    if local is not None and local.is_dir() and (local / "config.json").is_file():
        cfg = _clip_config(local)
    source = "checkpoint"
    if vision and clip_vision is not None:
        log.warning(
            "LLMGA: %s holds its own vision tower, which is used; the chosen tower %s is not (pick 'from "
            "checkpoint' to silence this).",
            folder.name,
            Path(clip_vision).name,
        )
    if not vision:
        source = str(clip_vision) if clip_vision is not None else str(local) if local is not None else ""
        if not source:
            raise LLMGAInputError(
                f"{folder.name} has no vision tower weights (model.vision_tower.vision_tower.vision_model.*) and "
                f"its mm_vision_tower {tower!r} is not a local folder. {_VISION_HELP}"
            )
        if clip_vision is None and Path(source).is_dir():
            check_links(source, [folder.path, *tower_roots])  # the tower folder's own files stay inside too
        cfg_found, vision = _vision_from_folder(Path(source))
        cfg = cfg_found or cfg
    if cfg is None:
        cfg = vision_config_from_weights(vision, base)
    else:
        shaped = vision_config_from_weights(vision, cfg)
        for key in ("hidden_size", "image_size", "patch_size", "num_hidden_layers", "intermediate_size"):
            if cfg.get(key) != shaped[key]:
                raise LLMGAInputError(
                    f"The CLIP config says {key}={cfg.get(key)} but the weights have {shaped[key]}; "
                    f"the vision tower from {source} does not belong to {folder.name}. {_VISION_HELP}"
                )
    mm_hidden = folder.mm["mm_hidden_size"]
    if mm_hidden is not None and int(mm_hidden) != cfg["hidden_size"]:
        raise LLMGAInputError(
            f"{folder.name} expects a vision tower of width {mm_hidden} (mm_hidden_size) but the one from {source} "
            f"has width {cfg['hidden_size']}. {_VISION_HELP}"
        )
    return cfg, vision, source


class LLMGAModel(nn.Module):
    """LLM + vision tower + projector; builds ``inputs_embeds`` the way LLaVA/LLMGA does."""

    def __init__(
        self,
        language_model: nn.Module,
        vision_tower: nn.Module | None,
        mm_projector: nn.Module,
        settings: VisionSettings,
    ) -> None:
        super().__init__()
        self.language_model = language_model
        self.vision_tower = vision_tower
        self.mm_projector = mm_projector
        self.settings = settings

    def _apply(self, fn: Any, recurse: bool = True) -> LLMGAModel:
        # every move of the container (a model manager's load/offload) keeps 8-bit scales with their weights
        super()._apply(fn, recurse)
        follow_weight_device_(self)
        return self

    # -- parts ---------------------------------------------------------------------------------------
    @property
    def embed_tokens(self) -> nn.Module:
        return self.language_model.get_input_embeddings()

    @property
    def llm_dtype(self) -> torch.dtype:
        """The LLM's compute dtype (an int8 embedding table says which dtype its rows come out in)."""
        return getattr(self.embed_tokens, "compute_dtype", None) or self.embed_tokens.weight.dtype

    @property
    def llm_device(self) -> torch.device:
        """Where the LLM computes: the ``device`` a host's model manager assigned (ComfyUI's ModelPatcher
        sets it, and may leave some layers on the offload device to be cast per call), else where the
        input embeddings are."""
        device = self.__dict__.get("device")
        if isinstance(device, torch.device):
            return device
        return self.embed_tokens.weight.device

    @property
    def image_embed_scale(self) -> torch.Tensor | None:
        """The factor current transformers apply inside ``embed_tokens`` (Gemma), else None."""
        scale = getattr(self.embed_tokens, "embed_scale", None)
        return scale if isinstance(scale, torch.Tensor) else None

    # -- images --------------------------------------------------------------------------------------
    @torch.no_grad()
    def encode_images(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """(B, 3, S, S) CLIP-normalised pixels -> (B, N, hidden) projected features in the LLM dtype."""
        if self.vision_tower is None:
            raise LLMGAInputError("This MLLM was loaded without a vision tower; it cannot take an image.")
        size = self.settings.image_size
        if pixel_values.ndim != 4 or tuple(pixel_values.shape[1:]) != (3, size, size):
            raise LLMGAInputError(
                f"The vision tower takes (B, 3, {size}, {size}) pixels, got {tuple(pixel_values.shape)}."
            )
        tower_param = next(self.vision_tower.parameters())
        out = self.vision_tower(
            pixel_values.to(device=self.llm_device, dtype=tower_param.dtype), output_hidden_states=True
        )
        feats = out.hidden_states[self.settings.select_layer]
        if self.settings.select_feature == "patch":
            feats = feats[:, 1:]
        elif self.settings.select_feature != "cls_patch":
            raise LLMGAInputError(f"mm_vision_select_feature {self.settings.select_feature!r} is not supported.")
        proj_param = next(self.mm_projector.parameters())
        return self.mm_projector(feats.to(dtype=proj_param.dtype))

    # -- the splice ----------------------------------------------------------------------------------
    @torch.no_grad()
    def build_inputs_embeds(
        self,
        input_ids: Sequence[int] | torch.Tensor,
        image_features: torch.Tensor | None = None,
        image_token_index: int = IMAGE_TOKEN_INDEX,
    ) -> torch.Tensor:
        """(1, L, hidden) embeddings: text pieces through ``embed_tokens``, each placeholder replaced by the
        next image's feature rows (``image_features``: (num_images, N, hidden) or (N, hidden))."""
        ids = torch.as_tensor(list(input_ids) if not isinstance(input_ids, torch.Tensor) else input_ids)
        ids = ids.reshape(-1).to(device=self.llm_device, dtype=torch.long)
        where = (ids == image_token_index).nonzero().flatten().tolist()
        text = ids[ids != image_token_index]
        embeds = self.embed_tokens(text)
        if not where:
            out = embeds
        else:
            if image_features is None:
                raise LLMGAInputError("The prompt has an <image> placeholder but no image was given.")
            feats = image_features if image_features.ndim == 3 else image_features[None]
            if feats.shape[0] < len(where):
                raise LLMGAInputError(
                    f"The prompt has {len(where)} <image> placeholders but {feats.shape[0]} image(s)."
                )
            feats = feats.to(device=embeds.device, dtype=embeds.dtype)
            scale = self.image_embed_scale
            if scale is not None:
                feats = feats * scale.to(device=feats.device, dtype=feats.dtype)
            pieces: list[torch.Tensor] = []
            start = 0  # index into ``embeds`` (text rows only)
            prev = -1
            for n, pos in enumerate(where):
                count = pos - prev - 1  # text tokens between two placeholders
                pieces += [embeds[start : start + count], feats[n]]
                start += count
                prev = pos
            pieces.append(embeds[start:])
            out = torch.cat(pieces, dim=0)
        if self.settings.max_length is not None:
            if out.shape[0] > self.settings.max_length:
                log.warning(
                    "LLMGA: prompt of %d positions truncated to tokenizer_model_max_length=%d as the original does",
                    out.shape[0],
                    self.settings.max_length,
                )
            out = out[: self.settings.max_length]
        return out[None]

    @torch.no_grad()
    def prepare_inputs(
        self, input_ids: Sequence[int] | torch.Tensor, pixel_values: torch.Tensor | None = None
    ) -> torch.Tensor:
        """``inputs_embeds`` for one prompt and at most one image (LLMGA shows one image per conversation)."""
        feats = self.encode_images(pixel_values) if pixel_values is not None else None
        return self.build_inputs_embeds(input_ids, feats)

    def forward(self, inputs_embeds: torch.Tensor, **kwargs: Any) -> Any:
        """The LLM on spliced embeddings (what the original's ``forward`` ends in)."""
        return self.language_model(inputs_embeds=inputs_embeds, **kwargs)


@dataclass
class LoadedMLLM:
    """Everything one loaded LLMGA folder provides."""

    model: LLMGAModel
    tokenizer: Any
    folder: LLMGAFolder
    vision_source: str  # "checkpoint", a clip_vision path, or "none"
    quantization: str = NONE  # one of quantize.QUANTIZATIONS

    @property
    def bnb(self) -> bool:
        """bitsandbytes layers: they move as whole modules (no per-layer casting)."""
        return self.quantization in BNB_CHOICES

    @property
    def name(self) -> str:
        return self.folder.name

    @property
    def clip_preprocess(self) -> ClipPreprocessConfig:
        return self.model.settings.clip_preprocess


def _mismatch(what: str, exc: BaseException, build: Any, state: Mapping[str, torch.Tensor]) -> LLMGAInputError:
    """transformers' size-check failure as a message naming the first tensor that disagrees (and never its
    advice to ignore the mismatch: a model built from mismatched sizes computes garbage). ``build()`` makes
    the configured model, which is built on the meta device here to read its shapes."""
    detail = clean_message(str(exc)).splitlines()[0][:200] if str(exc) else type(exc).__name__
    try:
        with torch.device("meta"):
            expected = {k: v.shape for k, v in build().state_dict().items()}
    except Exception:  # the config cannot even build a model: transformers' own words are all there is
        expected = {}
    for key, value in state.items():
        if key in expected and tuple(value.shape) != tuple(expected[key]):
            detail = f"{key} is {list(value.shape)} in the weights but {list(expected[key])} by the config"
            break
    return LLMGAInputError(
        f"{what} do not match ({detail}); the folder mixes files of different models: download config.json and "
        "the weights of one release again."
    )


def _load_llm(
    folder: LLMGAFolder,
    llm_state: dict[str, torch.Tensor],
    dtype: torch.dtype,
    quantization: str = NONE,
    device: torch.device | str = "cpu",
) -> nn.Module:
    from transformers import AutoModelForCausalLM

    cfg = text_config(folder)
    if "lm_head.weight" not in llm_state and not getattr(cfg, "tie_word_embeddings", False):
        # A head-less checkpoint means the base ties its embeddings even if the config forgot to say so.
        cfg.tie_word_embeddings = True
    if "model.embed_tokens.weight" not in llm_state:
        raise LLMGAInputError(f"{folder.name}: the weights have no model.embed_tokens.weight; not an LLMGA MLLM.")
    model_cls = AutoModelForCausalLM._model_mapping[type(cfg)]
    extra: dict[str, Any] = {}
    if getattr(cfg, "quantization_config", None) is not None:
        # saved from a bitsandbytes model: transformers reads the quantised layers as they are
        extra = {"device_map": {"": str(device)}}
    elif quantization in BNB_CHOICES:
        # quantised while loading; the vision tower and projector are built separately and stay unquantised
        extra = {"quantization_config": bnb_config(quantization, dtype), "device_map": {"": str(device)}}
    try:
        with quiet_bnb():
            model, info = model_cls.from_pretrained(
                None, config=cfg, state_dict=llm_state, dtype=dtype, output_loading_info=True, **extra
            )
    except (RuntimeError, ValueError, TypeError, IndexError, MemoryError) as exc:
        raise_if_out_of_memory(exc, "loading the LLM")  # torch's CPU allocator raises a plain RuntimeError
        raise _mismatch(f"{folder.name}: config.json and the weights", exc, lambda: model_cls(cfg), llm_state) from None
    missing = [k for k in info.get("missing_keys", ()) if k != "lm_head.weight"]
    if missing:
        raise LLMGAInputError(
            f"{folder.name}: the weights lack {len(missing)} LLM tensors (e.g. {missing[:3]}); the download is "
            "incomplete or the folder is of another model."
        )
    return model.eval()


def _load_vision(cfg: dict[str, Any], vision: dict[str, torch.Tensor], dtype: torch.dtype) -> nn.Module:
    from transformers import CLIPVisionConfig, CLIPVisionModel

    config = CLIPVisionConfig(**{k: v for k, v in cfg.items() if k not in ("model_type", "transformers_version")})
    try:
        tower, info = CLIPVisionModel.from_pretrained(
            None, config=config, state_dict=vision, dtype=dtype, output_loading_info=True
        )
    except (RuntimeError, ValueError, TypeError, IndexError, MemoryError) as exc:
        raise_if_out_of_memory(exc, "loading the vision tower")
        raise _mismatch("The CLIP vision config and weights", exc, lambda: CLIPVisionModel(config), vision) from None
    if info.get("missing_keys"):
        raise LLMGAInputError(f"The CLIP vision weights lack {sorted(info['missing_keys'])[:3]}. {_VISION_HELP}")
    return tower.eval().requires_grad_(False)


def _check_quantised_state(folder: LLMGAFolder, state: Mapping[str, torch.Tensor], serialized: str | None) -> None:
    """A folder that is quantised in a way this loader cannot read says what to do; a bitsandbytes folder
    must hold quantised decoder layers (and only those)."""
    if serialized is None:
        reason = prequantized_reason(folder.config, list(state))
        if reason:
            raise LLMGAInputError(
                f"{folder.name} is already quantised: {reason}. LLMGA reads bitsandbytes-quantised folders saved "
                "by transformers (config.json with a bitsandbytes quantization_config) and the released "
                "full-precision folders, which it quantises itself: download the original folder (e.g. "
                "binxia/llmga-Qwen2-7B-full-finetune) and pick 8-bit, 4-bit or fp8 in the loader's quantization "
                "input, or use a GGUF export with the LLMGA GGUF loader."
            )
        return
    decoder = [k for k in state if k.startswith("model.layers.")]
    if prequantized_reason({}, decoder) is None:
        raise LLMGAInputError(
            f"{folder.name}: config.json has a bitsandbytes quantization_config ({serialized}) but the weights are "
            "not quantised: the folder mixes files of two downloads. Download it again, or delete "
            "quantization_config from config.json to load the full-precision weights."
        )
    others = [k for k in state if not k.startswith(("model.layers.", "model.embed_tokens.", "lm_head."))]
    reason = prequantized_reason({}, others)
    if reason:
        raise LLMGAInputError(
            f"{folder.name}: the vision tower or projector is quantised too ({reason}); LLMGA keeps them at full "
            "precision. Save the folder again with the tower and projector in llm_int8_skip_modules, or download "
            "the full-precision folder and pick 8-bit/4-bit in the loader."
        )


def load_mllm(
    path: str | Path,
    dtype: torch.dtype = torch.float32,
    vision_dtype: torch.dtype | None = None,
    clip_vision: str | Path | None = None,
    device: torch.device | str = "cpu",
    with_vision: bool = True,
    roots: Sequence[str | Path] = (),
    tower_roots: Sequence[str | Path] = (),
    quantization: str = NONE,
    python: str = "python",
) -> LoadedMLLM:
    """Load an LLMGA folder offline into a :class:`LoadedMLLM`.

    ``dtype`` is the LLM + projector dtype, ``vision_dtype`` the tower's (default: ``dtype``; the
    original CLI keeps the tower fp32 under an fp16 LLM). ``clip_vision`` is a CLIP folder or file used
    when the checkpoint has no tower weights (e.g. ComfyUI's models/clip_vision/...).
    ``with_vision=False`` skips the tower (text-only use). ``roots`` are the model folders the MLLM
    folder's files may link into, ``tower_roots`` where a local ``mm_vision_tower`` may be (ComfyUI's
    clip_vision folders); the folder itself is always allowed (llmga_core.safe_paths). ``quantization`` is
    one of :data:`~.quantize.QUANTIZATIONS` (the LLM's decoder Linears; its embedding
    table and head become int8 rows); ``python`` is the interpreter
    named in the install hint when bitsandbytes/accelerate are missing.
    """
    import transformers

    if quantization not in QUANTIZATIONS:
        raise LLMGAInputError(f"quantization {quantization!r} is not one of {', '.join(QUANTIZATIONS)}.")
    folder = inspect_folder(path, roots)
    serialized = serialized_bnb_choice(folder.config)  # a folder saved from a bitsandbytes model loads as it is
    if serialized is not None and quantization != serialized:
        log.warning(
            "LLMGA: %s is saved %s-quantised (bitsandbytes); it loads as %s, not as the quantization %r asked for",
            folder.name,
            serialized,
            serialized,
            quantization,
        )
    quantization = serialized or quantization
    missing = missing_packages(quantization)
    if missing:
        what = f"{folder.name} is saved {serialized}-quantised and" if serialized else f"{quantization} quantization"
        raise LLMGAInputError(
            f"{what} needs {' and '.join(missing)}, which this Python does not have. Install with "
            f"`{install_command(missing, python)}` and restart ComfyUI"
            + ("." if serialized else ", or choose 'fp8 (weights)' (no extra package).")
        )
    mm = folder.mm
    state = load_state_dict(folder, quantized_layers=serialized is not None)
    _check_quantised_state(folder, state, serialized)
    llm_state, vision_state, proj_state = split_state_dict(state)
    del state
    verbosity = transformers.logging.get_verbosity()
    transformers.logging.set_verbosity_error()  # the per-load progress/info lines mean nothing to a user
    bar = transformers.utils.logging.is_progress_bar_enabled()
    transformers.utils.logging.disable_progress_bar()
    try:
        # the tokenizer first: the Rust tokenizer aborts the process when an allocation fails, torch raises,
        # so when memory is short the large allocations that fail should be torch's (the LLM's)
        tokenizer = load_tokenizer(folder, text_config(folder))
        llm = _load_llm(folder, llm_state, dtype, quantization, device)
        del llm_state
        if len(tokenizer) != llm.get_input_embeddings().weight.shape[0]:
            # LLMGA's builder resizes to len(tokenizer); for Qwen2/Phi-3 this drops untrained padding rows,
            # which changes the softmax over the vocabulary (spec §1.3).
            llm.resize_token_embeddings(len(tokenizer), mean_resizing=False)
        tower = None
        vision_source = "none"
        image_size = 336
        if with_vision:
            vcfg, vision_state, vision_source = _resolve_vision(folder, vision_state, clip_vision, tower_roots)
            tower = _load_vision(vcfg, vision_state, vision_dtype or dtype)
            image_size = int(vcfg["image_size"])
    finally:
        transformers.logging.set_verbosity(verbosity)
        if bar:
            transformers.utils.logging.enable_progress_bar()
    hidden = llm.config.hidden_size
    mm_hidden = int(mm["mm_hidden_size"] or (tower.config.hidden_size if tower is not None else 1024))
    projector = build_projector(str(mm["mm_projector_type"]), mm_hidden, hidden)
    try:
        projector.load_state_dict(proj_state, strict=True)
    except RuntimeError as exc:
        raise LLMGAInputError(
            f"{folder.name}: the projector weights (model.mm_projector.*) do not match "
            f"{mm['mm_projector_type']} {mm_hidden}->{hidden}: {exc}"
        ) from exc
    settings = VisionSettings(
        select_layer=int(mm["mm_vision_select_layer"]),
        select_feature=str(mm["mm_vision_select_feature"]),
        image_size=image_size,
        max_length=int(mm["tokenizer_model_max_length"]) if mm["tokenizer_model_max_length"] else None,
    )
    if quantization == FP8:
        quantize_fp8_(llm)
    elif quantization in BNB_CHOICES:
        fix_bnb_cpu_small_layers(llm)
    if quantization != NONE:
        quantize_tables_(llm)  # the embedding table and the head as int8 rows (one table when tied)
    model = LLMGAModel(llm, tower, projector.to(dtype).eval(), settings).requires_grad_(False)
    model.to(device)
    return LoadedMLLM(
        model=model, tokenizer=tokenizer, folder=folder, vision_source=vision_source, quantization=quantization
    )
