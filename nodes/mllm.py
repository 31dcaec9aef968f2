"""The LLMGA MLLM as graph blocks: load a released folder, write prompts over several turns, edit captions.

Everything LLMGA-specific (templates, task turns, image preprocessing, splicing, extraction) lives in
llmga_core.mllm; this module wires it to ComfyUI's model folders, memory manager, progress, Cancel and
the frontend's streaming text.
"""

from __future__ import annotations

import gc
import hashlib
import importlib.util
import json
import logging
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import comfy.model_management as mm
import comfy.model_patcher
import folder_paths
import numpy as np
import torch
from comfy_api.latest import io, ui

from ..llmga_core.errors import LLMGAInputError
from ..llmga_core.mllm import (
    ClipPreprocessConfig,
    Conversation,
    Extraction,
    ImageRef,
    MLLMImage,
    add_task_turn,
    edit_source_turn,
    edit_target_turn,
    extract_prompts,
    prepare_mllm_image,
    select_template_for_folder,
    stop_strings_for,
)
from ..llmga_core.mllm.checkpoint import inspect_folder, tensor_shapes
from ..llmga_core.mllm.generate import GenerationResult, SamplingSettings, run_turn
from ..llmga_core.mllm.model import LoadedMLLM, load_mllm
from ..llmga_core.mllm.quantize import (
    BNB_CHOICES,
    FP8,
    QUANTIZATIONS,
    estimate_bytes,
    is_out_of_memory,
    llm_dtype,
    weight_bytes,
)
from . import _downloads, runtime
from ._errors import LLMGANodeError, user_errors
from ._inputs import precision_input, seed_input, template_input
from .castable import make_castable
from .model_folders import MLLM, allowed_roots, find_model_dir, list_model_dirs

MLLMSocket = io.Custom("LLMGA_MLLM")
ConversationSocket = io.Custom("LLMGA_CONVERSATION")
TASKS = ("text-to-image", "similar image", "inpainting", "outpainting", "chat")
FROM_CHECKPOINT = "from checkpoint"
STREAM_EVERY_S = 0.15  # throttle for the text streamed to the node


@dataclass(frozen=True)
class MLLMHandle:
    """What travels on an LLMGA_MLLM socket for a model loaded in this process.

    A handle knows its template, how its model wants the image (``clip_preprocess``, ``image_payload``)
    and how to run a turn (``run``); nodes/remote_mllm.py has the same for a model on a serving engine.
    """

    patcher: comfy.model_patcher.ModelPatcher
    loaded: LoadedMLLM
    template: str
    template_reason: str

    @property
    def clip_preprocess(self) -> ClipPreprocessConfig:
        return self.loaded.clip_preprocess

    def image_payload(self, prepared: MLLMImage) -> torch.Tensor:
        return prepared.pixel_values

    def run(
        self,
        prompt: str,
        image: torch.Tensor | None,
        settings: SamplingSettings,
        stop_strings: Sequence[str],
        on_token: Callable[[int, str], None],
    ) -> GenerationResult:
        runtime.load_to_device(self.patcher, full=self.loaded.bnb)
        return run_turn(self.loaded, prompt, image, settings, stop_strings=stop_strings, on_token=on_token)


class AnyMLLMHandle(Protocol):
    """What the prompt nodes need from an LLMGA_MLLM socket, local or remote."""

    template: str
    template_reason: str

    @property
    def clip_preprocess(self) -> ClipPreprocessConfig: ...

    def image_payload(self, prepared: MLLMImage) -> Any: ...

    def run(
        self,
        prompt: str,
        image: Any,
        settings: SamplingSettings,
        stop_strings: Sequence[str],
        on_token: Callable[[int, str], None],
    ) -> Any: ...


def _model_folder(name: str) -> str:
    """The folder for ``name``, confined to the registered llmga_mllm folders (one plain folder name)."""
    found = find_model_dir(MLLM, name)
    if found is not None:
        return found
    raise LLMGANodeError(
        f"LLMGA MLLM Loader: no model folder {name!r}. Put the LLMGA folder (config.json, *.safetensors, "
        "tokenizer files) in ComfyUI/models/llmga/mllm/, e.g. with `python -m llmga_core.download "
        "llmga-Qwen2-0.5B-full-finetune` in the pack folder."
    )


def _bnb_runs_here() -> bool:
    """bitsandbytes can run on this install's compute device: not installed (the loader then names the
    pip command), or installed with a native library for this device (CUDA, ROCm, XPU or its CPU backend;
    none for MPS/DirectML)."""
    spec = importlib.util.find_spec("bitsandbytes")
    if spec is None or not spec.submodule_search_locations:
        return True
    libs = [p.name for loc in spec.submodule_search_locations for p in Path(loc).glob("libbitsandbytes_*")]
    device = mm.get_torch_device().type
    kind = {"cpu": "cpu", "cuda": "rocm" if torch.version.hip else "cuda", "xpu": "xpu"}.get(device)
    return kind is not None and any(name.startswith(f"libbitsandbytes_{kind}") for name in libs)


def quantization_options() -> list[str]:
    """The quantization choices that work on this install (see _bnb_runs_here)."""
    options = ["none"]
    if hasattr(torch, "float8_e4m3fn"):
        options.append(FP8)
    if _bnb_runs_here():
        options += list(BNB_CHOICES)
    return options


def _smaller_choices(folder: Path, dtype: torch.dtype, current: str) -> str:
    """'fp8 (weights) (~X GB), 8-bit (~Y GB), ...': the choices after ``current`` with their LLM size."""
    try:
        estimate = estimate_bytes(tensor_shapes(inspect_folder(folder, allowed_roots(MLLM))))
    except LLMGAInputError:
        return ", ".join(QUANTIZATIONS[QUANTIZATIONS.index(current) + 1 :])
    size = torch.finfo(dtype).bits // 8
    later = [q for q in QUANTIZATIONS[QUANTIZATIONS.index(current) + 1 :] if q in quantization_options()]
    return ", ".join(f"{q} (~{estimate.llm_bytes(q, size) / 2**30:.1f} GB for the LLM)" for q in later)


def _precision(precision: str, folder: str, device: torch.device) -> tuple[torch.dtype, str]:
    """The MLLM dtype for ``precision`` on ``device`` (see llmga_core.mllm.quantize.llm_dtype)."""
    fp32_bytes = 0
    if precision == "auto" and device.type == "cpu":
        with user_errors("LLMGA MLLM Loader"):
            shapes = tensor_shapes(inspect_folder(folder, allowed_roots(MLLM)))
            fp32_bytes = 4 * sum(int(torch.Size(shape).numel()) for shape in shapes.values())
    gpu = torch.float16 if device.type != "cpu" and mm.should_use_fp16(device) else torch.float32
    free = int(mm.get_free_memory(torch.device("cpu"))) if device.type == "cpu" else None
    dtype, why = llm_dtype(precision, device.type, fp32_bytes, free, gpu)
    if precision == "auto" and device.type == "cpu" and dtype != torch.float32:
        logging.info("LLMGA MLLM Loader: %s", why)
    return dtype, why


def _load(path: str, dtype: torch.dtype, clip: str | None, quantization: str) -> LoadedMLLM:
    """Load (quantised as asked); an out-of-memory names the smaller choices and leaves nothing behind."""
    try:
        with user_errors("LLMGA MLLM Loader"):
            return load_mllm(
                path,
                dtype=dtype,
                clip_vision=clip,
                roots=allowed_roots(MLLM),
                tower_roots=allowed_roots("clip_vision"),
                quantization=quantization,
                python=sys.executable,
            )
    except (torch.OutOfMemoryError, MemoryError, RuntimeError, OSError) as exc:
        if not is_out_of_memory(exc):  # torch's CPU allocator raises a plain RuntimeError
            raise
        kind = type(exc).__name__
    # raised outside the except block, so the failed load's frames (and the tensors they hold) go with it
    gc.collect()
    mm.soft_empty_cache()
    smaller = _smaller_choices(Path(path), dtype, quantization)
    hint = f"choose a smaller quantization: {smaller}" if smaller else "choose a smaller model"
    raise LLMGANodeError(
        f"LLMGA MLLM Loader: out of memory while loading {Path(path).name} with quantization {quantization!r} "
        f"({str(dtype).removeprefix('torch.')}): {hint}. Nothing was kept loaded. ({kind})"
    )


class LLMGAMLLMLoader(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="LLMGAMLLMLoader",
            display_name="LLMGA MLLM Loader",
            category="LLMGA/loaders",
            description=(
                "Loads a released LLMGA multimodal LLM folder (vicuna, llama-2/3, mistral, Qwen2, Phi-3, gemma) "
                "offline from models/llmga/mllm, with its own CLIP vision tower, into ComfyUI's memory manager."
            ),
            inputs=[
                io.Combo.Input(
                    "model",
                    options=_downloads.with_downloads(list_model_dirs(MLLM), "llmga/mllm"),
                    tooltip="An LLMGA folder in models/llmga/mllm (keep the released folder name: LLMGA picks "
                    "the chat template from it).",
                ),
                io.Combo.Input(
                    "vision_tower",
                    options=[FROM_CHECKPOINT, *folder_paths.get_filename_list("clip_vision")],
                    default=FROM_CHECKPOINT,
                    tooltip="The released folders contain the CLIP ViT-L/14-336 tower; pick a models/clip_vision "
                    "file only for a folder without it.",
                ),
                template_input("chosen from the config, tokenizer and folder name as LLMGA does."),
                precision_input(
                    "Compute precision of the assistant. auto: fp16 on GPUs that handle it; on CPU fp32 where the "
                    "model fits comfortably in RAM, else bf16 (logged). bf16 halves the memory on CPU too; fp16 on "
                    "CPU works but is slow."
                ),
                io.Combo.Input(
                    "quantization",
                    options=quantization_options(),
                    default="none",
                    tooltip="Smaller LLM weights (the vision tower and projector stay at full precision). "
                    "fp8 (weights): 1 byte per weight, no extra package, any GPU or CPU. 8-bit (LLM.int8) / 4-bit "
                    "(nf4): through bitsandbytes + accelerate (pip install; the error names the command). A 7B "
                    "model needs about 13 GB at fp16, 7 at fp8/8-bit, 4 at 4-bit. A folder saved already quantised by "
                    "bitsandbytes loads with its own quantization.",
                ),
            ],
            outputs=[MLLMSocket.Output(display_name="mllm", tooltip="The loaded LLMGA assistant.")],
        )

    @classmethod
    def execute(cls, model: str, vision_tower: str, template: str, precision: str, quantization: str) -> io.NodeOutput:
        if quantization not in quantization_options():
            raise LLMGANodeError(
                f"LLMGA MLLM Loader: quantization {quantization!r} does not work on this install; choose one of "
                f"{', '.join(quantization_options())}."
            )
        path = _model_folder(_downloads.resolve(model, "LLMGA MLLM Loader"))
        clip = (
            None
            if vision_tower == FROM_CHECKPOINT
            else folder_paths.get_full_path_or_raise("clip_vision", vision_tower)
        )
        dtype, why = _precision(precision, path, mm.get_torch_device())
        with user_errors("LLMGA MLLM Loader"):
            choice = select_template_for_folder(path, None if template == "auto" else template)
        loaded = _load(path, dtype, clip, quantization)
        make_castable(loaded.model)  # so ComfyUI can keep part of it on the offload device
        patcher = runtime.managed(loaded.model, size=weight_bytes(loaded.model))
        handle = MLLMHandle(patcher, loaded, choice.name, choice.reason)
        size = patcher.model_size() / 2**30
        text = (
            f"{loaded.name}: template {choice.name} ({choice.reason}); {why}; quantization {loaded.quantization}; "
            f"{size:.2f} GB"
        )
        return io.NodeOutput(handle, ui=ui.PreviewText(text))


def _image_ref(
    task: str, handle: AnyMLLMHandle, image: torch.Tensor, mask: torch.Tensor | None
) -> tuple[ImageRef, torch.Tensor]:
    """The conversation's image (its key hashes the pixels) and what the MLLM sees, as an IMAGE preview."""
    if image.shape[0] > 1:  # a turn holds one image, as in LLMGA; lists (not batches) map the node per image
        logging.warning(
            "LLMGA: the %s turn got a batch of %d images and uses the first; for one prompt per image put Rebatch "
            "Images (batch_size 1) before the node.",
            task,
            image.shape[0],
        )
    first = image[:1]
    first_mask = None if mask is None else (mask[:1] if mask.ndim == 3 else mask[None])
    prepared = prepare_mllm_image(task, first, first_mask, handle.clip_preprocess)
    digest = hashlib.sha256(first.float().cpu().numpy().tobytes())
    if first_mask is not None:
        digest.update(first_mask.float().cpu().numpy().tobytes())
    payload = handle.image_payload(prepared)
    ref = ImageRef(digest.hexdigest()[:16], int(first.shape[2]), int(first.shape[1]), pixels=payload)
    seen = torch.from_numpy(np.asarray(prepared.square.convert("RGB"), dtype=np.float32) / 255.0)[None]
    return ref, seen


def _generate(
    handle: AnyMLLMHandle, conversation: Conversation, settings: SamplingSettings, node_id: str | None
) -> tuple[Extraction, Conversation]:
    """Run the awaiting turn: progress per token, Cancel within one token, text streamed to the node."""
    bar = runtime.progress_callback(settings.max_new_tokens)
    count = 0
    last = 0.0

    def on_token(_token: int, text: str) -> None:
        nonlocal count, last
        runtime.check_interrupt()
        count += 1
        bar(count, settings.max_new_tokens)
        now = time.monotonic()
        if now - last >= STREAM_EVERY_S:
            last = now
            runtime.stream_text(node_id, text)

    image = conversation.image
    pixels = None
    if conversation.has_image_token:
        if image is None or image.pixels is None:
            raise LLMGANodeError("This conversation's image is no longer in memory: re-run its first turn.")
        pixels = image.pixels
    with user_errors("LLMGA"):
        result = handle.run(conversation.prompt(), pixels, settings, stop_strings_for(conversation.template), on_token)
    extraction = extract_prompts(result.text, conversation.template)
    runtime.stream_text(node_id, extraction.reply)
    return extraction, conversation.answer(extraction.history_text)


def _sampling_inputs() -> list[io.Input]:
    return [
        seed_input("Seed for sampling; the same seed and inputs give the same text."),
        io.Float.Input(
            "temperature",
            default=0.2,
            min=0.0,
            max=2.0,
            step=0.05,
            tooltip="0 = greedy (deterministic without a seed); LLMGA's CLIs use 0.2.",
        ),
        io.Float.Input("top_p", default=1.0, min=0.01, max=1.0, step=0.01, tooltip="Nucleus sampling mass."),
        io.Int.Input("max_new_tokens", default=512, min=1, max=4096, tooltip="Longest reply; LLMGA's CLIs allow 512."),
    ]


def _settings(seed: int, temperature: float, top_p: float, max_new_tokens: int) -> SamplingSettings:
    with user_errors("LLMGA"):
        return SamplingSettings(seed=seed, temperature=temperature, top_p=top_p, max_new_tokens=max_new_tokens)


def _turns_json(conversation: Conversation) -> str:
    return json.dumps([{"user": t.user, "reply": t.reply, "task": t.task} for t in conversation.turns])


class LLMGAGeneratePrompt(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="LLMGAGeneratePrompt",
            display_name="LLMGA Generate Prompt",
            category="LLMGA/prompting",
            description=(
                "One turn of LLMGA: turns an instruction (and for image tasks an image, plus a mask for "
                "inpainting/outpainting) into a detailed generation prompt. Chain the conversation output into "
                "another of these nodes to refine over several turns."
            ),
            inputs=[
                MLLMSocket.Input("mllm", tooltip="From LLMGA MLLM Loader or LLMGA Remote MLLM."),
                io.Combo.Input(
                    "task",
                    options=list(TASKS),
                    default="text-to-image",
                    tooltip="text-to-image: refine a short idea. similar image: describe the image to make a "
                    "similar one. inpainting/outpainting: imagine what fills the masked area. chat: free talk.",
                ),
                io.String.Input(
                    "instruction",
                    multiline=True,
                    default="",
                    tooltip="What you want, e.g. 'A level 1 mouse monster'. Image tasks may leave it empty.",
                ),
                *_sampling_inputs(),
                io.Image.Input("image", optional=True, tooltip="The image for similar image, inpainting, outpainting."),
                io.Mask.Input("mask", optional=True, tooltip="Inpainting/outpainting: 1 (white) = the area to fill."),
                ConversationSocket.Input(
                    "conversation", optional=True, tooltip="Continue an earlier turn's conversation (multi-turn)."
                ),
            ],
            outputs=[
                io.String.Output(display_name="prompt", tooltip="The generation prompt (the reply if it wrote none)."),
                io.String.Output(display_name="reply", tooltip="The assistant's whole reply, tags removed."),
                ConversationSocket.Output(display_name="conversation", tooltip="The chat so far, to continue it."),
                io.String.Output(
                    display_name="prompts", is_output_list=True, tooltip="Every prompt of the reply, as a list."
                ),
            ],
            hidden=[io.Hidden.unique_id],
        )

    @classmethod
    def execute(
        cls,
        mllm: AnyMLLMHandle,
        task: str,
        instruction: str,
        seed: int,
        temperature: float,
        top_p: float,
        max_new_tokens: int,
        image: torch.Tensor | None = None,
        mask: torch.Tensor | None = None,
        conversation: Conversation | None = None,
    ) -> io.NodeOutput:
        settings = _settings(seed, temperature, top_p, max_new_tokens)
        seen = None
        with user_errors("LLMGA Generate Prompt"):
            base = conversation or Conversation(mllm.template)
            ref = None
            if image is not None and task != "text-to-image" and base.image is None:
                ref, seen = _image_ref(task, mllm, image, mask if task in ("inpainting", "outpainting") else None)
            elif task in ("inpainting", "outpainting") and image is not None and mask is None:
                raise LLMGAInputError(f"The {task} task needs a mask: connect one (white = area to fill).")
            asked = add_task_turn(base, task, instruction, ref)
        extraction, answered = _generate(mllm, asked, settings, cls.hidden.unique_id)
        prompt = extraction.prompt_or_reply
        prompts = list(extraction.prompts) or [prompt]
        shown = {"text": [prompt], "reply": [extraction.reply], "conversation": [_turns_json(answered)]}
        if seen is not None:  # the thumbnail of what the assistant was shown
            shown |= ui.PreviewImage(seen, cls=cls).as_dict()
        return io.NodeOutput(prompt, extraction.reply, answered, prompts, ui=shown)


class LLMGAEditPrompts(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="LLMGAEditPrompts",
            display_name="LLMGA Edit Prompts",
            category="LLMGA/prompting",
            description=(
                "LLMGA's two-turn editing chat: the assistant first captions the image (source prompt), then "
                "rewrites that caption to follow your instruction (target prompt). Feed both to LLMGA "
                "Instruction Edit."
            ),
            inputs=[
                MLLMSocket.Input("mllm", tooltip="From LLMGA MLLM Loader or LLMGA Remote MLLM."),
                io.Image.Input("image", tooltip="The image to edit (centre-cropped for the assistant, as LLMGA does)."),
                io.String.Input(
                    "instruction", multiline=True, default="", tooltip="The edit, e.g. 'make it snowy at night'."
                ),
                *_sampling_inputs(),
            ],
            outputs=[
                io.String.Output(display_name="source_prompt", tooltip="Caption of the image as it is."),
                io.String.Output(display_name="target_prompt", tooltip="Caption of the image as it should become."),
                ConversationSocket.Output(display_name="conversation", tooltip="The editing chat, to continue it."),
            ],
            hidden=[io.Hidden.unique_id],
        )

    @classmethod
    def execute(
        cls,
        mllm: AnyMLLMHandle,
        image: torch.Tensor,
        instruction: str,
        seed: int,
        temperature: float,
        top_p: float,
        max_new_tokens: int,
    ) -> io.NodeOutput:
        settings = _settings(seed, temperature, top_p, max_new_tokens)
        with user_errors("LLMGA Edit Prompts"):
            if not instruction.strip():
                raise LLMGAInputError("The edit instruction is empty: say what to change in the image.")
            ref, seen = _image_ref("edit", mllm, image, None)
            source_turn = edit_source_turn(mllm.template, ref)
        source, answered = _generate(mllm, source_turn, settings, cls.hidden.unique_id)
        with user_errors("LLMGA Edit Prompts"):
            target_turn = edit_target_turn(answered, instruction)
        target, final = _generate(mllm, target_turn, settings, cls.hidden.unique_id)
        shown = {
            "text": [f"source: {source.prompt_or_reply}\ntarget: {target.prompt_or_reply}"],
            "conversation": [_turns_json(final)],
        } | ui.PreviewImage(seen, cls=cls).as_dict()
        return io.NodeOutput(source.prompt_or_reply, target.prompt_or_reply, final, ui=shown)


NODES: list[type[io.ComfyNode]] = [LLMGAMLLMLoader, LLMGAGeneratePrompt, LLMGAEditPrompts]
