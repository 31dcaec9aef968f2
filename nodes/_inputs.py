"""Input definitions several LLMGA nodes share, so they look and behave the same everywhere."""

from __future__ import annotations

from comfy_api.latest import io

from ..llmga_core.mllm import TEMPLATE_NAMES
from . import runtime

MAX_SEED = 0xFFFFFFFFFFFFFFFF


def seed_input(tooltip: str, name: str = "seed") -> io.Int.Input:
    return io.Int.Input(name, default=0, min=0, max=MAX_SEED, control_after_generate=True, tooltip=tooltip)


def precision_input(
    tooltip: str = "Compute precision. auto: fp16 on GPUs that handle it, fp32 on CPU.",
) -> io.Combo.Input:
    return io.Combo.Input("precision", options=list(runtime.PRECISIONS), default="auto", tooltip=tooltip)


def template_input(auto_means: str) -> io.Combo.Input:
    """The MLLM loaders' conversation-template choice; ``auto_means`` says where auto takes it from."""
    tooltip = f"Conversation template. auto: {auto_means}"
    return io.Combo.Input("template", options=["auto", *TEMPLATE_NAMES], default="auto", tooltip=tooltip)
