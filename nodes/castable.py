"""Make a loaded torch model partially loadable by ComfyUI's ModelPatcher.

``ModelPatcher.load(lowvram_model_memory=…)`` keeps on the offload device every module that has the
``comfy_cast_weights`` attribute once the budget is spent, and sets that flag so the module casts its
weights to the compute device per call; a module without it is moved whole or not at all. So, after
loading (state dicts unchanged):

- plain ``nn.Linear`` / ``nn.Embedding`` (and subclasses such as gemma's scaled embedding) become
  ``comfy.ops.disable_weight_init`` layers (ComfyUI's own text encoders are built from these);
- fp8-stored Linears (llmga_core's ``FP8Linear``) become ``comfy.ops.manual_cast`` Linears that also apply
  the per-row scale;
- every other module with tensors of its own (norms, CLIP's embeddings and their ``position_ids``
  buffer, convolutions) gets a cast-on-call mixin: when ComfyUI left it on the offload device (or on a
  device other than its input's), its tensors are copied to the input's device for that call only.

- the int8 embedding table and head (llmga_core's ``Int8Embedding`` / ``Int8Head``) move their tensors
  to the input's device themselves (the lookup gathers rows where the table is), so they only get the
  attributes that tell ModelPatcher it may leave them on the offload device;

bitsandbytes layers are left alone: they move as whole modules.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, ClassVar

import comfy.ops
import torch
from torch import nn

from ..llmga_core.mllm.quantize import FP8Linear, Int8Embedding, Int8Head

__all__ = ["make_castable"]

_ops = comfy.ops.disable_weight_init


class CastFP8Linear(comfy.ops.manual_cast.Linear):
    """fp8 weight + float32 per-row scale, upcast to the input's dtype per call (always cast)."""

    weight_scale: torch.Tensor

    def forward_comfy_cast_weights(self, input: torch.Tensor) -> torch.Tensor:
        weight, bias, stream = comfy.ops.cast_bias_weight(self, input, offloadable=True)
        scaled = weight * self.weight_scale.to(device=weight.device, dtype=weight.dtype)
        out = nn.functional.linear(input, scaled, bias)
        comfy.ops.uncast_bias_weight(self, weight, bias, stream)
        return out


def _first_tensor(args: tuple[Any, ...], kwargs: dict[str, Any]) -> torch.Tensor | None:
    for value in (*args, *kwargs.values()):
        if isinstance(value, torch.Tensor):
            return value
    return None


class _CastOwnTensors:
    """Mixin: run the module with its own parameters/buffers on the input's device when they are elsewhere."""

    comfy_cast_weights = False
    weight_function: ClassVar[list[Any]] = []  # ComfyUI sets per-instance lists when it patches
    bias_function: ClassVar[list[Any]] = []

    @contextmanager
    def _tensors_on(self, device: torch.device) -> Iterator[None]:
        module: nn.Module = self  # type: ignore[assignment]
        saved: list[tuple[dict[str, Any], str, Any]] = []
        for table in (module._parameters, module._buffers):
            for name, value in list(table.items()):
                if value is not None and value.device != device:
                    saved.append((table, name, value))
                    table[name] = value.detach().to(device)
        try:
            yield
        finally:
            for table, name, value in saved:
                table[name] = value

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        x = _first_tensor(args, kwargs)
        module: nn.Module = self  # type: ignore[assignment]
        own = [t for t in (*module._parameters.values(), *module._buffers.values()) if t is not None]
        if x is None or all(t.device == x.device for t in own):
            return super().forward(*args, **kwargs)  # type: ignore[misc]
        with self._tensors_on(x.device):
            return super().forward(*args, **kwargs)  # type: ignore[misc]


class _Offloadable:
    """Mixin: the attributes ModelPatcher looks for on a module it may keep on the offload device; the
    module's own forward already computes wherever its input is."""

    comfy_cast_weights = False
    weight_function: ClassVar[list[Any]] = []
    bias_function: ClassVar[list[Any]] = []


_MIXED: dict[type, type] = {}


def _with_mixin(cls: type, base: type) -> type:
    """``cls`` with ``base`` (a comfy op or the cast mixin) spliced in, cached per class."""
    key = (cls, base)
    if key not in _MIXED:
        bases = (base, cls) if base in (_CastOwnTensors, _Offloadable) else (cls, base)
        _MIXED[key] = type(f"Castable{cls.__name__}", bases, {})  # type: ignore[index]
    return _MIXED[key]  # type: ignore[index]


def _new_class(module: nn.Module) -> type | None:
    cls = type(module)
    if getattr(cls, "__module__", "").startswith(("bitsandbytes", "comfy.")) or hasattr(module, "comfy_cast_weights"):
        return None
    if cls is FP8Linear:
        return CastFP8Linear
    if cls in (Int8Embedding, Int8Head):
        return _with_mixin(cls, _Offloadable)
    if cls is nn.Linear:
        return _ops.Linear
    if cls is nn.Embedding:
        return _ops.Embedding
    if issubclass(cls, nn.Embedding):
        return _with_mixin(cls, _ops.Embedding)
    if isinstance(module, nn.Linear):
        return None  # a Linear subclass with its own maths (quantised or custom): leave it
    if any(t is not None for t in (*module._parameters.values(), *module._buffers.values())):
        return _with_mixin(cls, _CastOwnTensors)
    return None


def make_castable(model: nn.Module) -> int:
    """Swap the classes of ``model``'s layers in place (see the module docstring). Returns the count."""
    count = 0
    for module in model.modules():
        new = _new_class(module)
        if new is not None:
            module.__class__ = new
            for name in ("weight", "bias"):  # ModelPatcher reads both on every castable module
                if not hasattr(module, name):
                    object.__setattr__(module, name, None)
            count += 1
    return count
