"""Reading a released LLMGA MLLM folder: config, weights, tokenizer (llmga-spec §1.1, §1.3).

The folders are Hugging Face ``save_pretrained`` output of LLaVA-style classes:

- ``config.json`` is the base LLM's config with ``model_type = llava_*`` plus the ``mm_*`` fields the
  trainer adds; the base architecture is recovered by mapping ``model_type`` back to the stock one and
  dropping the LLaVA fields (so no remote code is ever needed);
- weights are safetensors (one file, or shards listed in ``model.safetensors.index.json``), or old
  ``pytorch_model*.bin`` files that are only read with ``torch.load(weights_only=True)``;
- keys: ``model.*`` / ``lm_head.*`` for the LLM, ``model.mm_projector.{0,2}.*`` for the projector and
  ``model.vision_tower.vision_tower.vision_model.*`` for the frozen CLIP tower (when it was saved);
- tokenizer files sit next to them.

Everything here raises :class:`LLMGAInputError` naming the expected files when a folder is incomplete.
"""

from __future__ import annotations

import json
import pickle
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from ..errors import LLMGAInputError, clean_message, pickle_refusal
from ..safe_paths import check_links, confine
from ..weight_checks import check_weights
from .quantize import raise_if_out_of_memory

__all__ = [
    "LLM_PREFIX_KEYS",
    "MODEL_TYPES",
    "PROJECTOR_PREFIX",
    "VISION_PREFIX",
    "LLMGAFolder",
    "inspect_folder",
    "load_state_dict",
    "load_tokenizer",
    "split_state_dict",
    "tensor_shapes",
    "text_config",
]

# llava_* model_type -> the stock transformers model_type of the base LLM (spec §1.1). "llava" is the
# name older LLaVA-1.5 releases used for the Llama class.
MODEL_TYPES: dict[str, str] = {
    "llava_llama": "llama",
    "llava": "llama",
    "llava_mistral": "mistral",
    "llava_qwen2": "qwen2",
    "llava_phi3": "phi3",
    "llava_gemma": "gemma",
}

VISION_PREFIX = "model.vision_tower.vision_tower."  # followed by the CLIPVisionModel keys (vision_model.*)
PROJECTOR_PREFIX = "model.mm_projector."
LLM_PREFIX_KEYS = ("model.", "lm_head.")

# Fields the LLaVA trainer adds to the base config; the stock config class must not see them.
_LLAVA_FIELDS = frozenset(
    {
        "architectures",
        "auto_map",
        "model_type",
        "transformers_version",
        "_name_or_path",
        "use_mm_proj",
        "image_aspect_ratio",
        "image_grid_pinpoints",
        "tokenizer_padding_side",
        "tokenizer_model_max_length",
        "tune_mm_mlp_adapter",
        "freeze_mm_mlp_adapter",
        "unfreeze_mm_vision_tower",
        "pretrain_mm_mlp_adapter",
    }
)

_SAFE_INDEX = "model.safetensors.index.json"
_SAFE_SINGLE = "model.safetensors"
_BIN_INDEX = "pytorch_model.bin.index.json"
_BIN_SINGLE = "pytorch_model.bin"
_TOKENIZER_CHOICES = ("tokenizer.json", "tokenizer.model", "vocab.json + merges.txt")

_LAYOUT_HELP = (
    "An LLMGA MLLM folder (e.g. models/llmga/mllm/llmga-Qwen2-0.5B-full-finetune) must hold, as downloaded "
    "from the Hugging Face repo binxia/<name>: config.json (model_type llava_*), the weights "
    f"({_SAFE_SINGLE}, or {_SAFE_INDEX} with every shard it lists; old {_BIN_SINGLE} / {_BIN_INDEX} also "
    f"work) and the tokenizer files ({' or '.join(_TOKENIZER_CHOICES)}, plus tokenizer_config.json)."
)


@dataclass(frozen=True)
class LLMGAFolder:
    """What a validated LLMGA folder contains."""

    path: Path
    config: Mapping[str, Any]  # config.json as written
    model_type: str  # as written, e.g. "llava_Qwen2"
    base_model_type: str  # stock transformers model_type, e.g. "qwen2"
    weight_files: tuple[Path, ...]
    weight_format: str  # "safetensors" | "bin"
    tokenizer_files: tuple[Path, ...]
    generation_config: Mapping[str, Any] = field(default_factory=dict)

    @property
    def name(self) -> str:
        """The folder name; LLMGA picks template and class from its substrings."""
        return self.path.name

    @property
    def mm(self) -> dict[str, Any]:
        """The LLaVA vision fields with the defaults LLaVA assumes when one is missing."""
        c = self.config
        return {
            "mm_vision_tower": c.get("mm_vision_tower", c.get("vision_tower")),
            "mm_hidden_size": c.get("mm_hidden_size"),
            "mm_projector_type": c.get("mm_projector_type", "linear"),
            "mm_vision_select_layer": int(c.get("mm_vision_select_layer", -2)),
            "mm_vision_select_feature": c.get("mm_vision_select_feature", "patch"),
            "mm_patch_merge_type": c.get("mm_patch_merge_type", "flat"),
            "mm_use_im_start_end": bool(c.get("mm_use_im_start_end", False)),
            "tokenizer_model_max_length": c.get("tokenizer_model_max_length"),
        }


def _read_json(path: Path) -> dict[str, Any]:
    """A JSON object from the folder; anything else (a list, bad JSON, bad UTF-8) names the file."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise LLMGAInputError(
            f"{path.parent.name}/{path.name} cannot be read ({str(exc)[:160]}); download that file again. "
            f"{_LAYOUT_HELP}"
        ) from None
    if not isinstance(data, dict):
        raise LLMGAInputError(
            f"{path.parent.name}/{path.name} holds a JSON {type(data).__name__}, not an object of settings; "
            f"download that file again. {_LAYOUT_HELP}"
        )
    return data


def _shards_from_index(folder: Path, index_name: str, roots: Sequence[str | Path] = ()) -> tuple[Path, ...]:
    index = _read_json(folder / index_name)
    weight_map = index.get("weight_map")
    if not isinstance(weight_map, dict) or not weight_map:
        raise LLMGAInputError(f"{folder.name}/{index_name} has no weight_map. {_LAYOUT_HELP}")
    names = set(weight_map.values())
    if not all(isinstance(n, str) for n in names):
        raise LLMGAInputError(f"{folder.name}/{index_name}: weight_map values must be file names. {_LAYOUT_HELP}")
    source = f"{folder.name}/{index_name}"
    shards = tuple(confine(n, folder, source=source, key="weight_map", roots=roots) for n in sorted(names))
    missing = [p.name for p in shards if not p.is_file()]
    if missing:
        raise LLMGAInputError(
            f"{folder.name}: {index_name} lists shards that are not in the folder: {', '.join(missing)}. "
            f"Download every shard into {folder}."
        )
    return shards


def _find_weights(folder: Path, roots: Sequence[str | Path] = ()) -> tuple[tuple[Path, ...], str]:
    if (folder / _SAFE_INDEX).is_file():
        return _shards_from_index(folder, _SAFE_INDEX, roots), "safetensors"
    if (folder / _SAFE_SINGLE).is_file():
        return (folder / _SAFE_SINGLE,), "safetensors"
    if (folder / _BIN_INDEX).is_file():
        return _shards_from_index(folder, _BIN_INDEX, roots), "bin"
    if (folder / _BIN_SINGLE).is_file():
        return (folder / _BIN_SINGLE,), "bin"
    stray = sorted(p.name for p in folder.glob("*.safetensors"))
    hint = f" Found {', '.join(stray)} without {_SAFE_INDEX}." if stray else ""
    raise LLMGAInputError(f"{folder.name}: no model weights found.{hint} {_LAYOUT_HELP}")


def _find_tokenizer(folder: Path) -> tuple[Path, ...]:
    files = [folder / n for n in ("tokenizer.json", "tokenizer.model", "vocab.json", "merges.txt")]
    present = tuple(p for p in files if p.is_file())
    names = {p.name for p in present}
    if "tokenizer.json" in names or "tokenizer.model" in names or {"vocab.json", "merges.txt"} <= names:
        extra = tuple(
            folder / n
            for n in ("tokenizer_config.json", "special_tokens_map.json", "added_tokens.json")
            if (folder / n).is_file()
        )
        return present + extra
    raise LLMGAInputError(
        f"{folder.name}: no tokenizer files (expected {' or '.join(_TOKENIZER_CHOICES)} next to config.json). "
        f"{_LAYOUT_HELP}"
    )


def _check_tokenizer_refs(folder: Path, roots: Sequence[str | Path]) -> None:
    """tokenizer_config.json may name files (``vocab_file``, ``tokenizer_file``, ...) that transformers then
    opens instead of the folder's own: each must stay inside the folder."""
    path = folder / "tokenizer_config.json"
    if not path.is_file():
        return
    for key, value in _read_json(path).items():
        if key.endswith(("_file", "_path", "_dir")) and isinstance(value, str) and value:
            confine(value, folder, source=f"{folder.name}/tokenizer_config.json", key=key, roots=roots)


# generation_config.json fields the pack uses, with the ranges that make sense: (low, high)
_GENERATION_NUMBERS = {
    "temperature": (0.0, 100.0),
    "top_p": (0.0, 1.0),
    "top_k": (0, 1_000_000),
    "repetition_penalty": (1e-6, 100.0),
    "max_new_tokens": (1, 10_000_000),
    "max_length": (1, 100_000_000),
}


def _check_generation_config(folder: Path, generation: Mapping[str, Any]) -> None:
    """The folder's sampling defaults: numbers in range, token ids whole numbers (a hostile or hand-edited
    file otherwise fails deep inside transformers, or silently samples with nonsense)."""
    where = f"{folder.name}/generation_config.json"
    fix = "correct that field or delete the file (the node's own settings then apply)"
    for key, (low, high) in _GENERATION_NUMBERS.items():
        value = generation.get(key)
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int | float) or not low <= value <= high:
            raise LLMGAInputError(f"{where}: {key} is {value!r}, not a number from {low} to {high}; {fix}.")
    for key in ("eos_token_id", "pad_token_id", "bos_token_id"):
        value = generation.get(key)
        items = value if isinstance(value, list) else [value]
        if value is not None and not all(isinstance(i, int) and not isinstance(i, bool) and i >= 0 for i in items):
            raise LLMGAInputError(f"{where}: {key} is {value!r}, not a token id (a whole number, or a list); {fix}.")


def inspect_folder(path: str | Path, roots: Sequence[str | Path] = ()) -> LLMGAFolder:
    """Validate an LLMGA folder and list its parts, without reading any weights.

    Every file read from it, and every path its files name, must stay inside it or inside ``roots``
    (ComfyUI's MLLM model folders) after symbolic links (llmga_core.safe_paths).
    """
    folder = Path(path)
    if not folder.is_dir():
        raise LLMGAInputError(f"MLLM folder {folder} does not exist. {_LAYOUT_HELP}")
    check_links(folder, roots)
    if not (folder / "config.json").is_file():
        raise LLMGAInputError(f"{folder.name}: config.json is missing. {_LAYOUT_HELP}")
    config = _read_json(folder / "config.json")
    model_type = str(config.get("model_type", ""))
    if "text_config" in config or model_type.lower() not in MODEL_TYPES:
        known = ", ".join(sorted({"llava_llama", "llava_mistral", "llava_Qwen2", "llava_Phi3", "llava_gemma"}))
        raise LLMGAInputError(
            f"{folder.name}: config.json has model_type {model_type!r}; an LLMGA MLLM has one of {known} "
            "(the original LLaVA layout, not a converted transformers LlavaForConditionalGeneration folder). "
            "Pick an LLMGA MLLM folder such as llmga-Qwen2-0.5B-full-finetune."
        )
    if not config.get("mm_vision_tower", config.get("vision_tower")):
        raise LLMGAInputError(
            f"{folder.name}: config.json has no mm_vision_tower, so this is a text-only LLM, not an LLMGA MLLM."
        )
    weights, fmt = _find_weights(folder, roots)
    tokenizer_files = _find_tokenizer(folder)
    _check_tokenizer_refs(folder, roots)
    gen_path = folder / "generation_config.json"
    generation = _read_json(gen_path) if gen_path.is_file() else {}
    _check_generation_config(folder, generation)
    return LLMGAFolder(
        path=folder,
        config=config,
        model_type=model_type,
        base_model_type=MODEL_TYPES[model_type.lower()],
        weight_files=weights,
        weight_format=fmt,
        tokenizer_files=tokenizer_files,
        generation_config=generation,
    )


def text_config(folder: LLMGAFolder) -> Any:
    """The stock transformers config of the base LLM (``llava_*`` fields dropped, stock ``model_type``)."""
    from transformers import AutoConfig

    fields = {k: v for k, v in folder.config.items() if k not in _LLAVA_FIELDS and not k.startswith("mm_")}
    fields.pop("vision_tower", None)
    try:
        return AutoConfig.for_model(folder.base_model_type, **fields)
    except (ValueError, TypeError, KeyError, AttributeError) as exc:
        raise LLMGAInputError(
            f"{folder.name}: config.json is not a valid {folder.base_model_type} config "
            f"({clean_message(str(exc))[:200]}); download config.json again."
        ) from None


def _load_file(path: Path, fmt: str) -> dict[str, torch.Tensor]:
    if fmt == "safetensors":
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        try:
            return load_file(str(path), device="cpu")
        except (SafetensorError, OSError, RuntimeError) as exc:  # safetensors' own text says nothing useful
            raise_if_out_of_memory(exc, f"reading {path.name}")
            if isinstance(exc, RuntimeError) and not isinstance(exc, SafetensorError):
                raise
            raise LLMGAInputError(
                f"{path.parent.name}/{path.name} is corrupt or truncated ({str(exc).strip()[:120]}); download that "
                "file again."
            ) from None
    try:
        data = torch.load(str(path), map_location="cpu", weights_only=True, mmap=True)
    except pickle.UnpicklingError as exc:  # weights_only refused a global: never suggest loosening that
        raise pickle_refusal(f"{path.parent.name}/{path.name}", exc) from None
    except Exception as exc:  # corrupt files fail in many types
        raise_if_out_of_memory(exc, f"reading {path.name}")
        raise LLMGAInputError(
            f"{path.parent.name}/{path.name} cannot be read as plain tensors ({type(exc).__name__}: "
            f"{clean_message(str(exc))[:160]}); it is corrupt or truncated: download that file again."
        ) from None
    if not isinstance(data, dict):
        raise LLMGAInputError(f"{path.name} does not hold a state dict.")
    return data


def _decoder_key(key: str) -> bool:
    return key.startswith("model.layers.")


def load_state_dict(
    folder: LLMGAFolder, dtype: torch.dtype | None = None, quantized_layers: bool = False
) -> dict[str, torch.Tensor]:
    """All tensors of the folder (every shard), optionally cast to ``dtype`` (floating tensors only).
    ``quantized_layers``: the decoder layers may hold integer tensors (a bitsandbytes-serialised folder)."""
    state: dict[str, torch.Tensor] = {}
    for path in folder.weight_files:
        tensors = _load_file(path, folder.weight_format)
        check_weights(
            tensors,
            f"{folder.name}/{path.name}",
            fix=f"download {path.name} again",
            integer_ok=_decoder_key if quantized_layers else None,
        )
        for key, value in tensors.items():
            if dtype is not None and value.is_floating_point():
                value = value.to(dtype)
            state[key] = value
    return state


def tensor_shapes(folder: LLMGAFolder) -> dict[str, tuple[int, ...]]:
    """Every tensor's shape, read from the safetensors headers (no weights read), or from a memory-mapped
    ``.bin``."""
    shapes: dict[str, tuple[int, ...]] = {}
    for path in folder.weight_files:
        if folder.weight_format == "safetensors":
            from safetensors import SafetensorError, safe_open

            try:
                with safe_open(str(path), framework="pt") as f:
                    for key in f.keys():
                        shapes[key] = tuple(f.get_slice(key).get_shape())
            except (SafetensorError, OSError) as exc:
                raise LLMGAInputError(
                    f"{path.parent.name}/{path.name} is corrupt or truncated ({str(exc).strip()[:120]}); download "
                    "that file again."
                ) from None
        else:
            shapes.update({k: tuple(v.shape) for k, v in _load_file(path, "bin").items()})
    return shapes


def split_state_dict(
    state: Mapping[str, torch.Tensor],
) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """``(llm, vision, projector)``; vision keys lose ``VISION_PREFIX`` and projector keys their prefix."""
    llm: dict[str, torch.Tensor] = {}
    vision: dict[str, torch.Tensor] = {}
    projector: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        if key.startswith(VISION_PREFIX):
            vision[key[len(VISION_PREFIX) :]] = value
        elif key.startswith(PROJECTOR_PREFIX):
            projector[key[len(PROJECTOR_PREFIX) :]] = value
        elif key.startswith(LLM_PREFIX_KEYS):
            llm[key] = value
        # anything else (e.g. image_newline of unused anyres variants) is not part of LLMGA's path
    return llm, vision, projector


def load_tokenizer(folder: LLMGAFolder, text_cfg: Any | None = None) -> Any:
    """The folder's tokenizer, offline. Fast tokenizers are used for every backbone (transformers 5 keeps no
    slow Llama tokenizer by default); ``tokenizer_input_ids`` reproduces LLaVA's chunk rule on top."""
    from transformers import AutoTokenizer

    # The stock config is passed so that AutoTokenizer never reads config.json, whose llava_* model_type
    # it does not know.
    kwargs: dict[str, Any] = {
        "local_files_only": True,
        "trust_remote_code": False,
        "config": text_cfg if text_cfg is not None else text_config(folder),
    }
    try:
        return AutoTokenizer.from_pretrained(str(folder.path), **kwargs)
    except Exception as exc:  # the tokenizers library raises bare Exceptions for damaged files
        detail = clean_message(str(exc)).splitlines()[0][:160] if str(exc) else type(exc).__name__
        raise LLMGAInputError(
            f"{folder.name}: the tokenizer files cannot be loaded ({detail}); they are damaged or incomplete: "
            f"download them again. {_LAYOUT_HELP}"
        ) from None
