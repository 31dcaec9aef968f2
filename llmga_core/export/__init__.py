"""Convert released LLMGA MLLM folders into the forms serving engines load: the transformers LLaVA layout
(vLLM) and a GGUF pair (llama.cpp's server). ``python -m llmga_core.export {hf-llava,gguf} SRC OUT``."""

from __future__ import annotations

from .gguf import GGUFExport, export_gguf
from .hf_llava import IMAGE_TOKEN, PASSTHROUGH_CHAT_TEMPLATE, export_hf_llava, hf_llava_state_dict

__all__ = [
    "IMAGE_TOKEN",
    "PASSTHROUGH_CHAT_TEMPLATE",
    "GGUFExport",
    "export_gguf",
    "export_hf_llava",
    "hf_llava_state_dict",
]
