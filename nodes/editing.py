"""The four editing nodes: LLMGA's instruction edit and its building blocks for SamplerCustomAdvanced.

Declarations only: the algorithm is llmga_core.editing (which conditioning each stage sees included) and the
ComfyUI adaptation (ε/v from ComfyUI's model, guiders, samplers) is nodes/edit_sampling.py.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from comfy_api.latest import io

from ..llmga_core.editing import (
    SKIP,
    SOURCE_CFG,
    STEPS,
    TARGET_CFG,
    Conditioning,
    check_image_size,
    cut_tokens,
    edit_timesteps,
    latent_mask,
    pad_tokens,
    stage_conditionings,
)
from . import runtime
from ._errors import user_errors
from ._inputs import seed_input
from .edit_sampling import (
    STAGE_CONDS,
    EditGuider,
    EditNoise,
    EditSampler,
    EditSettings,
    InjectedNoiseSampler,
    InversionSampler,
    MaskedCFGGuider,
    alphas_cumprod_of,
    check_edit_model,
    comfy_denoiser,
    edit_latent,
    edit_schedule,
    encode_with_posterior,
    invert_latent,
)

__all__ = [  # the adaptation's names stay importable from here (tests, bench)
    "STAGE_CONDS",
    "EditGuider",
    "EditNoise",
    "EditSampler",
    "EditSettings",
    "InjectedNoiseSampler",
    "InversionSampler",
    "MaskedCFGGuider",
    "alphas_cumprod_of",
    "comfy_denoiser",
    "cut_tokens",
    "edit_latent",
    "edit_schedule",
    "pad_tokens",
    "stage_conditionings",
]

TITLE = "LLMGA Instruction Edit"
MAX_STEPS = 999
EditNoiseSocket = io.Custom("LLMGA_EDIT_NOISE")
MODEL_TOOLTIP = (
    "An SD1.5, SD2.x or SDXL text-to-image model, epsilon or v prediction (LLMGA edits with its SD1.5 "
    "text-to-image model; inpainting, EDM and flow models do not fit)."
)


def _seed_input() -> io.Int.Input:
    return seed_input("Seeds the per-timestep inversion noise (a CPU generator, the same on any device).")


def _steps_input(tooltip: str) -> io.Int.Input:
    return io.Int.Input("steps", default=STEPS, min=1, max=MAX_STEPS, tooltip=tooltip)


def _skip_input(tooltip: str) -> io.Int.Input:
    return io.Int.Input("skip", default=int(SKIP), min=0, max=99, tooltip=tooltip)


def _cfg_input(name: str, default: float, tooltip: str) -> io.Float.Input:
    return io.Float.Input(name, default=default, min=0.0, max=100.0, step=0.1, round=0.01, tooltip=tooltip)


class LLMGAInstructionEdit(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="LLMGAInstructionEdit",
            display_name=TITLE,
            category="LLMGA/sampling",
            description=(
                "LLMGA's instruction-based editing: finds where the source and target prompts disagree "
                "(DiffEdit mask), inverts the image edit-friendly with SDE-DPM-Solver++ 2M under the source "
                "prompt, then replays the chain with the target prompt, guided only inside the mask. Every UNet "
                "call runs through ComfyUI's model, so ControlNet, LoRA and model patches apply."
            ),
            inputs=[
                io.Model.Input("model", tooltip=MODEL_TOOLTIP),
                io.Vae.Input("vae", tooltip="Encodes the image and decodes the result (LLMGA uses sd-vae-ft-mse)."),
                io.Image.Input(
                    "image",
                    tooltip="The picture to edit; sides must be multiples of 8 (LLMGA "
                    "center-crops and resizes to 512x512).",
                ),
                io.Conditioning.Input(
                    "source",
                    tooltip="The prompt describing the image as it is (LLMGA's first turn caption). On SD1.5, "
                    "from LLMGA Long Prompt Encode (sd15), the inversion and the mask get the encodings LLMGA makes "
                    "for them from the text; from other encoders the first 77 tokens and up to 3 chunks. On SDXL "
                    "and SD2.x every stage uses it whole.",
                ),
                io.Conditioning.Input(
                    "target",
                    tooltip="The prompt describing the edited image (LLMGA's second "
                    "turn caption), e.g. from LLMGA Long Prompt Encode with 4 chunks. ControlNet "
                    "applied here guides the edit.",
                ),
                io.Conditioning.Input(
                    "negative",
                    tooltip='Unconditional prompt; LLMGA uses the empty prompt "" '
                    "(the negative of LLMGA Long Prompt Encode, padded to the target's length).",
                ),
                seed_input(
                    "Seeds the mask noise and the inversion noise (a CPU generator: the same "
                    "seed gives the same edit on any device)."
                ),
                _steps_input(f"Inversion and editing steps (LLMGA: {STEPS})."),
                _skip_input(
                    f"Percent of the noise schedule left out at the noisy end (LLMGA: {int(SKIP)}, starting at "
                    "t=749). Larger keeps more of the input image."
                ),
                _cfg_input(
                    "source_cfg",
                    SOURCE_CFG,
                    f"Guidance scale of the source prompt during inversion (LLMGA: {SOURCE_CFG}).",
                ),
                _cfg_input(
                    "target_cfg",
                    TARGET_CFG,
                    f"Guidance scale of the target prompt inside the mask (LLMGA: {TARGET_CFG}); at 1 or below the "
                    "target prompt is used unguided everywhere.",
                ),
                io.Mask.Input(
                    "mask",
                    optional=True,
                    tooltip="Optional region to edit (white), of the image's size. Given, it replaces "
                    "the automatic DiffEdit mask.",
                ),
            ],
            outputs=[
                io.Image.Output(display_name="image", tooltip="The edited image, the input's size."),
                io.Mask.Output(
                    display_name="mask",
                    tooltip="The edit mask (1 = edited), upsampled from the latent grid to the image's size.",
                ),
            ],
        )

    @classmethod
    def execute(
        cls,
        model: Any,
        vae: Any,
        image: torch.Tensor,
        source: Conditioning,
        target: Conditioning,
        negative: Conditioning,
        seed: int,
        steps: int,
        skip: int,
        source_cfg: float,
        target_cfg: float,
        mask: torch.Tensor | None = None,
    ) -> io.NodeOutput:
        with user_errors(TITLE):
            height, width = int(image.shape[1]), int(image.shape[2])
            latent_hw = check_image_size(height, width)
            family = check_edit_model(model)
            n = len(edit_timesteps(steps, skip))  # bad steps/skip fail here, before anything loads
            conds = stage_conditionings(source, target, negative, family)
            given = None if mask is None else latent_mask(mask, (height, width), latent_hw)
            latent, posterior = encode_with_posterior(vae, image[..., :3])
            settings = EditSettings(seed, steps, skip, source_cfg, target_cfg, given, posterior)
            progress = runtime.progress_callback(2 * n + (1 if given is None else 0))
            edited, mask_latent = edit_latent(model, latent, conds, settings, progress)
        pixels = vae.decode(edited)
        mask_image = F.interpolate(mask_latent.float(), size=(height, width), mode="nearest")[:, 0]
        return io.NodeOutput(runtime.intermediate(pixels), runtime.intermediate(mask_image))


class LLMGAEditInversion(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="LLMGAEditInversion",
            display_name="LLMGA Edit Inversion",
            category="LLMGA/sampling/custom_sampling",
            description=(
                "Edit-friendly DDPM inversion of a latent with SDE-DPM-Solver++ 2M under the source prompt, "
                "as LLMGA's editing does. Feed its latent, sigmas and noise to SamplerCustomAdvanced with the "
                "LLMGA Injected-Noise Sampler (and, for LLMGA's edit, the Masked CFG Guider)."
            ),
            inputs=[
                io.Model.Input("model", tooltip=MODEL_TOOLTIP),
                io.Latent.Input("latent", tooltip="The VAE-encoded image to invert (VAE Encode)."),
                io.Conditioning.Input(
                    "source", tooltip="Prompt describing the image (SD1.5: its first 77 tokens, as LLMGA)."
                ),
                io.Conditioning.Input("negative", tooltip='Unconditional prompt (LLMGA: ""; SD1.5: first 77 tokens).'),
                _seed_input(),
                _steps_input(f"Steps (LLMGA: {STEPS})."),
                _skip_input(f"Percent of the schedule left out at the noisy end (LLMGA: {int(SKIP)})."),
                _cfg_input("source_cfg", SOURCE_CFG, f"Guidance scale of the source prompt (LLMGA: {SOURCE_CFG})."),
            ],
            outputs=[
                io.Latent.Output(display_name="latent", tooltip="The noisiest inverted latent: the edit starts here."),
                io.Sigmas.Output(display_name="sigmas", tooltip="The chain's sigmas (its timesteps, then 0)."),
                EditNoiseSocket.Output(display_name="edit_noise", tooltip="The stored noise of every step."),
            ],
        )

    @classmethod
    def execute(
        cls,
        model: Any,
        latent: dict,
        source: Conditioning,
        negative: Conditioning,
        seed: int,
        steps: int,
        skip: int,
        source_cfg: float,
    ) -> io.NodeOutput:
        with user_errors("LLMGA Edit Inversion"):
            conds = stage_conditionings(source, source, negative, check_edit_model(model))
            start, sigmas, noise = invert_latent(model, latent["samples"], conds, seed, steps, skip, source_cfg)
        out = {k: v for k, v in latent.items() if k not in ("noise_mask", "batch_index")}
        out["samples"] = runtime.intermediate(start)
        return io.NodeOutput(out, sigmas, noise)


class LLMGAInjectedNoiseSampler(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="LLMGAInjectedNoiseSampler",
            display_name="LLMGA Injected-Noise Sampler",
            category="LLMGA/sampling/custom_sampling",
            description=(
                "A SAMPLER for SamplerCustomAdvanced that replays an LLMGA Edit Inversion: SDE-DPM-Solver++ 2M "
                "over the inversion's timesteps, adding its stored noise instead of fresh noise. Use the "
                "inversion's latent and sigmas, and Disable Noise as the noise."
            ),
            inputs=[EditNoiseSocket.Input("edit_noise", tooltip="From LLMGA Edit Inversion.")],
            outputs=[io.Sampler.Output(display_name="sampler", tooltip="For SamplerCustomAdvanced.")],
        )

    @classmethod
    def execute(cls, edit_noise: EditNoise) -> io.NodeOutput:
        return io.NodeOutput(InjectedNoiseSampler(edit_noise))


class LLMGAMaskedCFGGuider(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="LLMGAMaskedCFGGuider",
            display_name="LLMGA Masked CFG Guider",
            category="LLMGA/sampling/custom_sampling",
            description=(
                "A GUIDER that applies classifier-free guidance only inside a mask, as LLMGA's edit does: "
                "outside it the plain unconditional prediction is used, so the inverted background is kept."
            ),
            inputs=[
                io.Model.Input("model", tooltip="The model to sample with."),
                io.Conditioning.Input("positive", tooltip="The target prompt."),
                io.Conditioning.Input("negative", tooltip='The unconditional prompt (LLMGA: "").'),
                _cfg_input(
                    "cfg",
                    TARGET_CFG,
                    f"Guidance scale inside the mask (LLMGA: {TARGET_CFG}); at 1 or below the positive prompt is "
                    "used unguided everywhere.",
                ),
                io.Mask.Input("mask", tooltip="Where to guide (white); binarised per 8x8 latent block at half."),
            ],
            outputs=[io.Guider.Output(display_name="guider", tooltip="For SamplerCustomAdvanced.")],
        )

    @classmethod
    def execute(
        cls, model: Any, positive: Conditioning, negative: Conditioning, cfg: float, mask: torch.Tensor
    ) -> io.NodeOutput:
        guider = MaskedCFGGuider(model, mask)
        guider.set_conds(positive, negative)
        guider.set_cfg(cfg)
        return io.NodeOutput(guider)


NODES: list[type[io.ComfyNode]] = [
    LLMGAInstructionEdit,
    LLMGAEditInversion,
    LLMGAInjectedNoiseSampler,
    LLMGAMaskedCFGGuider,
]
