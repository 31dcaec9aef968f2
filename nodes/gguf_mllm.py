"""LLMGA MLLM Loader (GGUF): the LLMGA assistant on llama.cpp inside the ComfyUI process.

The text model runs in llama.cpp (llmga_core.llamacpp, a ctypes binding of the xllamacpp wheel); the
image rows come from the mmproj's CLIP tower + projector rebuilt in torch, so image turns are LLaVA's own.
The handle is the same LLMGA_MLLM the transformers loader gives (template, clip_preprocess,
image_payload, run), so LLMGA Generate Prompt, LLMGA Edit Prompts and chained conversations work
unchanged. ComfyUI's memory manager owns it: unloading models (``/free``, or another model needing the
memory) frees the llama.cpp context and weights, and the next turn loads them again.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import comfy.model_management as mm
import comfy.model_patcher
import folder_paths
import torch
from comfy.patcher_extension import CallbacksMP
from comfy_api.latest import io, ui

from ..llmga_core.errors import LLMGAInputError
from ..llmga_core.llamacpp import (
    LlamaCppModel,
    LlamaCppSettings,
    MMProjVision,
    inspect_gguf,
    load_mmproj,
    run_gguf_turn,
)
from ..llmga_core.llamacpp.binding import library
from ..llmga_core.llamacpp.model import default_threads
from ..llmga_core.mllm import TEMPLATE_NAMES, ClipPreprocessConfig, MLLMImage, select_template
from ..llmga_core.mllm.generate import GenerationResult, SamplingSettings
from ..llmga_core.mllm.templates import TemplateChoice
from . import runtime
from ._errors import user_errors
from ._inputs import template_input
from .mllm import MLLMSocket
from .model_folders import GGUF

TITLE = "LLMGA MLLM Loader (GGUF)"
_log = logging.getLogger("ComfyUI-LLMGA")
AUTO_VISION = "auto (mmproj next to the model)"
NO_VISION = "none (text only)"


def _is_mmproj(name: str) -> bool:
    return os.path.basename(name).lower().startswith("mmproj")


def _gguf_files() -> list[str]:
    return sorted(f for f in folder_paths.get_filename_list(GGUF) if not _is_mmproj(f))


def _mmproj_files() -> list[str]:
    return sorted(f for f in folder_paths.get_filename_list(GGUF) if _is_mmproj(f))


def _gpu_offload() -> bool:
    """Whether the installed wheel has a GPU backend (the PyPI CPU wheel has none: no GPU input then)."""
    try:
        return bool(library().llama_supports_gpu_offload())
    except Exception:
        return False


def _auto_mmproj(model_path: str) -> str | None:
    """The mmproj beside the model: ``mmproj-<stem>.gguf``, else ``mmproj-<stem without its dtype>-*``
    (a Q8_0 model next to the f16 mmproj), else the only mmproj in that folder."""
    folder = os.path.dirname(model_path)
    stem = os.path.splitext(os.path.basename(model_path))[0]
    candidates = sorted(f for f in os.listdir(folder) if _is_mmproj(f) and f.lower().endswith(".gguf"))
    if f"mmproj-{stem}.gguf" in candidates:
        return os.path.join(folder, f"mmproj-{stem}.gguf")
    base = f"mmproj-{stem.rsplit('-', 1)[0]}-"
    same = [f for f in candidates if f.startswith(base)]
    if same:
        return os.path.join(folder, same[0])
    return os.path.join(folder, candidates[0]) if len(candidates) == 1 else None


class GGUFRuntime:
    """The llama.cpp model of one loader, loaded on first use and freed when ComfyUI unloads it."""

    def __init__(self, path: str, settings: LlamaCppSettings) -> None:
        self.path = path
        self.settings = settings
        self.model: LlamaCppModel | None = None
        self.lock = threading.Lock()

    def ensure(self) -> LlamaCppModel:
        with self.lock:
            if self.model is None or self.model.closed:
                self.model = LlamaCppModel(self.path, self.settings)
            return self.model

    def release(self, *_args: Any) -> None:
        with self.lock:
            if self.model is not None:
                self.model.close()
                self.model = None
                _log.info("LLMGA GGUF: freed the llama.cpp model %s", os.path.basename(self.path))


class _Holder(torch.nn.Module):
    """What ComfyUI's memory manager moves: the torch vision tower and projector (if any)."""

    def __init__(self, vision: MMProjVision | None) -> None:
        super().__init__()
        if vision is not None:
            self.tower = vision.tower
            self.projector = vision.projector


def _managed(runtime_: GGUFRuntime, vision: MMProjVision | None, llm_bytes: int) -> comfy.model_patcher.ModelPatcher:
    holder = _Holder(vision)
    size = llm_bytes + (vision.size_bytes() if vision is not None else 0)
    patcher = comfy.model_patcher.ModelPatcher(
        holder, load_device=mm.get_torch_device(), offload_device=mm.unet_offload_device(), size=size
    )
    patcher.add_callback(CallbacksMP.ON_DETACH, runtime_.release)  # /free or memory pressure
    return patcher


@dataclass(frozen=True)
class GGUFMLLMHandle:
    """An LLMGA_MLLM on llama.cpp (same methods as nodes/mllm.py's MLLMHandle)."""

    patcher: comfy.model_patcher.ModelPatcher = field(compare=False)
    llama: GGUFRuntime = field(compare=False)
    vision: MMProjVision | None = field(compare=False)
    template: str
    template_reason: str
    name: str

    @property
    def clip_preprocess(self) -> ClipPreprocessConfig:
        return self.vision.clip_preprocess if self.vision is not None else ClipPreprocessConfig()

    def image_payload(self, prepared: MLLMImage) -> torch.Tensor:
        if self.vision is None:
            raise LLMGAInputError(
                f"{self.name} was loaded without a vision source, so it cannot look at an image: pick its "
                "mmproj-*.gguf as the vision input of LLMGA MLLM Loader (GGUF) (export one with `python -m "
                "llmga_core.export gguf`), or use the text-to-image / chat task without an image."
            )
        return prepared.pixel_values

    def run(
        self,
        prompt: str,
        image: Any,
        settings: SamplingSettings,
        stop_strings: Sequence[str],
        on_token: Callable[[int, str], None],
    ) -> GenerationResult:
        if image is not None and not isinstance(image, torch.Tensor):
            raise LLMGAInputError(
                "This conversation was started with a remote LLMGA MLLM: start it again with the GGUF loader."
            )
        runtime.load_to_device(self.patcher)
        rows = None
        if image is not None:
            if self.vision is None:
                raise LLMGAInputError(f"{self.name} has no vision source for this conversation's image.")
            rows = self.vision.encode(image)
        model = self.llama.ensure()
        try:
            return run_gguf_turn(
                model,
                prompt,
                rows,
                settings,
                stop_strings=stop_strings,
                on_token=on_token,
                should_stop=mm.processing_interrupted,
            )
        except InterruptedError:
            runtime.check_interrupt()  # raises ComfyUI's interrupt
            raise


_LAST: dict[str, GGUFRuntime] = {}  # per loader node: re-running it with another file frees the old one


class LLMGAGGUFLoader(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        inputs: list[io.Input] = [
            io.Combo.Input(
                "model",
                options=_gguf_files(),
                tooltip="An LLMGA GGUF text model in models/llmga/gguf or models/LLM (from `python -m "
                "llmga_core.export gguf`, or a community GGUF of an LLMGA model). f16: exact; Q8_0: near-exact, "
                "half the memory; Q6_K / Q5_K_M / Q4_K_M: smaller steps down; Q4_0: smallest.",
            ),
            io.Combo.Input(
                "vision",
                options=[AUTO_VISION, NO_VISION, *_mmproj_files()],
                default=AUTO_VISION,
                tooltip="The mmproj GGUF with the CLIP tower and projector, for image tasks. Its weights run in "
                "torch so image features are LLaVA's own. auto: the mmproj-*.gguf beside the model.",
            ),
            template_input(
                "the one the exporter stored in the file, else chosen from the file name as LLMGA does for folders."
            ),
            io.Int.Input(
                "threads",
                default=default_threads(),
                min=1,
                max=256,
                tooltip="CPU threads for llama.cpp (default: this machine's physical cores).",
            ),
            io.Int.Input(
                "context_length",
                default=4096,
                min=256,
                max=131072,
                step=256,
                tooltip="Tokens the conversation may hold; an image takes 576. LLMGA was trained with 2048.",
            ),
        ]
        if _gpu_offload():
            inputs.append(
                io.Int.Input(
                    "gpu_layers", default=0, min=0, max=999, tooltip="Layers llama.cpp puts on the GPU (999: all)."
                )
            )
        return io.Schema(
            node_id="LLMGAGGUFLoader",
            display_name=TITLE,
            category="LLMGA/loaders",
            description=(
                "Runs an LLMGA MLLM exported to GGUF with llama.cpp inside ComfyUI (quantised weights, fast CPU "
                "kernels; no server). Image features come from the model's own CLIP tower. Plugs into LLMGA "
                "Generate Prompt and LLMGA Edit Prompts like the other loaders."
            ),
            inputs=inputs,
            outputs=[MLLMSocket.Output(display_name="mllm", tooltip="The loaded LLMGA assistant.")],
            hidden=[io.Hidden.unique_id],
        )

    @classmethod
    def execute(
        cls, model: str, vision: str, template: str, threads: int, context_length: int, gpu_layers: int = 0
    ) -> io.NodeOutput:
        with user_errors(TITLE):
            library()  # a missing or mismatched xllamacpp names the pip command here
            path = folder_paths.get_full_path(GGUF, model)
            if path is None or _is_mmproj(model):
                raise LLMGAInputError(
                    f"No GGUF model {model!r}: put the .gguf file in ComfyUI/models/llmga/gguf (or models/LLM), e.g. "
                    "from `python -m llmga_core.export gguf <LLMGA folder> ComfyUI/models/llmga/gguf`."
                )
            info = inspect_gguf(path)
            if vision == NO_VISION:
                mmproj = None
            elif vision == AUTO_VISION:
                mmproj = _auto_mmproj(path)
            else:
                mmproj = folder_paths.get_full_path(GGUF, vision)
                if mmproj is None:
                    raise LLMGAInputError(f"No mmproj file {vision!r} in models/llmga/gguf.")
            tower = load_mmproj(mmproj) if mmproj is not None else None
            if tower is not None:
                rows = (tower.clip_preprocess.crop_height // 14) ** 2
                if context_length <= rows + 16:
                    raise LLMGAInputError(
                        f"context_length {context_length} cannot hold an image's {rows} rows plus the chat: raise it "
                        "(2048 or more), or choose vision 'none' for text-only use."
                    )
            if template != "auto":
                choice = select_template(override=template)
            elif info.template in TEMPLATE_NAMES:
                choice = TemplateChoice(info.template, "gguf", "stored in the GGUF by the LLMGA exporter")
            else:
                choice = select_template(model_name=info.name if info.name != "" else os.path.basename(path))
            settings = LlamaCppSettings(n_ctx=context_length, n_threads=threads, n_gpu_layers=gpu_layers)
            node_id = str(cls.hidden.unique_id)
            previous = _LAST.pop(node_id, None)
            if previous is not None:
                previous.release()  # the same node re-run (another file or settings): free the old weights
            llama = GGUFRuntime(path, settings)
            loaded = llama.ensure()
            _LAST[node_id] = llama
        handle = GGUFMLLMHandle(
            _managed(llama, tower, loaded.size_bytes), llama, tower, choice.name, choice.reason, info.name
        )
        seen = "text only" if tower is None else f"vision {os.path.basename(str(mmproj))}"
        return io.NodeOutput(
            handle, ui=ui.PreviewText(f"{info.name}: llama.cpp, {seen}, template {choice.name} ({choice.reason})")
        )


NODES: list[type[io.ComfyNode]] = [LLMGAGGUFLoader]
