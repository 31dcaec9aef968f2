"""The one place of the glue that knows ComfyUI's devices, dtypes, memory manager, progress and Cancel.

Heavy models live in ComfyUI ``ModelPatcher``s so ComfyUI loads them to the GPU when a node needs them
and offloads them when another model (an SD UNet, say) needs the memory.
"""

from __future__ import annotations

from collections.abc import Callable

import comfy.model_management as mm
import comfy.model_patcher
import comfy.utils
import torch

from . import _compat as compat

PRECISIONS = ("auto", "fp32", "fp16", "bf16")
_DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}


def managed(module: torch.nn.Module, size: int = 0) -> comfy.model_patcher.ModelPatcher:
    """Hand a CPU-resident module to ComfyUI's memory manager. ``size``: its real bytes when ComfyUI's own
    count (a state-dict sum) would be wrong, e.g. for tied or quantised weights."""
    return comfy.model_patcher.ModelPatcher(
        module, load_device=mm.get_torch_device(), offload_device=mm.unet_offload_device(), size=size
    )


def load_to_device(patcher: comfy.model_patcher.ModelPatcher, full: bool = False) -> torch.device:
    """Make sure the model is on its compute device (freeing others if needed) and return that device.
    ``full``: load it whole (models whose layers cannot be cast per call)."""
    mm.load_models_gpu([patcher], force_full_load=full)
    return patcher.load_device


def compute_dtype(choice: str, device: torch.device) -> torch.dtype:
    """``auto`` is fp16 where ComfyUI would use it for this device, else fp32; CPUs always compute fp32."""
    if choice in _DTYPES:
        if device.type == "cpu" and choice != "fp32":
            return torch.float32  # half precision on CPU is slow and inexact; there is nothing to save
        return _DTYPES[choice]
    return torch.float16 if device.type != "cpu" and mm.should_use_fp16(device) else torch.float32


def intermediate(t: torch.Tensor) -> torch.Tensor:
    return t.to(mm.intermediate_device())


def check_interrupt() -> None:
    """Raise ComfyUI's interrupt exception if the user pressed Cancel."""
    mm.throw_exception_if_processing_interrupted()


def progress_callback(total: int) -> Callable[[int, int], None]:
    """A ``progress(done, total)`` callback drawing ComfyUI's progress bar on the running node."""
    bar = comfy.utils.ProgressBar(total)

    def update(done: int, new_total: int) -> None:
        bar.update_absolute(done, new_total)

    return update


def stream_text(node_id: str | None, text: str) -> None:
    """Show ``text`` on the running node while it is produced (where the host has progress text)."""
    if node_id is not None:
        compat.send_progress_text(text, node_id)
