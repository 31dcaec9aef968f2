"""LLMGALongPromptEncode: LLMGA's long-prompt (LPW) layouts on ComfyUI's own CLIP objects.

The chunk layouts and weighting live in llmga_core.lpw; this module only feeds it ComfyUI's tokenizer and
one ``encode_from_tokens`` call per 77-token chunk. With every weight 1.0 ComfyUI encodes exactly the ids
it is given, and CLIPSetLastLayer, LoRA hooks and model offloading keep working.
"""

from __future__ import annotations

import logging
from typing import Any

import torch
from comfy_api.latest import io

from ..llmga_core.editing.stage_prompts import STAGE_KEY, encode_stage_prompt
from ..llmga_core.lpw import SDXL_MAX_CHUNKS, Batched, encode_sd15, encode_sd15_training, encode_sdxl
from ..llmga_core.lpw.tokens import hf_tokenize
from ._errors import LLMGANodeError, user_errors

LAYOUTS = ("auto", "sd15", "sd15-training", "sdxl")
_log = logging.getLogger("ComfyUI-LLMGA")


def _is_sdxl(clip: Any) -> bool:
    return hasattr(clip.cond_stage_model, "clip_g") and hasattr(clip.cond_stage_model, "clip_l")


def _is_sd1(clip: Any) -> bool:
    return hasattr(clip.cond_stage_model, "clip_l") and not hasattr(clip.cond_stage_model, "clip_g")


def _pairs(row: tuple[int, ...]) -> list[tuple[int, float]]:
    return [(t, 1.0) for t in row]


def _batched_encoder(clip: Any, keys: tuple[str, ...]) -> Batched:
    """One ``encode_from_tokens`` call per prompt: every distinct chunk once, the wanted pooled chunk first.

    ComfyUI reports the pooled vector of the first section it is given, so the chunk whose pooled vector
    LLMGA uses goes first; repeated chunks (the padded empty negative repeats one chunk) are encoded once.
    """

    def fn(*args: Any) -> tuple[torch.Tensor, torch.Tensor | None]:
        *batches, pooled_row = args
        rows = list(zip(*(tuple(tuple(r) for r in b.tolist()) for b in batches), strict=True))
        order = [rows[pooled_row], *(r for r in dict.fromkeys(rows) if r != rows[pooled_row])]
        tokens = {key: [_pairs(row[i]) for row in order] for i, key in enumerate(keys)}
        cond, pooled = clip.encode_from_tokens(tokens, return_pooled=True)
        chunk = cond.shape[1] // len(order)
        index = {row: i for i, row in enumerate(order)}
        hidden = torch.cat([cond[:, index[row] * chunk : (index[row] + 1) * chunk] for row in rows])
        return hidden, pooled

    return Batched(fn)


def _sdxl_sizes(width: int, height: int, crop_w: int, crop_h: int, target_width: int, target_height: int) -> dict:
    return {
        "width": width,
        "height": height,
        "crop_w": crop_w,
        "crop_h": crop_h,
        "target_width": target_width,
        "target_height": target_height,
    }


def _size_input(name: str, default: int, tooltip: str) -> io.Int.Input:
    return io.Int.Input(name, default=default, min=0, max=16384, step=8, tooltip=f"SDXL only: {tooltip}")


class LLMGALongPromptEncode(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="LLMGALongPromptEncode",
            display_name="LLMGA Long Prompt Encode",
            category="LLMGA/conditioning",
            description=(
                "Encodes long prompts (LLMGA writes 100-300 tokens) the way LLMGA's SD models were fine-tuned "
                "and sampled: its long-prompt-weighting chunk layout for SD1.5 and SDXL. Outputs ordinary "
                "CONDITIONING of equal length for positive and negative, usable by KSampler and ControlNet."
            ),
            inputs=[
                io.Clip.Input("clip", tooltip="An SD1.5 or SDXL CLIP (from any checkpoint loader)."),
                io.String.Input(
                    "positive",
                    multiline=True,
                    dynamic_prompts=False,
                    tooltip="The prompt, e.g. from LLMGA Generate Prompt. SD1.5 reads (word:1.2), (word) and "
                    "[word] weights; SDXL, like LLMGA, keeps brackets as text.",
                ),
                io.String.Input(
                    "negative",
                    multiline=True,
                    default="",
                    tooltip="Negative prompt. LLMGA passes none: SD1.5 then encodes the empty prompt and SDXL "
                    "uses all-zero conditioning.",
                ),
                io.Combo.Input(
                    "layout",
                    options=list(LAYOUTS),
                    default="auto",
                    tooltip="auto: sd15 for an SD1 CLIP, sdxl for an SDXL CLIP. sd15: LLMGA's inference layout "
                    "(77 tokens per chunk, weights renormalised to the mean). sd15-training: the 75m+2 layout "
                    "the SD1.5 models were fine-tuned with. sdxl: 75m+2, penultimate layers, last chunk's pooled.",
                ),
                io.Int.Input(
                    "max_chunks",
                    default=SDXL_MAX_CHUNKS,
                    min=1,
                    max=8,
                    tooltip="Cap on 75-token chunks; longer prompts are cut with a warning. LLMGA uses 4 (300 "
                    "tokens) for SDXL and SD1.5 inpainting/editing, 3 (225) for SD1.5 text-to-image.",
                ),
                _size_input("width", 1024, "original image width for size conditioning."),
                _size_input("height", 1024, "original image height for size conditioning."),
                _size_input("crop_w", 0, "crop left offset for size conditioning."),
                _size_input("crop_h", 0, "crop top offset for size conditioning."),
                _size_input("target_width", 1024, "target width for size conditioning."),
                _size_input("target_height", 1024, "target height for size conditioning."),
            ],
            outputs=[
                io.Conditioning.Output(display_name="positive", tooltip="Conditioning for the prompt."),
                io.Conditioning.Output(display_name="negative", tooltip="Conditioning of equal length."),
            ],
        )

    @classmethod
    def execute(
        cls,
        clip: Any,
        positive: str,
        negative: str,
        layout: str,
        max_chunks: int,
        width: int,
        height: int,
        crop_w: int,
        crop_h: int,
        target_width: int,
        target_height: int,
    ) -> io.NodeOutput:
        title = "LLMGA Long Prompt Encode"
        if clip is None:
            raise LLMGANodeError(f"{title}: the CLIP input is empty; the checkpoint has no text encoder.")
        sdxl, sd1 = _is_sdxl(clip), _is_sd1(clip)
        if layout == "auto":
            if not (sdxl or sd1):
                raise LLMGANodeError(f"{title}: auto layout needs an SD1.5 or SDXL CLIP; pick a layout explicitly.")
            layout = "sdxl" if sdxl else "sd15"
        if layout == "sdxl" and not sdxl:
            raise LLMGANodeError(f"{title}: the sdxl layout needs an SDXL CLIP (CLIP-L and CLIP-G); use sd15 instead.")
        if layout.startswith("sd15") and not hasattr(clip.cond_stage_model, "clip_l"):
            raise LLMGANodeError(f"{title}: the {layout} layout needs a CLIP with a CLIP-L encoder.")

        tokenize_l = hf_tokenize(clip.tokenizer.clip_l.tokenizer)
        extra: dict[str, Any] = {}
        stages: tuple[dict[str, Any], dict[str, Any]] = ({}, {})
        with user_errors(title):
            if layout == "sdxl":
                tokenize_g = hf_tokenize(clip.tokenizer.clip_g.tokenizer)
                result = encode_sdxl(
                    positive,
                    negative,
                    tokenize=tokenize_l,
                    tokenize_g=tokenize_g,
                    max_chunks=max_chunks,
                    encode_pair=_batched_encoder(clip, ("l", "g")),
                )
                extra = _sdxl_sizes(width, height, crop_w, crop_h, target_width, target_height)
            else:
                encode = encode_sd15 if layout == "sd15" else encode_sd15_training
                result = encode(
                    positive,
                    negative,
                    tokenize=tokenize_l,
                    max_chunks=max_chunks,
                    encode=_batched_encoder(clip, ("l",)),
                )
                if layout == "sd15":  # what LLMGA's edit encodes for its inversion and mask stages
                    stages = tuple(  # type: ignore[assignment]
                        {STAGE_KEY: encode_stage_prompt(text, tokenize_l, _batched_encoder(clip, ("l",)))}
                        for text in (positive, negative)
                    )
        for which, dropped in (("positive", result.dropped), ("negative", result.uncond_dropped)):
            if dropped:
                _log.warning(
                    "%s: the %s prompt is longer than %d chunks (%d tokens); its last %d tokens were dropped.",
                    title,
                    which,
                    max_chunks,
                    75 * max_chunks,
                    dropped,
                )
        positive_cond = [[result.cond, {"pooled_output": result.pooled, **extra, **stages[0]}]]
        negative_cond = [[result.uncond, {"pooled_output": result.uncond_pooled, **extra, **stages[1]}]]
        return io.NodeOutput(positive_cond, negative_cond)


NODES: list[type[io.ComfyNode]] = [LLMGALongPromptEncode]
