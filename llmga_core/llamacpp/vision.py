"""The CLIP tower + projector of an mmproj GGUF, rebuilt as torch modules: LLaVA's exact image features.

llama.cpp's own LLaVA CLIP graph orders the class row after the patches (ggml-org/llama.cpp#25814), so
its image rows differ from the original tower's. Here the mmproj's weights go back into transformers'
``CLIPVisionModel`` and LLaVA's ``Linear, GELU, Linear`` projector, and the resulting rows are handed
to llama.cpp as input embeddings: the same features the transformers path computes, from the same file
the llama.cpp server would use.

The tower keeps the blocks up to the feature layer (``clip.vision.feature_layer``, which our exporter
writes; older mmproj files store exactly the blocks LLaVA reads); the output of the last kept block,
class row dropped, is LLaVA's ``hidden_states[-2]`` patch features. Gemma's sqrt(hidden) factor is not
applied here: llama.cpp's gemma graph multiplies every input row, image rows included, as LLMGA-gemma
was trained.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ..errors import LLMGAInputError
from ..mllm.image_prep import OPENAI_CLIP_MEAN, OPENAI_CLIP_STD, ClipPreprocessConfig

__all__ = ["MMProjVision", "load_mmproj"]

_BLOCK = re.compile(r"v\.blk\.(\d+)\.(\w+)\.(weight|bias)")
_BLOCK_KEYS = {
    "ln1": "layer_norm1",
    "ln2": "layer_norm2",
    "attn_q": "self_attn.q_proj",
    "attn_k": "self_attn.k_proj",
    "attn_v": "self_attn.v_proj",
    "attn_out": "self_attn.out_proj",
    "ffn_up": "mlp.fc1",
    "ffn_down": "mlp.fc2",
}


@dataclass
class MMProjVision:
    """Tower + projector; ``encode(pixels)`` gives the (N, hidden) rows for one CLIP-normalised image."""

    tower: nn.Module
    projector: nn.Module
    clip_preprocess: ClipPreprocessConfig
    path: Path

    @property
    def out_features(self) -> int:
        return int(self.projector[-1].out_features)

    def size_bytes(self) -> int:
        return sum(p.numel() * p.element_size() for m in (self.tower, self.projector) for p in m.parameters())

    @torch.no_grad()
    def encode(self, pixel_values: torch.Tensor) -> np.ndarray:
        size = self.clip_preprocess.crop_height
        pixels = pixel_values if pixel_values.ndim == 4 else pixel_values[None]
        if tuple(pixels.shape[1:]) != (3, size, size):
            raise LLMGAInputError(f"The vision tower takes (1, 3, {size}, {size}) pixels, got {tuple(pixels.shape)}.")
        param = next(self.tower.parameters())
        out = self.tower(pixels[:1].to(device=param.device, dtype=param.dtype), output_hidden_states=True)
        feats = out.hidden_states[-1][:, 1:]
        rows = self.projector(feats.to(next(self.projector.parameters()).dtype))[0]
        return rows.float().cpu().numpy()

    def to(self, device: torch.device | str) -> MMProjVision:
        self.tower.to(device)
        self.projector.to(device)
        return self


def _tensor(tensor: Any, dtype: torch.dtype) -> torch.Tensor:
    """One GGUF tensor as a torch tensor of ``dtype`` (a copy: the reader's arrays map the file read-only)."""
    from gguf import GGMLQuantizationType
    from gguf.quants import dequantize

    kind = GGMLQuantizationType(int(tensor.tensor_type))
    data = np.asarray(tensor.data)
    data = np.array(data) if kind in (GGMLQuantizationType.F32, GGMLQuantizationType.F16) else dequantize(data, kind)
    shape = tuple(int(d) for d in reversed(tensor.shape.tolist()))
    return torch.from_numpy(data).reshape(shape).to(dtype)


def _known(values: Any, known: tuple[float, ...]) -> tuple[float, ...]:
    """GGUF stores the normalisation in float32: read CLIP's own constants back exactly."""
    got = tuple(float(x) for x in values)
    return known if len(got) == len(known) and np.allclose(got, known, rtol=0, atol=1e-7) else got


_EMBEDDING_KEYS = {
    "v.class_embd": "vision_model.embeddings.class_embedding",
    "v.patch_embd.weight": "vision_model.embeddings.patch_embedding.weight",
    "v.position_embd.weight": "vision_model.embeddings.position_embedding.weight",
}


def _tower_key(name: str, layer: int) -> str | None:
    """The transformers ``CLIPVisionModel`` key of an mmproj tensor; None for what the tower does not use."""
    if name in _EMBEDDING_KEYS:
        return _EMBEDDING_KEYS[name]
    if name.startswith("v.pre_ln."):
        return "vision_model.pre_layrnorm." + name.rsplit(".", 1)[1]
    if (m := _BLOCK.fullmatch(name)) and int(m.group(1)) < layer and m.group(2) in _BLOCK_KEYS:
        return f"vision_model.encoder.layers.{m.group(1)}.{_BLOCK_KEYS[m.group(2)]}.{m.group(3)}"
    return None


def _adopt(model_class: Any, config: Any, state: dict[str, torch.Tensor], path: Path, dtype: torch.dtype) -> nn.Module:
    """The tower built on the meta device with the file's tensors as its weights.

    No random initialisation and no second copy: a CLIP-L/336 tower loads in a fraction of the time, and the
    peak memory is one tower instead of three. What the file does not hold is filled in: the pooled output's
    LayerNorm (LLaVA reads hidden states, never the pooled row) as identity, and the position ids.
    """
    with torch.device("meta"):
        tower = model_class(config)
    if not any(k.startswith("vision_model.") for k in tower.state_dict()):  # transformers >= 5: no such level
        state = {k.removeprefix("vision_model."): v for k, v in state.items()}
    missing, _unexpected = tower.load_state_dict(state, strict=False, assign=True)
    missing = [k for k in missing if "post_layernorm" not in k and "position_ids" not in k]
    if missing:
        raise LLMGAInputError(f"{path.name} lacks CLIP tensors such as {missing[:3]}; it is not a LLaVA mmproj.")
    for name, param in list(tower.named_parameters()):
        if param.is_meta:
            owner, leaf = tower.get_submodule(name.rpartition(".")[0]), name.rpartition(".")[2]
            fill = torch.ones if leaf == "weight" else torch.zeros
            setattr(owner, leaf, nn.Parameter(fill(param.shape, dtype=dtype), requires_grad=False))
    for name, buffer in list(tower.named_buffers()):
        if buffer.is_meta:
            if not name.endswith("position_ids"):
                raise RuntimeError(f"CLIPVisionModel has a buffer {name} the mmproj loader does not know how to fill.")
            owner = tower.get_submodule(name.rpartition(".")[0])
            owner.register_buffer("position_ids", torch.arange(buffer.shape[-1]).expand(buffer.shape), persistent=False)
    return tower


def load_mmproj(path: str | Path, dtype: torch.dtype = torch.float32) -> MMProjVision:
    """Read an mmproj GGUF (LLaVA-1.5 layout: ``clip.projector_type`` ``mlp``) into torch modules."""
    from gguf import GGUFReader
    from transformers import CLIPVisionConfig, CLIPVisionModel

    path = Path(path)
    if not path.is_file():
        raise LLMGAInputError(f"No mmproj file at {path}.")
    with path.open("rb") as fh:
        if fh.read(4) != b"GGUF":
            raise LLMGAInputError(f"{path.name} is not a GGUF file; pick the mmproj-*.gguf of your model.")
    try:
        reader = GGUFReader(str(path))
    except Exception as exc:
        raise LLMGAInputError(f"{path.name} cannot be read as GGUF ({exc}); export or download it again.") from None

    def field(key: str, default: Any = None) -> Any:
        f = reader.fields.get(key)
        return default if f is None else f.contents()

    if field("general.architecture") != "clip" or not field("clip.has_vision_encoder", False):
        raise LLMGAInputError(
            f"{path.name} is not an mmproj (vision) GGUF; pick the mmproj-*.gguf written next to the model by "
            "`python -m llmga_core.export gguf`."
        )
    if field("clip.projector_type", "mlp") != "mlp":
        raise LLMGAInputError(
            f"{path.name} has projector {field('clip.projector_type')!r}; LLMGA models use LLaVA-1.5's 'mlp'."
        )
    tensors = {t.name: t for t in reader.tensors}
    stored = 1 + max((int(m.group(1)) for n in tensors if (m := _BLOCK.fullmatch(n))), default=-1)
    layers = field("clip.vision.feature_layer")
    layer = int(layers[0] if isinstance(layers, list) else layers) if layers is not None else stored
    if not 1 <= layer <= stored:
        raise LLMGAInputError(f"{path.name}: feature layer {layer} but only {stored} tower blocks are stored.")
    hidden = int(field("clip.vision.embedding_length"))
    config = CLIPVisionConfig(
        hidden_size=hidden,
        intermediate_size=int(field("clip.vision.feed_forward_length")),
        num_hidden_layers=layer,
        num_attention_heads=int(field("clip.vision.attention.head_count")),
        image_size=int(field("clip.vision.image_size")),
        patch_size=int(field("clip.vision.patch_size")),
        hidden_act="gelu" if field("clip.use_gelu", False) else "quick_gelu",
        layer_norm_eps=float(field("clip.vision.attention.layer_norm_epsilon", 1e-5)),
        num_channels=3,
    )
    state: dict[str, torch.Tensor] = {}
    for name, tensor in tensors.items():
        key = _tower_key(name, layer)
        if key is not None:
            state[key] = _tensor(tensor, dtype)
    tower = _adopt(CLIPVisionModel, config, state, path, dtype)
    try:
        weights = {k: _tensor(tensors[f"mm.{k}"], dtype) for k in ("0.weight", "0.bias", "2.weight", "2.bias")}
    except KeyError:
        raise LLMGAInputError(f"{path.name} has no mm.0/mm.2 projector tensors; it is not a LLaVA mmproj.") from None
    with torch.device("meta"):
        (out0, in0), (out2, in2) = weights["0.weight"].shape, weights["2.weight"].shape
        projector = nn.Sequential(nn.Linear(in0, out0), nn.GELU(), nn.Linear(in2, out2))
    projector.load_state_dict(weights, assign=True)
    mean = _known(field("clip.vision.image_mean", OPENAI_CLIP_MEAN), OPENAI_CLIP_MEAN)
    std = _known(field("clip.vision.image_std", OPENAI_CLIP_STD), OPENAI_CLIP_STD)
    size = config.image_size
    preprocess = ClipPreprocessConfig(
        shortest_edge=size, crop_height=size, crop_width=size, image_mean=mean, image_std=std
    )
    return MMProjVision(
        tower=tower.eval().requires_grad_(False),
        projector=projector.eval().requires_grad_(False),
        clip_preprocess=preprocess,
        path=path,
    )
