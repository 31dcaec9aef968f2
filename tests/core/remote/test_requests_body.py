"""What each engine is sent: the rendered prompt unchanged, the image as lossless PNG, sampling as the
local path means it."""

from __future__ import annotations

import base64
import io

import numpy as np
import pytest
from PIL import Image

from llmga_core.mllm.generate import SamplingSettings
from llmga_core.remote import completion_request, openai_chat_request, png_bytes

PROMPT = "A chat. USER: <image>\nDescribe it. ASSISTANT:"


def _pixels() -> np.ndarray:
    return np.random.default_rng(0).integers(0, 256, (14, 14, 3), dtype=np.uint8)


def test_png_is_lossless() -> None:
    arr = _pixels()
    data = png_bytes(arr)
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    assert np.array_equal(np.asarray(Image.open(io.BytesIO(data))), arr)
    assert png_bytes(Image.fromarray(arr)) == data


def test_llama_cpp_completion_body() -> None:
    png = png_bytes(_pixels())
    settings = SamplingSettings(seed=2**40 + 7, temperature=0.0, top_p=0.9, max_new_tokens=33)
    body = completion_request(PROMPT, settings, media_marker="<__media_x__>", image_png=png, stop=["</s>"])
    assert body["prompt"]["prompt_string"] == PROMPT.replace("<image>", "<__media_x__>")
    assert base64.b64decode(body["prompt"]["multimodal_data"][0]) == png
    assert body["n_predict"] == 33 and body["stream"] is True and body["return_tokens"] is True
    assert body["cache_prompt"] is False
    assert body["seed"] == (2**40 + 7) % (2**32 - 1)
    assert body["temperature"] == 0.0 and body["top_p"] == 0.9 and body["top_k"] == 50
    assert body["repeat_penalty"] == 1.0 and body["min_p"] == 0.0
    assert body["samplers"] == ["penalties", "temperature", "top_k", "top_p"]  # transformers' order
    assert body["stop"] == ["</s>"]


def test_text_turn_sends_the_prompt_string_as_is() -> None:
    body = completion_request("USER: hi ASSISTANT:", SamplingSettings(), media_marker="<m>")
    assert body["prompt"] == "USER: hi ASSISTANT:"


def test_image_turn_needs_exactly_one_placeholder() -> None:
    with pytest.raises(ValueError, match="exactly one"):
        completion_request("no placeholder", SamplingSettings(), media_marker="<m>", image_png=b"x")


def test_vllm_chat_body_keeps_the_placeholder_in_place() -> None:
    png = png_bytes(_pixels())
    settings = SamplingSettings(seed=5, temperature=0.7, top_p=0.8, top_k=20, repetition_penalty=1.1)
    body = openai_chat_request("llmga-Qwen2-7B", PROMPT, settings, image_png=png, stop=["<|im_end|>"])
    assert body["model"] == "llmga-Qwen2-7B"
    (message,) = body["messages"]
    image, text = message["content"]
    assert image["image_url"]["url"] == "data:image/png;base64," + base64.b64encode(png).decode()
    assert text == {"type": "text", "text": PROMPT}
    assert body["add_special_tokens"] is True and body["skip_special_tokens"] is False
    assert (body["seed"], body["temperature"], body["top_p"], body["top_k"]) == (5, 0.7, 0.8, 20)
    assert body["repetition_penalty"] == 1.1 and body["stream"] is True
    assert openai_chat_request("m", "hi", settings)["messages"][0]["content"] == "hi"
