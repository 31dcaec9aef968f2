"""The JSON each engine receives for one LLMGA turn.

- llama.cpp ``/completion``: the fully rendered LLMGA prompt, ``<image>`` replaced by the server's media
  marker, the image as base64 PNG in ``multimodal_data``. llama.cpp tokenises the text around the marker
  piece by piece and adds one BOS when the model's vocabulary asks for it: LLaVA's chunk rule.
- vLLM (OpenAI chat): one user message whose text is the rendered prompt with ``<image>`` in place (vLLM
  leaves a placeholder that is already there where it is) plus the PNG as a data URL; the exported
  folder's passthrough chat template adds nothing, and ``add_special_tokens`` lets the tokenizer add BOS
  as LLaVA's tokenisation does.

Sampling follows the local path's meaning (transformers): temperature 0 is greedy; top_k unset means
transformers' default 50; filters run after the temperature, as transformers' logits processors do.
Images always travel as PNG: JPEG would change the pixels the model sees.
"""

from __future__ import annotations

import base64
import io
from collections.abc import Sequence
from typing import Any

import numpy as np
from PIL import Image

from ..mllm.conversation import IMAGE_TOKEN

__all__ = ["completion_request", "openai_chat_request", "png_bytes", "sampling_fields"]

HF_DEFAULT_TOP_K = 50
_UINT32 = 2**32 - 1  # llama.cpp treats 0xFFFFFFFF as "random seed"


def png_bytes(image: Image.Image | np.ndarray) -> bytes:
    """Lossless PNG of an RGB image (PIL or HxWx3 uint8)."""
    pil = image if isinstance(image, Image.Image) else Image.fromarray(np.asarray(image, dtype=np.uint8), "RGB")
    buf = io.BytesIO()
    pil.convert("RGB").save(buf, format="PNG")
    return buf.getvalue()


def sampling_fields(settings: Any) -> dict[str, Any]:
    """Engine-neutral sampling fields from a :class:`~llmga_core.mllm.generate.SamplingSettings`."""
    return {
        "seed": int(settings.seed) % _UINT32,
        "temperature": float(settings.temperature),
        "top_p": 1.0 if settings.top_p is None else float(settings.top_p),
        "top_k": HF_DEFAULT_TOP_K if settings.top_k is None else int(settings.top_k),
        "repetition_penalty": 1.0 if settings.repetition_penalty is None else float(settings.repetition_penalty),
    }


def completion_request(
    prompt: str, settings: Any, *, media_marker: str, image_png: bytes | None = None, stop: Sequence[str] = ()
) -> dict[str, Any]:
    """A streaming llama.cpp ``/completion`` body."""
    sampling = sampling_fields(settings)
    if image_png is None:
        body_prompt: Any = prompt
    else:
        if prompt.count(IMAGE_TOKEN) != 1:
            raise ValueError(f"an image turn needs exactly one {IMAGE_TOKEN} in the prompt")
        body_prompt = {
            "prompt_string": prompt.replace(IMAGE_TOKEN, media_marker, 1),
            "multimodal_data": [base64.b64encode(image_png).decode("ascii")],
        }
    return {
        "prompt": body_prompt,
        "n_predict": int(settings.max_new_tokens),
        "stream": True,
        "return_tokens": True,
        "cache_prompt": False,  # the server's README: a reused cache can change results
        "seed": sampling["seed"],
        "temperature": sampling["temperature"],
        "top_k": sampling["top_k"],
        "top_p": sampling["top_p"],
        "min_p": 0.0,
        "repeat_penalty": sampling["repetition_penalty"],
        "samplers": ["penalties", "temperature", "top_k", "top_p"],
        "stop": list(stop),
    }


def openai_chat_request(
    model: str, prompt: str, settings: Any, *, image_png: bytes | None = None, stop: Sequence[str] = ()
) -> dict[str, Any]:
    """A streaming OpenAI chat body as vLLM takes it (extra fields are vLLM's sampling parameters)."""
    sampling = sampling_fields(settings)
    if image_png is None:
        content: Any = prompt
    else:
        url = "data:image/png;base64," + base64.b64encode(image_png).decode("ascii")
        content = [{"type": "image_url", "image_url": {"url": url}}, {"type": "text", "text": prompt}]
    return {
        "model": model,
        "messages": [{"role": "user", "content": content}],
        "stream": True,
        "max_tokens": int(settings.max_new_tokens),
        "seed": sampling["seed"],
        "temperature": sampling["temperature"],
        "top_p": sampling["top_p"],
        "top_k": sampling["top_k"],
        "repetition_penalty": sampling["repetition_penalty"],
        "stop": list(stop),
        "add_special_tokens": True,
        "skip_special_tokens": False,
        "spaces_between_special_tokens": False,
        "include_stop_str_in_output": True,
    }
