"""Convert released LLMGA MLLM folders into the forms serving engines load (vLLM: HF LLaVA layout)."""

from __future__ import annotations

from .hf_llava import IMAGE_TOKEN, PASSTHROUGH_CHAT_TEMPLATE, export_hf_llava, hf_llava_state_dict

__all__ = ["IMAGE_TOKEN", "PASSTHROUGH_CHAT_TEMPLATE", "export_hf_llava", "hf_llava_state_dict"]
