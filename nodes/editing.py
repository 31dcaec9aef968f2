"""LLMGAInstructionEdit: LLMGA's instruction-based editing on ComfyUI's own sampling engine.

The algorithm (DiffEdit mask, edit-friendly inversion with SDE-DPM-Solver++ 2M, masked CFG replaying the
stored noise) lives in llmga_core.editing and sees the model only as ``eps(x, t, cond)``. This module makes
that callable out of ComfyUI's model: the conditionings go through a ``CFGGuider`` subclass and the whole edit
runs as a ``Sampler``, so ComfyUI prepares conds, loads ControlNets/LoRA/patches and frees memory exactly as
for a KSampler run, and every UNet call goes through ``comfy.samplers.calc_cond_batch``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import comfy.model_sampling
import comfy.samplers
import torch
import torch.nn.functional as F
from comfy_api.latest import io

from ..llmga_core.editing import (
    SKIP,
    SOURCE_CFG,
    STEPS,
    TARGET_CFG,
    Denoiser,
    EditConds,
    NoiseTables,
    SdeDpmSolverPP2M,
    check_image_size,
    edit,
    edit_timesteps,
    invert,
    prepare_mask,
)
from ..llmga_core.errors import LLMGAInputError
from . import runtime
from ._errors import user_errors
from ._inputs import seed_input

TITLE = "LLMGA Instruction Edit"
CHUNK = 77  # CLIP tokens per conditioning chunk
MASK_MAX_CHUNKS = 3  # the original's mask stage encodes both prompts with at most 3 LPW chunks
MAX_STEPS = 999

# Names of the conditionings the guider holds, one per use in the edit (llmga-spec.md 3.4).
STAGE_CONDS = EditConds(
    target="positive",  # sampling: the target prompt
    sampling_uncond="negative",  # sampling: "" at the target's length
    source="source",  # inversion: the source cut at 77 tokens
    inversion_uncond="inversion_negative",  # inversion: "" cut at 77 tokens
    mask_target="mask_target",  # mask: target and source at a common length, at most 3 chunks
    mask_source="mask_source",
)

Conditioning = list[list[Any]]  # ComfyUI CONDITIONING: [[cross_attn tensor, {extras}], ...]


# --- conditionings per stage -------------------------------------------------------------------------------


def _tokens(cond: Conditioning) -> int:
    return max(int(entry[0].shape[1]) for entry in cond)


def cut_tokens(cond: Conditioning, length: int) -> Conditioning:
    """Keep the first ``length`` tokens of every entry (the original's plain 77-token truncation)."""
    return [[entry[0][:, :length], entry[1]] for entry in cond]


def pad_tokens(cond: Conditioning, length: int, filler: torch.Tensor) -> Conditioning:
    """Append copies of the 77-token ``filler`` chunk until every entry has ``length`` tokens.

    LLMGA pads the shorter mask prompt with empty chunks (BOS + 75 padding + EOS, i.e. the encoding of ""), so
    the first chunk of an empty negative prompt is exactly that chunk. Entries whose gap is not whole chunks
    are left alone: ComfyUI batches different lengths by itself.
    """
    out = []
    for tensor, extras in cond:
        gap = length - int(tensor.shape[1])
        if gap > 0 and gap % CHUNK == 0 and filler.shape[1] == CHUNK:
            fill = filler.to(device=tensor.device, dtype=tensor.dtype).expand(tensor.shape[0], -1, -1)
            tensor = torch.cat([tensor, *([fill] * (gap // CHUNK))], dim=1)
        out.append([tensor, extras])
    return out


def stage_conditionings(source: Conditioning, target: Conditioning, negative: Conditioning) -> dict[str, Conditioning]:
    """The six conditionings of the edit, keyed by the names in ``STAGE_CONDS``.

    Sampling uses target and negative as given (LLMGA: LPW, up to 4 chunks, "" padded to the same length). The
    inversion uses source and negative cut at 77 tokens. The mask compares target and source padded with the
    negative's first chunk to a common length of at most 3 chunks.
    """
    for name, cond in (("source", source), ("target", target), ("negative", negative)):
        if not isinstance(cond, list) or not cond or not all(isinstance(e[0], torch.Tensor) for e in cond):
            raise LLMGAInputError(f"the {name} conditioning is empty; connect a text encode node to it.")
    mask_length = min(max(_tokens(source), _tokens(target)), MASK_MAX_CHUNKS * CHUNK)
    filler = negative[0][0][:1, :CHUNK]
    return {
        "positive": target,
        "negative": negative,
        "source": cut_tokens(source, CHUNK),
        "inversion_negative": cut_tokens(negative, CHUNK),
        "mask_target": pad_tokens(cut_tokens(target, mask_length), mask_length, filler),
        "mask_source": pad_tokens(cut_tokens(source, mask_length), mask_length, filler),
    }


# --- ComfyUI's model as an ε-predictor ----------------------------------------------------------------------


def check_edit_model(model: Any) -> None:
    """The edit needs a discrete-time ε-prediction latent diffusion model (SD1.5 family) with plain latents in."""
    sampling = model.get_model_object("model_sampling")
    kind = type(sampling)
    discrete = isinstance(sampling, comfy.model_sampling.ModelSamplingDiscrete)
    eps = (
        getattr(kind, "calculate_denoised", None) is comfy.model_sampling.EPS.calculate_denoised
        and getattr(kind, "calculate_input", None) is comfy.model_sampling.EPS.calculate_input
    )
    if not discrete or not eps or kind.timestep is not comfy.model_sampling.ModelSamplingDiscrete.timestep:
        raise LLMGAInputError(
            "this model is not an epsilon-prediction model with a 1000-step discrete schedule; LLMGA editing "
            "needs an SD1.5-family checkpoint (LLMGA uses its SD1.5 text-to-image model). Remove model-sampling "
            "patches such as v-prediction or EDM."
        )
    base = model.model
    in_channels = base.model_config.unet_config.get("in_channels")
    latent_channels = base.latent_format.latent_channels
    if in_channels is not None and in_channels != latent_channels:
        raise LLMGAInputError(
            f"this UNet takes {in_channels} input channels (an inpainting checkpoint); editing needs the "
            f"{latent_channels}-channel text-to-image model. Load LLMGA's SD1.5 text-to-image checkpoint instead."
        )


def alphas_cumprod_of(model_sampling: Any) -> torch.Tensor:
    """ᾱ per training timestep from ComfyUI's σ table (σ² = (1 − ᾱ)/ᾱ), so every t maps back exactly."""
    sigmas = model_sampling.sigmas.detach().to("cpu", torch.float64)
    return (1.0 / (1.0 + sigmas**2)).to(torch.float32)


def comfy_denoiser(model: Any, conds: dict[str, list[dict]], model_options: dict) -> Denoiser:
    """``eps(x, t, name)`` on ComfyUI's model: the guider's processed conds evaluated by ``calc_cond_batch``.

    ComfyUI's models take k-diffusion inputs ``x·√(1+σ²)`` at σ = √((1−ᾱ)/ᾱ) and return denoised latents; the
    ε of the VP latent ``x`` is ``(x_in − denoised)/σ``. σ comes from the model's own table, so ComfyUI maps
    it back to exactly the integer timestep t.
    """
    sigmas = model.model_sampling.sigmas

    def eps_batch(x: torch.Tensor, t: int, names: Sequence[str]) -> list[torch.Tensor]:
        sigma = sigmas[int(t)].to(device=x.device, dtype=torch.float32)
        x_in = x * torch.sqrt(1.0 + sigma**2)
        sigma_batch = sigma.reshape(1).expand(x.shape[0])
        denoised = comfy.samplers.calc_cond_batch(model, [conds[n] for n in names], x_in, sigma_batch, model_options)
        return [(x_in - d) / sigma for d in denoised]

    def eps(x: torch.Tensor, t: int, name: str) -> torch.Tensor:
        return eps_batch(x, t, [name])[0]

    return Denoiser(eps=eps, eps_batch=eps_batch)


class EditGuider(comfy.samplers.CFGGuider):
    """Holds the edit's named conditionings; ``sample`` prepares them as ComfyUI does for any sampler."""

    def __init__(self, model_patcher: Any, conds: dict[str, Conditioning]) -> None:
        super().__init__(model_patcher)
        self.inner_set_conds(conds)


@dataclass
class EditSettings:
    seed: int
    steps: int = STEPS
    skip: float = SKIP
    source_cfg: float = SOURCE_CFG
    target_cfg: float = TARGET_CFG
    mask: torch.Tensor | None = None  # [B|1, 1, h, w] at latent resolution; None: DiffEdit mask


def _denoiser_and_alphas(model_wrap: Any, extra_args: dict) -> tuple[Any, torch.Tensor]:
    """Inside a ComfyUI ``Sampler.sample``: the ε-denoiser over the guider's conds, and ᾱ of the model."""
    model = model_wrap.inner_model
    return comfy_denoiser(model, model_wrap.conds, extra_args["model_options"]), alphas_cumprod_of(model.model_sampling)


class EditSampler(comfy.samplers.Sampler):
    """The whole edit (mask, inversion, masked sampling) as one ComfyUI ``Sampler`` run.

    ``latent_image`` arrives already through ``process_latent_in`` and the result goes back through
    ``process_latent_out`` (CFGGuider.inner_sample does both); the mask is kept on ``self.mask``.
    """

    def __init__(self, settings: EditSettings, progress: Callable[[int, int], None] | None = None) -> None:
        self.settings = settings
        self.progress = progress
        self.mask: torch.Tensor | None = None

    def sample(
        self,
        model_wrap: Any,
        sigmas: torch.Tensor,
        extra_args: dict,
        callback: Any,
        noise: torch.Tensor,
        latent_image: torch.Tensor | None = None,
        denoise_mask: torch.Tensor | None = None,
        disable_pbar: bool = False,
    ) -> torch.Tensor:
        s = self.settings
        denoiser, alphas = _denoiser_and_alphas(model_wrap, extra_args)
        x0 = latent_image.to(torch.float32)
        mask = None if s.mask is None else s.mask.to(x0.device)
        result = edit(
            denoiser,
            x0,
            STAGE_CONDS,
            alphas,
            torch.Generator("cpu").manual_seed(s.seed),
            steps=s.steps,
            skip=s.skip,
            source_cfg=s.source_cfg,
            target_cfg=s.target_cfg,
            mask=mask,
            progress=self.progress,
            check_interrupt=runtime.check_interrupt,
        )
        self.mask = result.mask
        return result.latent


def edit_schedule(model: Any, steps: int, skip: float) -> tuple[list[int], torch.Tensor]:
    """The edit's timesteps, and their σ plus the final 0 (what ComfyUI patches see as ``sample_sigmas``)."""
    sigmas = model.get_model_object("model_sampling").sigmas
    timesteps = edit_timesteps(steps, skip, int(sigmas.numel()))
    return timesteps, torch.cat([sigmas[timesteps].float().cpu(), torch.zeros(1)])



def edit_latent(
    model: Any,
    latent: torch.Tensor,
    conds: dict[str, Conditioning],
    settings: EditSettings,
    progress: Callable[[int, int], None] | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Edit a VAE latent (ComfyUI's latent space, as VAEEncode gives it): (edited latent, latent-size mask)."""
    check_edit_model(model)
    _, sigmas = edit_schedule(model, settings.steps, settings.skip)
    sampler = EditSampler(settings, progress)
    guider = EditGuider(model, conds)
    out = guider.sample(torch.zeros_like(latent), latent, sampler, sigmas, disable_pbar=True, seed=settings.seed)
    if sampler.mask is None:  # a wrapper skipped the sampler: nothing was edited
        raise LLMGAInputError("a model patch replaced the sampling call, so the edit did not run.")
    return out, sampler.mask


# --- the node -------------------------------------------------------------------------------------------------


def latent_mask(mask: torch.Tensor, image_hw: tuple[int, int], latent_hw: tuple[int, int]) -> torch.Tensor:
    """A MASK of the image's size as [B, 1, h, w] 0/1: a latent pixel is edited when half its 8×8 block is."""
    m = mask if mask.ndim == 3 else mask.reshape(-1, *mask.shape[-2:])
    if tuple(m.shape[-2:]) != tuple(image_hw):
        raise LLMGAInputError(
            f"the mask is {m.shape[-1]}x{m.shape[-2]} px but the image is {image_hw[1]}x{image_hw[0]}; give a mask "
            "of the image's size (white = region to edit)."
        )
    area = F.interpolate(m[:, None].float().clamp(0, 1), size=latent_hw, mode="area")
    return (area >= 0.5).float()


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
                io.Model.Input(
                    "model",
                    tooltip="An SD1.5-family epsilon model (LLMGA uses its SD1.5 text-to-image "
                    "model; inpainting checkpoints do not fit).",
                ),
                io.Vae.Input("vae", tooltip="Encodes the image and decodes the result (LLMGA uses sd-vae-ft-mse)."),
                io.Image.Input(
                    "image",
                    tooltip="The picture to edit; sides must be multiples of 8 (LLMGA "
                    "center-crops and resizes to 512x512).",
                ),
                io.Conditioning.Input(
                    "source",
                    tooltip="The prompt describing the image as it is (LLMGA's first "
                    "turn caption). The inversion uses its first 77 tokens, the mask up to 3 chunks.",
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
                io.Int.Input(
                    "steps",
                    default=STEPS,
                    min=1,
                    max=MAX_STEPS,
                    tooltip=f"Inversion and editing steps (LLMGA: {STEPS}).",
                ),
                io.Int.Input(
                    "skip",
                    default=int(SKIP),
                    min=0,
                    max=99,
                    tooltip=f"Percent of the noise schedule left out at the noisy end (LLMGA: {int(SKIP)}, "
                    "starting at t=749). Larger keeps more of the input image.",
                ),
                io.Float.Input(
                    "source_cfg",
                    default=SOURCE_CFG,
                    min=0.0,
                    max=100.0,
                    step=0.1,
                    round=0.01,
                    tooltip=f"Guidance scale of the source prompt during inversion (LLMGA: {SOURCE_CFG}).",
                ),
                io.Float.Input(
                    "target_cfg",
                    default=TARGET_CFG,
                    min=0.0,
                    max=100.0,
                    step=0.1,
                    round=0.01,
                    tooltip=f"Guidance scale of the target prompt inside the mask (LLMGA: {TARGET_CFG}); "
                    "at 1 or below the target prompt is used unguided everywhere.",
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
            check_edit_model(model)
            n = len(edit_timesteps(steps, skip))  # bad steps/skip fail here, before anything loads
            conds = stage_conditionings(source, target, negative)
            given = None if mask is None else latent_mask(mask, (height, width), latent_hw)
            latent = vae.encode(image[..., :3])
            settings = EditSettings(seed, steps, skip, source_cfg, target_cfg, given)
            progress = runtime.progress_callback(2 * n + (1 if given is None else 0))
            edited, mask_latent = edit_latent(model, latent, conds, settings, progress)
        pixels = vae.decode(edited)
        mask_image = F.interpolate(mask_latent.float(), size=(height, width), mode="nearest")[:, 0]
        return io.NodeOutput(runtime.intermediate(pixels), runtime.intermediate(mask_image))


# --- building blocks for SamplerCustomAdvanced ----------------------------------------------------------------

EditNoiseSocket = io.Custom("LLMGA_EDIT_NOISE")


@dataclass(frozen=True)
class EditNoise:
    """What the inversion hands the injected-noise sampler: its timesteps and one stored noise per step."""

    timesteps: list[int]
    zs: torch.Tensor  # [N, B, C, h, w], sampling (descending-t) order


def _seed_input() -> io.Int.Input:
    return seed_input("Seeds the per-timestep inversion noise (a CPU generator, the same on any device).")


class InversionSampler(comfy.samplers.Sampler):
    """Edit-friendly inversion as a ComfyUI ``Sampler`` run: returns the noisiest inverted latent."""

    def __init__(self, seed: int, timesteps: list[int], source_cfg: float) -> None:
        self.seed, self.timesteps, self.source_cfg = seed, timesteps, source_cfg
        self.zs: torch.Tensor | None = None

    def sample(
        self,
        model_wrap: Any,
        sigmas: torch.Tensor,
        extra_args: dict,
        callback: Any,
        noise: torch.Tensor,
        latent_image: torch.Tensor | None = None,
        denoise_mask: torch.Tensor | None = None,
        disable_pbar: bool = False,
    ) -> torch.Tensor:
        denoiser, alphas = _denoiser_and_alphas(model_wrap, extra_args)
        progress = runtime.progress_callback(len(self.timesteps))
        inversion = invert(
            denoiser,
            latent_image.to(torch.float32),
            STAGE_CONDS.source,
            STAGE_CONDS.inversion_uncond,
            alphas,
            self.timesteps,
            torch.Generator("cpu").manual_seed(self.seed),
            source_cfg=self.source_cfg,
            progress=progress,
            check_interrupt=runtime.check_interrupt,
        )
        self.zs = inversion.zs
        return inversion.start


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
                io.Model.Input("model", tooltip="An SD1.5-family epsilon model."),
                io.Latent.Input("latent", tooltip="The VAE-encoded image to invert (VAE Encode)."),
                io.Conditioning.Input("source", tooltip="Prompt describing the image; its first 77 tokens are used."),
                io.Conditioning.Input("negative", tooltip='Unconditional prompt (LLMGA: ""); first 77 tokens.'),
                _seed_input(),
                io.Int.Input("steps", default=STEPS, min=1, max=MAX_STEPS, tooltip=f"Steps (LLMGA: {STEPS})."),
                io.Int.Input(
                    "skip",
                    default=int(SKIP),
                    min=0,
                    max=99,
                    tooltip=f"Percent of the schedule left out at the noisy end (LLMGA: {int(SKIP)}).",
                ),
                io.Float.Input(
                    "source_cfg",
                    default=SOURCE_CFG,
                    min=0.0,
                    max=100.0,
                    step=0.1,
                    round=0.01,
                    tooltip=f"Guidance scale of the source prompt (LLMGA: {SOURCE_CFG}).",
                ),
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
        with user_errors(TITLE.replace("Instruction Edit", "Edit Inversion")):
            check_edit_model(model)
            samples = latent["samples"]
            if samples.ndim != 4:
                raise LLMGAInputError(f"the latent has shape {list(samples.shape)}; invert an image latent.")
            timesteps, sigmas = edit_schedule(model, steps, skip)
            conds = stage_conditionings(source, source, negative)
            sampler = InversionSampler(seed, timesteps, source_cfg)
            guider = EditGuider(model, {k: conds[k] for k in ("source", "inversion_negative")})
            start = guider.sample(torch.zeros_like(samples), samples, sampler, sigmas, disable_pbar=True, seed=seed)
            if sampler.zs is None:
                raise LLMGAInputError("a model patch replaced the sampling call, so the inversion did not run.")
        out = {k: v for k, v in latent.items() if k not in ("noise_mask", "batch_index")}
        out["samples"] = runtime.intermediate(start)
        return io.NodeOutput(out, sigmas, EditNoise(timesteps, sampler.zs.detach().cpu()))


class InjectedNoiseSampler(comfy.samplers.Sampler):
    """SDE-DPM-Solver++ 2M over the inversion's timesteps with its stored noise instead of fresh noise.

    Works with any GUIDER: its denoised output at σ is turned into the ε of the VP latent, as in the edit.
    """

    def __init__(self, noise: EditNoise) -> None:
        self.noise = noise

    def sample(
        self,
        model_wrap: Any,
        sigmas: torch.Tensor,
        extra_args: dict,
        callback: Any,
        noise: torch.Tensor,
        latent_image: torch.Tensor | None = None,
        denoise_mask: torch.Tensor | None = None,
        disable_pbar: bool = False,
    ) -> torch.Tensor:
        steps, zs = self.noise.timesteps, self.noise.zs
        x = latent_image.to(torch.float32)
        if tuple(zs.shape[1:]) != tuple(x.shape) or len(sigmas) != len(steps) + 1:
            raise LLMGAInputError(
                f"the edit noise is for {len(steps)} steps on latents {list(zs.shape[1:])}, but the sampler got "
                f"{len(sigmas) - 1} steps on {list(x.shape)}: connect the latent and sigmas of the same inversion."
            )
        model = model_wrap.inner_model
        table = model.model_sampling.sigmas
        solver = SdeDpmSolverPP2M(
            NoiseTables.from_alphas_cumprod(alphas_cumprod_of(model.model_sampling)).to(x.device),
            steps,
            lower_order_final=True,
        )
        ones = x.new_ones((x.shape[0],))
        for i, t in enumerate(steps):
            runtime.check_interrupt()
            sigma = table[t].to(device=x.device, dtype=torch.float32)
            x_in = x * torch.sqrt(1.0 + sigma**2)
            denoised = model_wrap(x_in, sigma * ones, **extra_args)
            mean, std = solver.mean_and_std(i, (x_in - denoised) / sigma, x)
            x = mean + std * zs[i].to(device=x.device, dtype=x.dtype)
            if callback is not None:
                callback(i, denoised, x, len(steps))
        return x


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


class MaskedCFGGuider(comfy.samplers.CFGGuider):
    """Classifier-free guidance only inside a mask: uncond + cfg·(cond − uncond)·M, plain uncond outside."""

    def __init__(self, model_patcher: Any, mask: torch.Tensor) -> None:
        super().__init__(model_patcher)
        self.mask = mask  # [B|1, H, W] in [0, 1], any resolution

    def predict_noise(
        self, x: torch.Tensor, timestep: torch.Tensor, model_options: dict | None = None, seed: int | None = None
    ) -> torch.Tensor:
        options = model_options or {}
        if self.cfg <= 1.0:  # as LLMGA: the target prediction alone
            return comfy.samplers.calc_cond_batch(self.inner_model, [self.conds["positive"]], x, timestep, options)[0]
        cond, uncond = comfy.samplers.calc_cond_batch(
            self.inner_model, [self.conds["positive"], self.conds["negative"]], x, timestep, options
        )
        area = F.interpolate(
            self.mask.reshape(-1, 1, *self.mask.shape[-2:]).float().to(x.device), size=tuple(x.shape[-2:]), mode="area"
        )
        m = prepare_mask((area >= 0.5).float(), x)
        return uncond + self.cfg * (cond - uncond) * m


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
                io.Float.Input(
                    "cfg",
                    default=TARGET_CFG,
                    min=0.0,
                    max=100.0,
                    step=0.1,
                    round=0.01,
                    tooltip=f"Guidance scale inside the mask (LLMGA: {TARGET_CFG}); at 1 or below the "
                    "positive prompt is used unguided everywhere.",
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
