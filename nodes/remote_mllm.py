"""LLMGA Remote MLLM: the LLMGA assistant served by llama.cpp's server or vLLM, on the same socket as the
local loader, so LLMGA Generate Prompt, LLMGA Edit Prompts and chained conversations work unchanged.

The pack still renders LLMGA's byte-exact templates, prepares the image and extracts ``<gen_image>``; the
engine gets the rendered prompt and a PNG (llmga_core.remote).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import comfy.model_management as mm
from comfy_api.latest import io, ui

from ..llmga_core.errors import LLMGAInputError
from ..llmga_core.mllm import ClipPreprocessConfig, MLLMImage, clip_resize_crop, select_template
from ..llmga_core.mllm.generate import GenerationResult, SamplingSettings
from ..llmga_core.remote import (
    DEFAULT_API_KEY_ENV,
    RemoteCancelled,
    RemoteMLLM,
    api_key_from_env,
    parse_endpoint,
    png_bytes,
)
from . import _compat as compat
from . import runtime
from ._errors import LLMGANodeError, user_errors
from ._inputs import template_input
from .mllm import MLLMSocket

ENGINE_CHOICES = {"llama.cpp server": "llama.cpp", "vLLM (OpenAI API)": "vllm"}


@dataclass(frozen=True)
class RemoteMLLMHandle:
    """An LLMGA_MLLM served elsewhere (same methods as nodes/mllm.py's MLLMHandle)."""

    client: RemoteMLLM = field(compare=False)
    template: str
    template_reason: str
    clip_preprocess: ClipPreprocessConfig

    def image_payload(self, prepared: MLLMImage) -> bytes:
        # The uint8 pixels the local CLIP processor would normalise, losslessly: the engine's own
        # resize then has nothing left to do, so it sees the image LLMGA's processor saw.
        return png_bytes(clip_resize_crop(prepared.square, self.clip_preprocess))

    def run(
        self,
        prompt: str,
        image: object,
        settings: SamplingSettings,
        stop_strings: Sequence[str],
        on_token: Callable[[int, str], None],
    ) -> GenerationResult:
        if image is not None and not isinstance(image, bytes):
            raise LLMGAInputError(
                "This conversation was started with a local LLMGA MLLM: start it again with the remote one."
            )
        try:
            return self.client.generate(
                prompt,
                settings,
                image_png=image,
                stop_strings=stop_strings,
                on_token=on_token,
                should_stop=mm.processing_interrupted,
            )
        except RemoteCancelled:
            runtime.check_interrupt()  # raises ComfyUI's interrupt
            raise LLMGANodeError("LLMGA Remote MLLM: the request was cancelled.") from None


class LLMGARemoteMLLM(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="LLMGARemoteMLLM",
            display_name="LLMGA Remote MLLM",
            category="LLMGA/loaders",
            description=(
                "Uses an LLMGA MLLM served by llama.cpp's server or vLLM (export it with `python -m "
                "llmga_core.export`) instead of loading it here: one prompt-writing service for many ComfyUI "
                "workers, or a bigger backbone than this GPU holds. Plugs into LLMGA Generate Prompt and LLMGA "
                "Edit Prompts like the local loader."
            ),
            inputs=[
                io.String.Input(
                    "endpoint",
                    default="http://127.0.0.1:8080",
                    tooltip="The server's base URL (no /v1). Plain http only for this machine; use https for "
                    "another one.",
                ),
                io.Combo.Input(
                    "engine",
                    options=list(ENGINE_CHOICES),
                    default="llama.cpp server",
                    tooltip="llama.cpp server: /completion with the exported GGUF pair. vLLM: OpenAI chat with "
                    "the exported LLaVA folder and its passthrough chat template.",
                ),
                io.String.Input(
                    "model",
                    default="llmga-Qwen2-0.5B-full-finetune",
                    tooltip="The served model name (llama-server --alias / vllm serve --served-model-name). Keep "
                    "the released folder name so the template can be chosen from it.",
                ),
                template_input("from the model name, as LLMGA does for folders."),
                io.Float.Input(
                    "timeout_s",
                    default=120.0,
                    min=1.0,
                    max=3600.0,
                    step=1.0,
                    tooltip="Longest wait for the server: to connect, for the first token, between tokens.",
                ),
                io.String.Input(
                    "api_key_env",
                    default=DEFAULT_API_KEY_ENV,
                    tooltip="Name of the environment variable (in ComfyUI's environment) holding the API key, "
                    "sent as a Bearer token. The key itself never goes into the workflow. Empty: no key.",
                ),
                io.Int.Input(
                    "image_size",
                    default=336,
                    min=14,
                    max=1024,
                    tooltip="The model's CLIP input size: 336 for the released LLMGA models (224 for the old "
                    "llama-2 release).",
                    **compat.ADVANCED,
                ),
            ],
            outputs=[MLLMSocket.Output(display_name="mllm", tooltip="The served LLMGA assistant.")],
        )

    @classmethod
    def execute(
        cls,
        endpoint: str,
        engine: str,
        model: str,
        template: str,
        timeout_s: float,
        api_key_env: str,
        image_size: int = 336,
    ) -> io.NodeOutput:
        with user_errors("LLMGA Remote MLLM"):
            if engine not in ENGINE_CHOICES:
                raise LLMGAInputError(f"Unknown engine {engine!r}: choose one of {', '.join(ENGINE_CHOICES)}.")
            checked = parse_endpoint(endpoint, ENGINE_CHOICES[engine], model, timeout_s, api_key_from_env(api_key_env))
            choice = select_template(model_name=checked.model, override=template)  # auto: LLMGA's name rule
            client = RemoteMLLM(checked)
            try:  # a wrong URL, engine, key or model shows here, not in the first turn
                client.check_model(mm.processing_interrupted)
            except RemoteCancelled:
                runtime.check_interrupt()
                raise
        preprocess = ClipPreprocessConfig(shortest_edge=image_size, crop_height=image_size, crop_width=image_size)
        handle = RemoteMLLMHandle(client, choice.name, choice.reason, preprocess)
        return io.NodeOutput(
            handle, ui=ui.PreviewText(f"{checked.model} at {checked.base_url}: template {choice.name}")
        )


NODES: list[type[io.ComfyNode]] = [LLMGARemoteMLLM]
