"""Smaller LLM weights for the LLMGA MLLM: fp8 storage, bitsandbytes 8/4-bit, and the dtype choice.

Only the language model is made smaller; the CLIP tower and the projector keep the model dtype so image
features keep their precision (as LLaVA-style loaders do).

- Every choice also stores the token embedding table and the output head as int8 rows with one float32
  scale per row (``absmax / 127``): a lookup dequantises only the rows it gathers, the head multiplies by
  the int8 table cast per call and scales the logits per vocabulary row. A tied head (Qwen2 0.5B/1.5B,
  gemma) reads the embedding's table, so it is stored once. Without this the ~150k/256k-row tables of
  Qwen2, gemma and llama-3 keep the quantised LLMs above half their half-precision size.

- ``fp8 (weights)``: every decoder ``nn.Linear`` stores its weight as ``float8_e4m3fn`` with one float32
  scale per output row (``absmax / 448``) and casts it back to the compute dtype per call. No extra
  package; works wherever torch has float8 tensors (CPU included). A host can swap the class for its own
  castable layer (ComfyUI: nodes/castable.py) since weight and scale are plain tensors.
- ``8-bit`` / ``4-bit``: bitsandbytes ``Linear8bitLt`` (LLM.int8, outlier threshold 6) and ``Linear4bit``
  (nf4, double quantisation, compute in the model dtype) through transformers' ``BitsAndBytesConfig``;
  they need ``bitsandbytes`` and ``accelerate`` (optional: :func:`missing_packages` names what is absent).

:func:`llm_dtype` is the precision rule (``auto`` on CPU keeps fp32 only where it fits comfortably in RAM)
and :func:`weight_bytes` the real size of a module (shared tensors once, quantisation state included),
which is what a memory manager must be told.
"""

from __future__ import annotations

import importlib.util
import logging
import warnings
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from ..errors import LLMGAInputError

__all__ = [
    "BNB_CHOICES",
    "FP8",
    "FP8_MAX",
    "NONE",
    "QUANTIZATIONS",
    "BytesEstimate",
    "FP8Linear",
    "Int8Embedding",
    "Int8Head",
    "bnb_config",
    "estimate_bytes",
    "fix_bnb_cpu_small_layers",
    "follow_weight_device_",
    "install_command",
    "is_out_of_memory",
    "llm_dtype",
    "missing_packages",
    "prequantized_reason",
    "quantize_fp8_",
    "quantize_tables_",
    "quiet_bnb",
    "raise_if_out_of_memory",
    "serialized_bnb_choice",
    "weight_bytes",
]

log = logging.getLogger(__name__)

NONE = "none"
FP8 = "fp8 (weights)"
BNB_CHOICES = ("8-bit", "4-bit")
QUANTIZATIONS = (NONE, FP8, *BNB_CHOICES)
FP8_MAX = 448.0  # largest finite float8_e4m3fn
# Pinned like requirements-test.txt; the lower bounds are the first releases with a CPU backend.
BNB_REQUIREMENTS = {"bitsandbytes": "bitsandbytes>=0.48", "accelerate": "accelerate>=1.0"}
_KEEP = ("lm_head",)  # never quantised as a decoder Linear: the head shares the embedding's int8 rows
INT8_MAX = 127.0
TABLE_CHUNK_ROWS = 16384  # rows quantised / cast at once: bounds the temporary copies of a 150k-row table
# auto on CPU keeps fp32 when the fp32 weights take at most this share of the available RAM
FP32_RAM_SHARE = 0.5


# -- choices and packages ---------------------------------------------------------------------------
def missing_packages(choice: str) -> list[str]:
    """The packages ``choice`` needs that are not installed (empty for none/fp8)."""
    if choice not in BNB_CHOICES:
        return []
    return [name for name in BNB_REQUIREMENTS if importlib.util.find_spec(name) is None]


def install_command(packages: list[str], python: str = "python") -> str:
    """The exact pip command that installs ``packages`` into the interpreter ``python``."""
    specs = " ".join(f'"{BNB_REQUIREMENTS[p]}"' for p in packages)
    return f'"{python}" -m pip install {specs}'


@contextmanager
def quiet_bnb() -> Iterator[None]:
    """Silence bitsandbytes' import-time notice about optional hub kernels and its per-call cast
    warnings (LLM.int8 quantises fp32 activations through fp16 by design)."""
    logger = logging.getLogger("bitsandbytes")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*MatMul8bitLt.*")
            warnings.filterwarnings("ignore", message=".*Input type into Linear4bit.*")
            yield
    finally:
        logger.setLevel(level)


def bnb_config(choice: str, compute_dtype: torch.dtype) -> Any:
    """transformers' ``BitsAndBytesConfig`` for ``8-bit`` / ``4-bit``."""
    from transformers import BitsAndBytesConfig

    if choice == "8-bit":
        return BitsAndBytesConfig(load_in_8bit=True, llm_int8_skip_modules=list(_KEEP))
    if choice == "4-bit":
        return BitsAndBytesConfig(
            load_in_4bit=True,
            bnb_4bit_quant_type="nf4",
            bnb_4bit_use_double_quant=True,
            bnb_4bit_compute_dtype=compute_dtype,
            llm_int8_skip_modules=list(_KEEP),
        )
    raise ValueError(f"not a bitsandbytes choice: {choice!r}")


def fix_bnb_cpu_small_layers(model: nn.Module) -> int:
    """bitsandbytes' AVX512-bf16 CPU path repacks a 4-bit weight on its first call and fails for layers
    narrower than its block (in_features % blocksize, out_features % 32): route those through the generic
    kernel. Real LLM widths are multiples of both; only tiny models hit this. Returns the count."""
    fixed = 0
    for module in model.modules():
        state = getattr(getattr(module, "weight", None), "quant_state", None)
        if state is None or not hasattr(module, "support_avx512bf16_for_cpu"):
            continue
        out_f, in_f = int(state.shape[0]), int(state.shape[1])
        if in_f % int(state.blocksize) or out_f % 32:
            module.support_avx512bf16_for_cpu = False
            fixed += 1
    return fixed


def follow_weight_device_(model: nn.Module) -> None:
    """Keep bitsandbytes' side tensors with their weights after a container-level move.

    ``Module.to`` on a parent swaps each parameter's data in place, so an 8-bit layer's scales
    (``weight.SCB``, ``state.SCB``) and its ``state.CB`` (the int8 weight again) stay where they were;
    only ``Linear8bitLt.to`` on the layer itself moves them, and a memory manager moves containers. 4-bit
    state moves in place with the weight and needs nothing."""
    for module in model.modules():
        state = getattr(module, "state", None)
        weight = getattr(module, "weight", None)
        if weight is None or state is None or not hasattr(state, "SCB"):
            continue
        device = weight.device
        if getattr(weight, "SCB", None) is not None:
            weight.SCB = weight.SCB.to(device)
            weight.CB = weight.data  # what quantisation set: the int8 weight itself
        if state.CB is not None:
            state.CB = weight.data
        if state.SCB is not None:
            state.SCB = state.SCB.to(device)


_OOM_WORDS = ("can't allocate memory", "not enough memory", "out of memory", "cannot allocate memory", "os error 12")


def is_out_of_memory(exc: BaseException) -> bool:
    """An allocation failure, however it is raised: ``torch.OutOfMemoryError`` (CUDA), ``MemoryError``,
    or the plain ``RuntimeError`` torch's CPU allocator raises ("DefaultCPUAllocator: can't allocate
    memory") and the OS errors of a failed memory map (errno 12)."""
    if isinstance(exc, (torch.OutOfMemoryError, MemoryError)):
        return True
    if isinstance(exc, OSError) and exc.errno == 12:
        return True
    text = str(exc).lower()
    return isinstance(exc, (RuntimeError, OSError)) and any(word in text for word in _OOM_WORDS)


def raise_if_out_of_memory(exc: BaseException, doing: str) -> None:
    """Re-raise an allocation failure as ``MemoryError`` (what the loader node turns into its "choose a
    smaller quantization" message), so it is never reported as a broken file or a config mismatch."""
    if is_out_of_memory(exc):
        raise MemoryError(f"{doing}: {exc}") from exc


# -- fp8 storage ------------------------------------------------------------------------------------
class FP8Linear(nn.Linear):
    """``nn.Linear`` whose weight is stored as float8_e4m3fn with a float32 scale per output row."""

    weight_scale: torch.Tensor

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        weight = self.weight.to(x.dtype) * self.weight_scale.to(device=x.device, dtype=x.dtype)
        bias = None if self.bias is None else self.bias.to(x.dtype)
        return nn.functional.linear(x, weight.to(x.device), None if bias is None else bias.to(x.device))


def _to_fp8(linear: nn.Linear) -> None:
    w = linear.weight.detach().float()
    scale = (w.abs().amax(dim=1, keepdim=True) / FP8_MAX).clamp_min(torch.finfo(torch.float32).tiny)
    linear.weight = nn.Parameter((w / scale).to(torch.float8_e4m3fn), requires_grad=False)
    linear.register_buffer("weight_scale", scale)
    linear.__class__ = FP8Linear


def quantize_fp8_(model: nn.Module, keep: tuple[str, ...] = _KEEP) -> int:
    """Store the weights of every plain ``nn.Linear`` of ``model`` (but ``keep``) in fp8, in place.
    Returns how many layers were converted."""
    if not hasattr(torch, "float8_e4m3fn"):
        raise LLMGAInputError("fp8 weights need torch 2.1 or newer; choose 'none' or update torch.")
    count = 0
    for name, module in model.named_modules():
        if type(module) is nn.Linear and name.rsplit(".", 1)[-1] not in keep:
            _to_fp8(module)
            count += 1
    return count


# -- int8 embedding table and head ----------------------------------------------------------------
def _int8_rows(weight: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(int8 table, float32 scale per row) of a 2-D weight, in chunks of rows."""
    q = torch.empty(weight.shape, dtype=torch.int8, device=weight.device)
    scale = torch.empty(weight.shape[0], dtype=torch.float32, device=weight.device)
    for start in range(0, weight.shape[0], TABLE_CHUNK_ROWS):
        rows = weight[start : start + TABLE_CHUNK_ROWS].detach().float()
        s = (rows.abs().amax(dim=1) / INT8_MAX).clamp_min(torch.finfo(torch.float32).tiny)
        q[start : start + TABLE_CHUNK_ROWS] = (rows / s[:, None]).round_().clamp_(-INT8_MAX, INT8_MAX).to(torch.int8)
        scale[start : start + TABLE_CHUNK_ROWS] = s
    return q, scale


class Int8Embedding(nn.Module):
    """Token embedding stored as int8 rows + float32 per-row scale; returns ``compute_dtype`` rows.

    The lookup runs where the table is and moves only the gathered rows to the ids' device, so a memory
    manager may leave the table on its offload device. Gemma's ``embed_scale`` is kept and applied."""

    def __init__(self, source: nn.Embedding) -> None:
        super().__init__()
        q, scale = _int8_rows(source.weight)
        self.weight = nn.Parameter(q, requires_grad=False)
        self.register_buffer("weight_scale", scale)
        self.compute_dtype = source.weight.dtype
        self.num_embeddings, self.embedding_dim = int(q.shape[0]), int(q.shape[1])
        self.padding_idx = source.padding_idx
        embed_scale = getattr(source, "embed_scale", None)
        if isinstance(embed_scale, torch.Tensor):
            self.register_buffer("embed_scale", embed_scale.detach().clone(), persistent=False)
        else:
            self.embed_scale = None

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        ids = input_ids.to(self.weight.device)
        rows = self.weight[ids].to(self.compute_dtype) * self.weight_scale[ids, None].to(self.compute_dtype)
        if self.embed_scale is not None:
            rows = rows * self.embed_scale.to(device=rows.device, dtype=self.compute_dtype)
        return rows.to(input_ids.device)

    def extra_repr(self) -> str:
        return f"{self.num_embeddings}, {self.embedding_dim}, int8 rows, compute {self.compute_dtype}"


class Int8Head(nn.Module):
    """Output head ``x @ W.T`` with ``W`` as int8 rows + per-row scale: its own, or the input embedding's
    (a tied head, held by plain reference so the table is one tensor). The table is cast to the input's
    device and dtype in chunks of rows per call and the logits are scaled per vocabulary row."""

    def __init__(self, source: nn.Linear | None = None, tied: Int8Embedding | None = None) -> None:
        super().__init__()
        if (source is None) == (tied is None):
            raise ValueError("an Int8Head is made from a Linear or tied to an Int8Embedding")
        if source is not None:
            if source.bias is not None:
                raise ValueError("an Int8Head has no bias")
            q, scale = _int8_rows(source.weight)
            self.weight = nn.Parameter(q, requires_grad=False)
            self.register_buffer("weight_scale", scale)
        object.__setattr__(self, "tied", tied)  # not a submodule: the table is counted and moved once

    def _table(self) -> tuple[torch.Tensor, torch.Tensor]:
        owner = self.tied if self.tied is not None else self
        return owner.weight, owner.weight_scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        weight, scale = self._table()
        parts = [
            nn.functional.linear(x, weight[i : i + TABLE_CHUNK_ROWS].to(device=x.device, dtype=x.dtype))
            for i in range(0, weight.shape[0], TABLE_CHUNK_ROWS)
        ]
        return torch.cat(parts, dim=-1) * scale.to(device=x.device, dtype=x.dtype)

    def extra_repr(self) -> str:
        weight, _ = self._table()
        tied = ", tied to the embedding" if self.tied is not None else ""
        return f"{weight.shape[1]} -> {weight.shape[0]}, int8 rows{tied}"


def quantize_tables_(lm: nn.Module) -> int:
    """Store ``lm``'s (a transformers causal LM) input embedding and output head as int8 rows, in place;
    a tied head shares the embedding's table. Returns the number of tables stored (1 when tied, else 2)."""
    embed = lm.get_input_embeddings()
    head = lm.get_output_embeddings()
    if not isinstance(embed, nn.Embedding) or not isinstance(head, nn.Linear) or type(head) is not nn.Linear:
        return 0  # already done, or a layout this does not know: leave it as it is
    tied = head.weight is embed.weight or head.weight.data_ptr() == embed.weight.data_ptr()
    table = Int8Embedding(embed)
    lm.set_input_embeddings(table)
    lm.set_output_embeddings(Int8Head(tied=table) if tied else Int8Head(source=head))
    return 1 if tied else 2


# -- dtype and size ---------------------------------------------------------------------------------
_DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}


def llm_dtype(
    choice: str, device_type: str, fp32_bytes: int, available_ram: int | None, gpu_dtype: torch.dtype
) -> tuple[torch.dtype, str]:
    """The MLLM's dtype for a precision ``choice`` (auto/fp32/fp16/bf16) and why.

    Explicit choices are honoured on every device (bf16 halves CPU memory). ``auto`` is ``gpu_dtype`` on
    an accelerator; on CPU it is fp32 while the fp32 weights take at most half the available RAM, else
    bf16.
    """
    if choice in _DTYPES:
        return _DTYPES[choice], f"{choice} as chosen"
    if device_type != "cpu":
        return gpu_dtype, f"auto: {str(gpu_dtype).removeprefix('torch.')} on {device_type}"
    if available_ram is None or fp32_bytes <= FP32_RAM_SHARE * available_ram:
        return torch.float32, "auto: fp32 on CPU (fits in RAM)"
    return torch.bfloat16, (
        f"auto: bf16 on CPU, since fp32 weights ({fp32_bytes / 2**30:.1f} GB) would take more than half of the "
        f"{available_ram / 2**30:.1f} GB of free RAM"
    )


def _quant_state_tensors(param: Any) -> list[torch.Tensor]:
    """The side tensors bitsandbytes keeps next to a quantised weight (scales, codebooks)."""
    found: list[torch.Tensor] = []
    scb = getattr(param, "SCB", None)
    if isinstance(scb, torch.Tensor):
        found.append(scb)
    state = getattr(param, "quant_state", None)
    while state is not None:
        parts = (getattr(state, name, None) for name in ("absmax", "code", "offset"))
        found += [t for t in parts if isinstance(t, torch.Tensor)]
        state = getattr(state, "state2", None)
    return found


def weight_bytes(module: nn.Module) -> int:
    """Bytes held by ``module``'s parameters and buffers, each storage once (tied heads), plus the
    bitsandbytes quantisation state."""
    seen: set[tuple[int, torch.device]] = set()
    total = 0

    def add(t: torch.Tensor) -> None:
        nonlocal total
        if t.device.type == "meta":
            return
        key = (t.untyped_storage().data_ptr(), t.device)
        if key in seen:
            return
        seen.add(key)
        total += t.untyped_storage().nbytes()

    for p in module.parameters():
        add(p)
        for t in _quant_state_tensors(p):
            add(t)
    for b in module.buffers():
        add(b)
    return total


@dataclass(frozen=True)
class BytesEstimate:
    """Weight bytes of the LLM under one choice (the tower and projector come on top)."""

    linear_params: int  # parameters in decoder Linear layers (the ones quantised)
    other_params: int  # norms and the rest (kept in the model dtype)
    table_params: int = 0  # input embedding + untied head (int8 rows under every quantised choice)
    table_rows: int = 0  # their rows (one float32 scale each)

    def llm_bytes(self, choice: str, dtype_bytes: int = 2) -> int:
        per = {NONE: float(dtype_bytes), FP8: 1.0, "8-bit": 1.0, "4-bit": 0.5 + 1 / 64 + 4 / (64 * 256)}
        # nf4: half a byte per weight + double-quantised absmax (1 byte per 64 weights + fp32 per 256 blocks)
        if choice not in per:
            raise ValueError(choice)
        tables = self.table_params * dtype_bytes if choice == NONE else self.table_params + 4 * self.table_rows
        return int(self.linear_params * per[choice] + tables + self.other_params * dtype_bytes)


def estimate_bytes(shapes: Mapping[str, tuple[int, ...]]) -> BytesEstimate:
    """Split an LLM state dict's shapes (``model.*``/``lm_head.*`` keys) into quantised Linear weights and
    the rest. 2-D ``*.weight`` tensors inside ``model.layers`` are the decoder Linears (a tied checkpoint
    stores no ``lm_head.weight``, so it is counted once); ``embed_tokens.weight`` and ``lm_head.weight`` are
    the int8 tables."""
    linear = other = table = rows = 0
    for key, shape in shapes.items():
        n = 1
        for s in shape:
            n *= int(s)
        if ".layers." in key and key.endswith(".weight") and len(shape) == 2:
            linear += n
        elif key.endswith(("embed_tokens.weight", "lm_head.weight")) and len(shape) == 2:
            table += n
            rows += int(shape[0])
        else:
            other += n
    return BytesEstimate(linear_params=linear, other_params=other, table_params=table, table_rows=rows)


# -- folders that are already quantised -------------------------------------------------------------
_QUANT_KEY_ENDINGS = (
    ".SCB",
    ".absmax",
    ".quant_map",
    ".nested_absmax",
    ".weight_format",
    ".quant_state.bitsandbytes__nf4",
)


def serialized_bnb_choice(config: Mapping[str, Any]) -> str | None:
    """``8-bit`` / ``4-bit`` for a folder that transformers saved from a bitsandbytes model (config.json's
    ``quantization_config``), which loads as it is; None for any other folder."""
    qc = config.get("quantization_config")
    if not isinstance(qc, Mapping) or str(qc.get("quant_method", "bitsandbytes")) != "bitsandbytes":
        return None
    if qc.get("load_in_4bit") or qc.get("_load_in_4bit"):
        return "4-bit"
    if qc.get("load_in_8bit") or qc.get("_load_in_8bit"):
        return "8-bit"
    return None


def prequantized_reason(config: Mapping[str, Any], keys: list[str]) -> str | None:
    """Why a folder cannot be read as full-precision weights (a quantisation_config or bitsandbytes state
    in the weights), or None."""
    qc = config.get("quantization_config")
    if isinstance(qc, Mapping):
        method = qc.get("quant_method", "bitsandbytes")
        bits = "4-bit" if qc.get("load_in_4bit") else "8-bit" if qc.get("load_in_8bit") else str(qc.get("bits", "?"))
        return f"config.json has a quantization_config ({method}, {bits})"
    hits = [k for k in keys if k.endswith(_QUANT_KEY_ENDINGS)]
    if hits:
        return f"the weights hold bitsandbytes quantisation state (e.g. {hits[0]})"
    return None
