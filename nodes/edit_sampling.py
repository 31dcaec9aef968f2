"""ComfyUI adaptation of LLMGA editing: ε from ComfyUI's model (ε or v prediction), the edit's guiders and samplers.

The algorithm (llmga_core.editing) sees the model only as ``eps(x, t, cond)`` on VP latents. Here that callable
is made from ComfyUI's model: the conditionings go through a ``CFGGuider`` and each stage runs as a ``Sampler``,
so ComfyUI prepares conds, loads ControlNets/LoRA/patches and frees memory as for a KSampler run, and every UNet
call goes through ``comfy.samplers.calc_cond_batch``. ComfyUI's model sampling turns the model's own output
(ε or v) into a denoised latent, from which ε follows, so the edit serves both prediction types.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import comfy.ldm.models.autoencoder as autoencoder
import comfy.model_sampling as ms
import comfy.samplers
import torch
import torch.nn.functional as F

from ..llmga_core.editing import (
    NUM_MAPS,
    SKIP,
    SOURCE_CFG,
    STEPS,
    TARGET_CFG,
    Conditioning,
    Denoiser,
    EditConds,
    ModelConds,
    NoiseTables,
    SdeDpmSolverPP2M,
    edit,
    edit_timesteps,
    invert,
    posterior_samples,
    prepare_mask,
    scaled_linear_alphas_cumprod,
)
from ..llmga_core.editing.conditioning import FAMILY_OF_WIDTH
from ..llmga_core.errors import LLMGAInputError
from . import runtime

# Names of the conditionings the guider holds, one per use in the edit (llmga-spec.md 3.4).
STAGE_CONDS = EditConds(
    target="positive",  # sampling: the target prompt
    sampling_uncond="negative",  # sampling: "" at the target's length
    source="source",  # inversion: the source (SD1.5: cut at 77 tokens)
    inversion_uncond="inversion_negative",  # inversion: "" (SD1.5: cut at 77 tokens)
    mask_target="mask_target",  # mask: target and source (SD1.5: common length, at most 3 chunks)
    mask_source="mask_source",
)

WHAT_TO_LOAD = "Load an SD1.5, SD2.x or SDXL text-to-image checkpoint (epsilon or v prediction)"


# --- which models the edit serves ---------------------------------------------------------------------------


def _prediction(sampling: Any) -> str | None:
    """'eps' or 'v' for ComfyUI's discrete ε/v model sampling; None for anything else."""
    kind = type(sampling)
    if not isinstance(sampling, ms.ModelSamplingDiscrete) or kind.timestep is not ms.ModelSamplingDiscrete.timestep:
        return None
    if getattr(kind, "calculate_input", None) is not ms.EPS.calculate_input:
        return None
    denoised = getattr(kind, "calculate_denoised", None)
    return {ms.EPS.calculate_denoised: "eps", ms.V_PREDICTION.calculate_denoised: "v"}.get(denoised)


def _what_it_is(sampling: Any) -> str:
    if isinstance(sampling, ms.CONST):
        return "a flow-matching model (SD3, Flux and the like)"
    if isinstance(sampling, ms.EDM) or isinstance(
        sampling, ms.ModelSamplingContinuousEDM | ms.ModelSamplingDiscreteEDM
    ):
        return "an EDM / continuous-noise model (or one patched with ModelSamplingContinuousEDM)"
    if isinstance(sampling, ms.X0):
        return "an x0-prediction model"
    return f"a model with {type(sampling).__name__} sampling"


def check_edit_model(model: Any) -> ModelConds:
    """The model must be a discrete-time ε- or v-prediction latent diffusion model fed plain latents.

    Returns what its conditionings must look like (token width, pooled vector)."""
    sampling = model.get_model_object("model_sampling")
    if _prediction(sampling) is None:
        raise LLMGAInputError(
            f"this is {_what_it_is(sampling)}; LLMGA editing needs a 1000-step discrete schedule with epsilon or "
            f"v prediction. {WHAT_TO_LOAD}, without EDM or flow model-sampling patches."
        )
    base = model.model
    in_channels = base.model_config.unet_config.get("in_channels")
    latent_channels = base.latent_format.latent_channels
    if in_channels is not None and in_channels != latent_channels:
        raise LLMGAInputError(
            f"this UNet takes {in_channels} input channels (an inpainting checkpoint); editing needs the "
            f"{latent_channels}-channel text-to-image model. {WHAT_TO_LOAD} (LLMGA edits with its SD1.5 "
            "text-to-image model)."
        )
    unet = base.model_config.unet_config
    context_dim = unet.get("context_dim")
    family = FAMILY_OF_WIDTH.get(context_dim, type(base.model_config).__name__)
    return ModelConds(family=family, context_dim=context_dim, needs_pooled=unet.get("adm_in_channels") is not None)


def alphas_cumprod_of(model_sampling: Any) -> torch.Tensor:
    """ᾱ per training timestep as the original's scheduler computes it, mapped onto ComfyUI's σ table.

    ComfyUI keeps σ of its float64 scaled-linear betas; the original scheduler builds ᾱ from float32 betas. When
    the model's σ table is that schedule, ᾱ comes from the float32 betas (the original's numbers); otherwise
    (zero-terminal SNR, custom sigmas) from σ itself, σ² = (1 − ᾱ)/ᾱ.
    """
    sigmas = model_sampling.sigmas.detach().to("cpu", torch.float64)
    from_sigmas = 1.0 / (1.0 + sigmas**2)
    start, end = getattr(model_sampling, "linear_start", None), getattr(model_sampling, "linear_end", None)
    if start is not None and end is not None and not getattr(model_sampling, "zsnr", False):
        scheduler = scaled_linear_alphas_cumprod(float(start), float(end), int(sigmas.numel()))
        if torch.allclose(scheduler.double(), from_sigmas, rtol=1e-5, atol=1e-7):
            return scheduler
    return from_sigmas.to(torch.float32)


def comfy_denoiser(model: Any, conds: dict[str, list[dict]], model_options: dict) -> Denoiser:
    """``eps(x, t, name)`` on ComfyUI's model: the guider's processed conds evaluated by ``calc_cond_batch``.

    ComfyUI's models take k-diffusion inputs ``x·√(1+σ²)`` at σ = √((1−ᾱ)/ᾱ) and return denoised latents,
    whatever they predict (ε or v); the ε of the VP latent ``x`` is ``(x_in − denoised)/σ``. σ comes from the
    model's own table, so ComfyUI maps it back to exactly the integer timestep t.
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


def _denoiser_and_alphas(model_wrap: Any, extra_args: dict) -> tuple[Denoiser, torch.Tensor]:
    """Inside a ComfyUI ``Sampler.sample``: the ε-denoiser over the guider's conds, and ᾱ of the model."""
    model = model_wrap.inner_model
    return comfy_denoiser(model, model_wrap.conds, extra_args["model_options"]), alphas_cumprod_of(model.model_sampling)


def edit_schedule(model: Any, steps: int, skip: float) -> tuple[list[int], torch.Tensor]:
    """The edit's timesteps, and their σ plus the final 0 (what ComfyUI patches see as ``sample_sigmas``)."""
    sigmas = model.get_model_object("model_sampling").sigmas
    timesteps = edit_timesteps(steps, skip, int(sigmas.numel()))
    return timesteps, torch.cat([sigmas[timesteps].float().cpu(), torch.zeros(1)])


class EditGuider(comfy.samplers.CFGGuider):
    """Holds the edit's named conditionings; ``sample`` prepares them as ComfyUI does for any sampler."""

    def __init__(self, model_patcher: Any, conds: dict[str, Conditioning]) -> None:
        super().__init__(model_patcher)
        self.inner_set_conds(conds)


class _StageSampler(comfy.samplers.Sampler):
    """A ComfyUI ``Sampler`` whose ``sample`` runs one edit stage on the VP latent."""

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
        return self.run(model_wrap, sigmas, extra_args, callback, latent_image.to(torch.float32))

    def run(self, model_wrap: Any, sigmas: torch.Tensor, extra_args: dict, callback: Any, x: torch.Tensor) -> Any:
        raise NotImplementedError


def _run_guided(model: Any, conds: dict[str, Conditioning], latent: torch.Tensor, sampler: Any, sigmas, seed: int):
    """``CFGGuider.sample`` with the edit's conds: latents go through process_latent_in/out around ``sampler``."""
    out = EditGuider(model, conds).sample(
        torch.zeros_like(latent), latent, sampler, sigmas, disable_pbar=True, seed=seed
    )
    if getattr(sampler, "ran", False) is not True:  # a wrapper skipped the sampler
        raise LLMGAInputError("a model patch replaced the sampling call, so the edit did not run.")
    return out


def encode_with_posterior(vae: Any, pixels: torch.Tensor) -> tuple[torch.Tensor, tuple | None]:
    """``vae.encode(pixels)`` (the posterior's mode) and, for Gaussian-posterior VAEs encoded in one pass, the
    posterior's (mean, logvar); None for deterministic VAEs (TAESD) or tiled/split encodes."""
    regularizer = getattr(getattr(vae, "first_stage_model", None), "regularization", None)
    if not isinstance(regularizer, autoencoder.DiagonalGaussianRegularizer):
        return vae.encode(pixels), None
    moments: list[torch.Tensor] = []
    hook = regularizer.register_forward_hook(lambda _m, args, _out: moments.append(args[0].detach()))
    try:
        latent = vae.encode(pixels)
    finally:
        hook.remove()
    if len(moments) != 1:
        return latent, None
    mean, logvar = moments[0].float().cpu().chunk(2, dim=1)
    if mean.shape != latent.shape or not torch.allclose(mean, latent.float().cpu(), atol=1e-3, rtol=1e-3):
        return latent, None
    return latent, (mean, logvar)


# --- the whole edit -------------------------------------------------------------------------------------------


@dataclass
class EditSettings:
    seed: int
    steps: int = STEPS
    skip: float = SKIP
    source_cfg: float = SOURCE_CFG
    target_cfg: float = TARGET_CFG
    mask: torch.Tensor | None = None  # [B|1, 1, h, w] at latent resolution; None: DiffEdit mask
    posterior: tuple[torch.Tensor, torch.Tensor] | None = None  # VAE (mean, logvar), raw latent space


class EditSampler(_StageSampler):
    """The whole edit (mask, inversion, masked sampling) as one ComfyUI ``Sampler`` run; the mask lands on
    ``self.mask``."""

    def __init__(self, settings: EditSettings, progress: Callable[[int, int], None] | None = None) -> None:
        self.settings, self.progress = settings, progress
        self.mask: torch.Tensor | None = None
        self.ran = False

    def run(self, model_wrap: Any, sigmas: torch.Tensor, extra_args: dict, callback: Any, x0: torch.Tensor):
        s = self.settings
        denoiser, alphas = _denoiser_and_alphas(model_wrap, extra_args)
        generator = torch.Generator("cpu").manual_seed(s.seed)
        mask_latents = None
        if s.mask is None and s.posterior is not None:  # LLMGA's mask stage draws VAE samples, not the mode
            draws = posterior_samples(*s.posterior, NUM_MAPS, generator)
            scaled = model_wrap.inner_model.process_latent_in(draws.flatten(0, 1))
            mask_latents = scaled.reshape(draws.shape).to(device=x0.device, dtype=x0.dtype)
        result = edit(
            denoiser,
            x0,
            STAGE_CONDS,
            alphas,
            generator,
            steps=s.steps,
            skip=s.skip,
            source_cfg=s.source_cfg,
            target_cfg=s.target_cfg,
            mask=None if s.mask is None else s.mask.to(x0.device),
            mask_latents=mask_latents,
            progress=self.progress,
            check_interrupt=runtime.check_interrupt,
        )
        self.mask, self.ran = result.mask, True
        return result.latent


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
    out = _run_guided(model, conds, latent, sampler, sigmas, settings.seed)
    return out, sampler.mask


# --- building blocks for SamplerCustomAdvanced ----------------------------------------------------------------


@dataclass(frozen=True)
class EditNoise:
    """What the inversion hands the injected-noise sampler: its timesteps and one stored noise per step."""

    timesteps: list[int]
    zs: torch.Tensor  # [N, B, C, h, w], sampling (descending-t) order


class InversionSampler(_StageSampler):
    """Edit-friendly inversion as a ComfyUI ``Sampler`` run: returns the noisiest inverted latent."""

    def __init__(self, seed: int, timesteps: list[int], source_cfg: float) -> None:
        self.seed, self.timesteps, self.source_cfg = seed, timesteps, source_cfg
        self.zs: torch.Tensor | None = None
        self.ran = False

    def run(self, model_wrap: Any, sigmas: torch.Tensor, extra_args: dict, callback: Any, x0: torch.Tensor):
        denoiser, alphas = _denoiser_and_alphas(model_wrap, extra_args)
        inversion = invert(
            denoiser,
            x0,
            STAGE_CONDS.source,
            STAGE_CONDS.inversion_uncond,
            alphas,
            self.timesteps,
            torch.Generator("cpu").manual_seed(self.seed),
            source_cfg=self.source_cfg,
            progress=runtime.progress_callback(len(self.timesteps)),
            check_interrupt=runtime.check_interrupt,
        )
        self.zs, self.ran = inversion.zs, True
        return inversion.start


def invert_latent(
    model: Any, samples: torch.Tensor, conds: dict[str, Conditioning], seed: int, steps: int, skip: float, cfg: float
) -> tuple[torch.Tensor, torch.Tensor, EditNoise]:
    """(noisiest inverted latent, the chain's sigmas, the stored noise) of a VAE latent."""
    if samples.ndim != 4:
        raise LLMGAInputError(f"the latent has shape {list(samples.shape)}; invert an image latent.")
    timesteps, sigmas = edit_schedule(model, steps, skip)
    sampler = InversionSampler(seed, timesteps, cfg)
    stage = {k: conds[k] for k in ("source", "inversion_negative")}
    start = _run_guided(model, stage, samples, sampler, sigmas, seed)
    return start, sigmas, EditNoise(timesteps, sampler.zs.detach().cpu())


class InjectedNoiseSampler(_StageSampler):
    """SDE-DPM-Solver++ 2M over the inversion's timesteps with its stored noise instead of fresh noise.

    Works with any GUIDER: its denoised output at σ is turned into the ε of the VP latent, as in the edit.
    """

    def __init__(self, noise: EditNoise) -> None:
        self.noise = noise

    def run(self, model_wrap: Any, sigmas: torch.Tensor, extra_args: dict, callback: Any, x: torch.Tensor):
        steps, zs = self.noise.timesteps, self.noise.zs
        if tuple(zs.shape[1:]) != tuple(x.shape) or len(sigmas) != len(steps) + 1:
            raise LLMGAInputError(
                f"the edit noise is for {len(steps)} steps on latents {list(zs.shape[1:])}, but the sampler got "
                f"{len(sigmas) - 1} steps on {list(x.shape)}: connect the latent and sigmas of the same inversion."
            )
        model = model_wrap.inner_model
        table = model.model_sampling.sigmas
        tables = NoiseTables.from_alphas_cumprod(alphas_cumprod_of(model.model_sampling)).to(x.device)
        solver = SdeDpmSolverPP2M(tables, steps, lower_order_final=True)
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
