"""LLMGAInpaintSampler: LLMGA's inpainting/outpainting sampling on ComfyUI's own sampler.

The model-resolution geometry is llmga_core.sd.geometry; everything else is ComfyUI: VAE encode/decode,
the 9-channel conditioning the way core InpaintModelConditioning builds it (a noise mask for 4-channel
models instead), ``comfy.sample.sample`` with the callback core KSampler uses (progress, previews,
Cancel), so ControlNet and other conditioning patches keep working. Strength follows diffusers/LLMGA:
``round_down(steps × strength)`` steps of a ``steps``-step schedule run, and at strength 1 a 9-channel
model starts from pure noise as LLMGA's pipelines do.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import comfy.latent_formats
import comfy.sample
import comfy.samplers
import comfy.utils
import latent_preview
import node_helpers
import torch
from comfy_api.latest import io

from ..llmga_core.errors import LLMGAInputError
from ..llmga_core.sd.geometry import MODES, Box, Family, crop_box, sample_size
from . import runtime
from ._errors import user_errors
from ._inputs import seed_input

_TITLE = "LLMGA Inpaint Sampler"
LLMGA_DEFAULTS = (
    "LLMGA's own settings: SD1.5 inpainting 50 steps, CFG 7.5, strength 1.0 at 512²; SDXL inpainting 30 steps, "
    "CFG 7.5, strength 0.8 at 1024²."
)


def model_family(model: Any) -> Family:
    latent_format = model.get_model_object("latent_format")
    if isinstance(latent_format, comfy.latent_formats.SDXL):
        return "sdxl"
    if isinstance(latent_format, comfy.latent_formats.SD15):
        return "sd15"
    raise LLMGAInputError("the model is neither SD1.5 nor SDXL; LLMGA's inpainting runs on those families.")


def is_inpaint_model(model: Any) -> bool:
    return int(model.model.model_config.unet_config.get("in_channels", 4)) == 9


def steps_to_run(steps: int, strength: float) -> int:
    """How many of the ``steps`` scheduled steps run, as diffusers' img2img/inpaint pipelines count them."""
    run = min(int(steps * strength), steps)
    if run < 1:
        raise LLMGAInputError(f"strength {strength} with {steps} steps runs no step; raise strength or steps.")
    return run


def _resize(images: torch.Tensor, width: int, height: int, method: str = "lanczos") -> torch.Tensor:
    """(B, H, W, C) resized; unchanged when already that size."""
    if images.shape[1] == height and images.shape[2] == width:
        return images
    out = comfy.utils.common_upscale(images.movedim(-1, 1), width, height, method, "disabled")
    return out.movedim(1, -1)


def _mask_to(mask: torch.Tensor, width: int, height: int) -> torch.Tensor:
    """(B, H, W) mask resized and re-binarised at 0.5, as diffusers' mask processor does."""
    resized = _resize(mask[..., None], width, height, "bilinear")[..., 0]
    return (resized >= 0.5).to(mask.dtype)


def check_inputs(image: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """The mask as (B, H, W) binarised at 0.5; a clear error if it does not fit the image."""
    if mask.ndim == 2:
        mask = mask[None]
    if image.ndim != 4 or mask.ndim != 3:
        raise LLMGAInputError("image must be an IMAGE batch and mask a MASK.")
    if mask.shape[-2:] != image.shape[1:3]:
        raise LLMGAInputError(
            f"the mask is {mask.shape[-1]}x{mask.shape[-2]} but the image is {image.shape[2]}x{image.shape[1]}; "
            "give a mask of the image's size (e.g. from the same Load Image or LLMGA Outpaint Canvas)."
        )
    if mask.shape[0] not in (1, image.shape[0]):
        raise LLMGAInputError(f"{mask.shape[0]} masks for {image.shape[0]} images; give one mask or one per image.")
    return (mask >= 0.5).to(image.dtype)


@dataclass
class Prepared:
    positive: Any
    negative: Any
    latent_image: torch.Tensor
    noise_mask: torch.Tensor | None
    box: Box
    start_step: int
    binary: torch.Tensor  # the checked, binarised mask (the node's mask output)


def prepare(
    model: Any,
    positive: Any,
    negative: Any,
    vae: Any,
    image: torch.Tensor,
    mask: torch.Tensor,
    steps: int,
    strength: float,
    resolution: str,
    size: int,
    crop_context: float,
) -> Prepared:
    """Cut and resize to the model resolution, encode, and condition (9-channel) or mask (4-channel)."""
    family = model_family(model)
    binary = check_inputs(image, mask)
    box = crop_box(binary, crop_context) if resolution == "crop" else Box(0, 0, image.shape[2], image.shape[1])
    width, height = sample_size(resolution, family, box.width, box.height, size)
    rows, cols = box.slices
    pixels = _resize(image[:, rows, cols, :3], width, height)
    region = _mask_to(binary[:, rows, cols], width, height)
    start_step = steps - steps_to_run(steps, strength)

    if not is_inpaint_model(model):  # 4-channel: img2img with the unmasked area kept at every step
        return Prepared(positive, negative, vae.encode(pixels), region[:, None], box, start_step, binary)
    keep = (1.0 - region)[..., None]
    masked = (pixels - 0.5) * keep + 0.5  # the hole is mid-grey, 0 in [-1, 1] as in LLMGA's pipelines
    concat = {"concat_latent_image": vae.encode(masked), "concat_mask": region[:, None]}
    positive = node_helpers.conditioning_set_values(positive, concat)
    negative = node_helpers.conditioning_set_values(negative, concat)
    # At full strength LLMGA starts from pure noise; below it, from the noised picture.
    latent = vae.encode(pixels) if start_step > 0 else torch.zeros_like(concat["concat_latent_image"])
    return Prepared(positive, negative, latent, None, box, start_step, binary)


def sample_latents(
    model: Any,
    prepared: Prepared,
    seed: int,
    steps: int,
    cfg: float,
    sampler_name: str,
    scheduler: str,
    noise: torch.Tensor | None = None,
) -> torch.Tensor:
    """``comfy.sample.sample`` from ``start_step``, with KSampler's progress/preview callback."""
    latent = comfy.sample.fix_empty_latent_channels(model, prepared.latent_image)
    if noise is None:
        noise = comfy.sample.prepare_noise(latent, seed)
    runtime.check_interrupt()
    return comfy.sample.sample(
        model,
        noise,
        steps,
        cfg,
        sampler_name,
        scheduler,
        prepared.positive,
        prepared.negative,
        latent,
        denoise=1.0,
        start_step=prepared.start_step,
        force_full_denoise=True,
        noise_mask=prepared.noise_mask,
        callback=latent_preview.prepare_callback(model, steps),
        disable_pbar=not comfy.utils.PROGRESS_BAR_ENABLED,
        seed=seed,
    )


def finish(vae: Any, samples: torch.Tensor, image: torch.Tensor, prepared: Prepared) -> torch.Tensor:
    """Decode and bring back to the input size (crop mode: paste the box into the input picture)."""
    decoded = vae.decode(samples)[..., :3]
    box = prepared.box
    decoded = _resize(decoded, box.width, box.height).clamp(0.0, 1.0)
    if (box.width, box.height) == (image.shape[2], image.shape[1]):
        return runtime.intermediate(decoded)
    out = image[..., :3].clone().repeat(decoded.shape[0] // image.shape[0], 1, 1, 1)
    rows, cols = box.slices
    out[:, rows, cols] = decoded.to(out)
    return runtime.intermediate(out)


class LLMGAInpaintSampler(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="LLMGAInpaintSampler",
            display_name="LLMGA Inpaint Sampler",
            category="LLMGA/sampling",
            description=(
                "Inpaints or outpaints the masked area the way LLMGA does: resizes to the model resolution "
                "(SD1.5 512², SDXL 1024²), builds the 9-channel inpainting conditioning (a noise mask for "
                "4-channel models), samples with ComfyUI's samplers and resizes back. Feed the image and mask "
                "outputs with the input picture to LLMGA DiffRIR Restore. " + LLMGA_DEFAULTS
            ),
            inputs=[
                io.Model.Input("model", tooltip="An SD1.5 or SDXL model; LLMGA's inpainting UNets are 9-channel."),
                io.Conditioning.Input("positive", tooltip="The prompt (e.g. LLMGA's, through Long Prompt Encode)."),
                io.Conditioning.Input("negative", tooltip="The negative prompt; LLMGA passes an empty one."),
                io.Vae.Input("vae", tooltip="The model's VAE."),
                io.Image.Input("image", tooltip="The picture to inpaint (or the grown outpainting canvas)."),
                io.Mask.Input("mask", tooltip="1 where to generate; binarised at 0.5 as LLMGA does."),
                seed_input("Noise seed (same noise as KSampler for the same latent size)."),
                io.Int.Input("steps", default=50, min=1, max=10000, tooltip="Scheduled steps. " + LLMGA_DEFAULTS),
                io.Float.Input(
                    "cfg",
                    default=7.5,
                    min=0.0,
                    max=100.0,
                    step=0.1,
                    round=0.01,
                    tooltip="Classifier-free guidance scale; LLMGA uses 7.5 for inpainting.",
                ),
                io.Combo.Input(
                    "sampler_name",
                    options=comfy.samplers.KSampler.SAMPLERS,
                    default="euler",
                    tooltip="ComfyUI sampler. LLMGA's SD1.5 folders use PNDM (closest here: ipndm), "
                    "SDXL inpainting Euler.",
                ),
                io.Combo.Input(
                    "scheduler",
                    options=comfy.samplers.KSampler.SCHEDULERS,
                    default="normal",
                    tooltip="ComfyUI scheduler. LLMGA's SD1.5 PNDM uses 'leading' timesteps (closest: "
                    "ddim_uniform); normal matches diffusers' 'linspace', simple its 'trailing'.",
                ),
                io.Float.Input(
                    "strength",
                    default=1.0,
                    min=0.0,
                    max=1.0,
                    step=0.01,
                    tooltip="How much of the schedule runs: int(steps × strength) steps, as in diffusers. "
                    "LLMGA: 1.0 for SD1.5 (pure noise), 0.8 for SDXL.",
                ),
                io.Combo.Input(
                    "resolution",
                    options=list(MODES),
                    default="llmga",
                    tooltip="llmga: stretch the whole picture to the model's square (as LLMGA does) and back. "
                    "fit: whole picture, aspect ratio kept, about size² pixels. crop: only a box around the mask "
                    "(plus crop_context), aspect kept, pasted back into the untouched picture.",
                ),
                io.Int.Input(
                    "size",
                    default=0,
                    min=0,
                    max=8192,
                    step=8,
                    tooltip="Side of the sampling square (llmga) or of an equal-area box (fit, crop). 0: the "
                    "model's own, 512 for SD1.5 and 1024 for SDXL.",
                ),
                io.Float.Input(
                    "crop_context",
                    default=0.5,
                    min=0.0,
                    max=4.0,
                    step=0.05,
                    tooltip="crop mode: surroundings added on each side of the mask's box, as a fraction of "
                    "its larger side.",
                ),
            ],
            outputs=[
                io.Image.Output(display_name="image", tooltip="The result at the input picture's size."),
                io.Mask.Output(
                    display_name="mask", tooltip="The mask binarised at 0.5: the generated area, for DiffRIR."
                ),
            ],
        )

    @classmethod
    def execute(
        cls,
        model: Any,
        positive: Any,
        negative: Any,
        vae: Any,
        image: torch.Tensor,
        mask: torch.Tensor,
        seed: int,
        steps: int,
        cfg: float,
        sampler_name: str,
        scheduler: str,
        strength: float,
        resolution: str,
        size: int,
        crop_context: float,
    ) -> io.NodeOutput:
        with user_errors(_TITLE):
            prepared = prepare(
                model, positive, negative, vae, image, mask, steps, strength, resolution, size, crop_context
            )
        samples = sample_latents(model, prepared, seed, steps, cfg, sampler_name, scheduler)
        return io.NodeOutput(finish(vae, samples, image, prepared), runtime.intermediate(prepared.binary))


NODES: list[type[io.ComfyNode]] = [LLMGAInpaintSampler]
