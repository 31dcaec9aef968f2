"""An LLMGA MLLM folder as a GGUF pair for llama.cpp (``llama-server -m model.gguf --mmproj mmproj.gguf``).

Written offline on CPU with the ``gguf`` package's writer and our own key mapping (no llama.cpp
converter is run or vendored):

- ``<name>-<dtype>.gguf``: the base LLM and its vocabulary (see :mod:`.gguf_text`, :mod:`.gguf_vocab`),
  the passthrough chat template (the pack renders LLMGA's byte-exact prompts itself and sends them to
  ``/completion``) and ``llmga.template``: the LLMGA conversation template the prompts must be rendered
  with;
- ``mmproj-<name>-<dtype>.gguf``: the CLIP tower and projector (see :mod:`.gguf_mmproj`).

The model is loaded with :func:`~llmga_core.mllm.model.load_mllm`, so what is exported is exactly what
the pack runs (vocab shrink applied, tower taken from the checkpoint or ``clip_vision``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gguf
import torch

from ..errors import LLMGAInputError
from ..mllm.checkpoint import inspect_folder
from ..mllm.image_prep import ClipPreprocessConfig
from ..mllm.model import load_mllm
from ..mllm.templates import select_template_for_folder
from .gguf_kquants import KQUANT_MIXES, ggml_quantize, tensor_type
from .gguf_mmproj import mmproj_hparams, mmproj_tensors
from .gguf_text import GGUF_ARCH, as_array, text_hparams, text_tensors
from .gguf_vocab import llama_cpp_model_name, vocab_from_tokenizer
from .hf_llava import PASSTHROUGH_CHAT_TEMPLATE

__all__ = ["GENERATION_KEY", "GGUF_DTYPES", "TEMPLATE_KEY", "GGUFExport", "export_gguf"]

GGUF_DTYPES = ("f32", "f16", "q8_0", "q4_0", *KQUANT_MIXES)
_FILE_TYPES = {
    "f32": gguf.LlamaFileType.ALL_F32,
    "f16": gguf.LlamaFileType.MOSTLY_F16,
    "q8_0": gguf.LlamaFileType.MOSTLY_Q8_0,
    "q4_0": gguf.LlamaFileType.MOSTLY_Q4_0,
    **{name: mix.file_type for name, mix in KQUANT_MIXES.items()},
}
_QUANTS = {"q8_0": gguf.GGMLQuantizationType.Q8_0, "q4_0": gguf.GGMLQuantizationType.Q4_0}
TEMPLATE_KEY = "llmga.template"
GENERATION_KEY = "llmga.generation_config"  # the folder's generation_config.json (sampling defaults, end ids)


@dataclass(frozen=True)
class GGUFExport:
    """The files written and what a client needs to drive them."""

    model: Path
    mmproj: Path
    template: str  # the LLMGA conversation template name (render prompts with it)


def _writer(path: Path, arch: str, name: str, dtype: str) -> gguf.GGUFWriter:
    writer = gguf.GGUFWriter(str(path), arch)
    writer.add_name(name)
    writer.add_file_type(_FILE_TYPES[dtype])
    return writer


def _add_kquant_tensor(writer: gguf.GGUFWriter, name: str, value: torch.Tensor, dtype: str, cfg: Any) -> None:
    """A K-quant mix: llama-quantize's type for this matrix, quantised by llama.cpp itself; vectors in f32."""
    if value.ndim != 2:
        writer.add_tensor(name, as_array(value, False))
        return
    tied = bool(getattr(cfg, "tie_word_embeddings", False))
    kind = tensor_type(name, int(value.shape[-1]), KQUANT_MIXES[dtype], int(cfg.num_hidden_layers), tied)
    if kind == gguf.GGMLQuantizationType.F16:
        writer.add_tensor(name, as_array(value, True))
        return
    writer.add_tensor(name, ggml_quantize(as_array(value, False), kind), raw_dtype=kind)


def _add_text_tensor(writer: gguf.GGUFWriter, name: str, value: torch.Tensor, dtype: str) -> None:
    """Matrices in ``dtype`` (quantised with the ``gguf`` package's reference quantizers), vectors in f32.

    Q4_0 keeps the token embeddings and the output head at Q8_0 (llama.cpp's own quantizer also keeps the
    vocabulary ends above 4 bits); a matrix whose rows are not whole quant blocks stays f16."""
    kind = _QUANTS.get(dtype)
    if kind is None or value.ndim != 2:
        writer.add_tensor(name, as_array(value, dtype != "f32"))
        return
    if kind == gguf.GGMLQuantizationType.Q4_0 and name in ("token_embd.weight", "output.weight"):
        kind = gguf.GGMLQuantizationType.Q8_0
    if value.shape[-1] % gguf.GGML_QUANT_SIZES[kind][0]:
        writer.add_tensor(name, as_array(value, True))
        return
    writer.add_tensor(name, gguf.quants.quantize(as_array(value, False), kind), raw_dtype=kind)


def _finish(writer: gguf.GGUFWriter) -> None:
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


def _write_text(mllm: Any, path: Path, name: str, template: str, dtype: str) -> None:
    lm = mllm.model.language_model
    cfg = lm.config
    arch = GGUF_ARCH.get(cfg.model_type)
    if arch is None:
        raise LLMGAInputError(
            f"{name}: base model type {cfg.model_type!r} has no llama.cpp export; supported: {sorted(GGUF_ARCH)}."
        )
    rows = int(mllm.model.embed_tokens.weight.shape[0])
    vocab = vocab_from_tokenizer(mllm.tokenizer, rows, bos_fallback=getattr(cfg, "bos_token_id", None))
    writer = _writer(path, arch, llama_cpp_model_name(name, vocab.rstrip_special), dtype)
    text_hparams(writer, cfg, rows)
    vocab.write(writer)
    writer.add_chat_template(PASSTHROUGH_CHAT_TEMPLATE)
    writer.add_string(TEMPLATE_KEY, template)
    writer.add_string(GENERATION_KEY, json.dumps(dict(mllm.folder.generation_config), sort_keys=True))
    for tensor_name, value in text_tensors(lm):
        if dtype in KQUANT_MIXES:
            _add_kquant_tensor(writer, tensor_name, value, dtype, cfg)
        else:
            _add_text_tensor(writer, tensor_name, value, dtype)
    _finish(writer)


def _write_mmproj(mllm: Any, path: Path, name: str, f16: bool) -> None:
    model = mllm.model
    if model.vision_tower is None:
        raise LLMGAInputError(f"{name}: export needs the vision tower (the checkpoint's or a clip_vision folder).")
    preprocess: ClipPreprocessConfig = mllm.clip_preprocess
    writer = _writer(path, "clip", name, "f16" if f16 else "f32")
    mmproj_hparams(writer, model.vision_tower.config, model.settings, preprocess.image_mean, preprocess.image_std)
    for tensor_name, value in mmproj_tensors(model.vision_tower, model.mm_projector, model.settings.select_layer):
        writer.add_tensor(tensor_name, as_array(value, f16))
    _finish(writer)


def _load_dtype(folder: Path, f16: bool) -> torch.dtype:
    """float32 for an f32 export; for f16 the checkpoint's own 16-bit dtype (lossless, half the memory of
    float32 for a 7B model); each tensor is converted on its own when written."""
    stored = str(inspect_folder(folder).config.get("torch_dtype") or "")
    if f16 and stored in ("bfloat16", "float16"):
        return getattr(torch, stored)
    return torch.float32


def export_gguf(
    folder: str | Path,
    out_dir: str | Path,
    dtype: str = "f16",
    clip_vision: str | Path | None = None,
    template: str | None = None,
) -> GGUFExport:
    """Write the text GGUF and the mmproj GGUF of an LLMGA folder into ``out_dir``.

    ``dtype`` is "f32", "f16", "q8_0", "q4_0" or a K-quant mix "q4_k_m", "q5_k_m", "q6_k" (matrices; norms and
    biases stay f32; the K mixes need the xllamacpp wheel, whose llama.cpp quantizes them); the mmproj of a
    quantised export is f16 (``mmproj-<name>-f16.gguf``: the image rows run in torch from it).
    ``clip_vision`` is the CLIP folder for a checkpoint stored without its tower; ``template`` overrides the
    automatic LLMGA template choice.
    """
    if dtype not in GGUF_DTYPES:
        raise LLMGAInputError(f"GGUF dtype must be one of {GGUF_DTYPES}, got {dtype!r}.")
    if dtype in KQUANT_MIXES:
        from ..llamacpp.binding import library

        library()  # the K-quant bytes come from the xllamacpp wheel: say so before the model is read
    f16 = dtype != "f32"
    folder = Path(folder)
    choice = select_template_for_folder(folder, template)
    mllm = load_mllm(folder, dtype=_load_dtype(folder, f16), clip_vision=clip_vision)
    if mllm.model.vision_tower is None:
        raise LLMGAInputError(f"{folder.name}: export needs the vision tower.")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    name = folder.name
    model_path = out / f"{name}-{dtype}.gguf"
    mmproj_path = out / f"mmproj-{name}-{dtype if dtype in ('f32', 'f16') else 'f16'}.gguf"
    _write_text(mllm, model_path, name, choice.name, dtype)
    _write_mmproj(mllm, mmproj_path, name, f16)
    return GGUFExport(model=model_path, mmproj=mmproj_path, template=choice.name)
