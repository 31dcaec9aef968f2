"""The LLMGA MLLM on a serving engine (llama.cpp's server, vLLM): the pack renders LLMGA's templates and
prepares the image; the engine only runs the vision tower, projector and decoder (scale-out.md §5)."""

from __future__ import annotations

from .client import RemoteMLLM
from .endpoint import DEFAULT_API_KEY_ENV, ENGINES, Endpoint, api_key_from_env, parse_endpoint
from .errors import RemoteCancelled, RemoteMLLMError
from .requests_body import completion_request, openai_chat_request, png_bytes

__all__ = [
    "DEFAULT_API_KEY_ENV",
    "ENGINES",
    "Endpoint",
    "RemoteCancelled",
    "RemoteMLLM",
    "RemoteMLLMError",
    "api_key_from_env",
    "completion_request",
    "openai_chat_request",
    "parse_endpoint",
    "png_bytes",
]
