"""DiffEdit edit mask: where the target and source prompts disagree about the noise.

LLMGA (llmga-spec.md 3.4 step 1) noises the image latent at t = 500 with ``num_maps`` = 10 independent noise
draws, predicts ε̂ under the target and the source prompt, averages ``|ε̂_target − ε̂_source|`` over the maps and
the channels, and keeps the latent pixels where that map exceeds half of ``ratio``·mean, ratio 3.0: i.e.
``|Δε| > 1.5·mean(|Δε|)``.

The original classifier-free-guides both predictions with 7.5 but with cond and uncond swapped, so its map is
``|1 − 7.5|·|ε̂_t − ε̂_s|``: the unconditional prediction cancels and the threshold is scale-invariant. The
mask is therefore computed from the two conditional predictions alone, half of the original's UNet work.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from ..errors import LLMGAInputError
from .denoiser import Denoiser, EpsFn, Hooks, InterruptFn, ProgressFn, as_denoiser, noise_like
from .schedule import NoiseTables, mask_encode_timestep

NUM_MAPS = 10
THRESHOLD_RATIO = 3.0
# |ε̂_target − ε̂_source| at or below this fraction of mean |ε̂| is rounding, not disagreement (guidance_map)
ROUNDING_FLOOR = 2.0**-12


def _check_latents(latents: torch.Tensor, num_maps: int) -> torch.Tensor:
    """Return [B, num_maps, C, h, w] from [B, C, h, w] (one latent per image) or [B, num_maps, C, h, w]."""
    if not isinstance(latents, torch.Tensor) or not latents.is_floating_point():
        raise LLMGAInputError(f"latents must be a floating-point tensor, got {type(latents).__name__}.")
    if latents.ndim == 4:
        return latents.unsqueeze(1).expand(-1, num_maps, -1, -1, -1)
    if latents.ndim == 5 and latents.shape[1] == num_maps:
        return latents
    raise LLMGAInputError(
        f"latents must be [batch, channels, height, width] (or [batch, {num_maps}, channels, height, width] with one "
        f"VAE sample per noise map), got shape {list(latents.shape)}."
    )


def guidance_map(
    model: Denoiser | EpsFn,
    latents: torch.Tensor,
    target_cond: Any,
    source_cond: Any,
    alphas_cumprod: torch.Tensor,
    generator: torch.Generator | None,
    *,
    num_maps: int = NUM_MAPS,
    encode_timestep: int | None = None,
    progress: ProgressFn | None = None,
    check_interrupt: InterruptFn | None = None,
) -> torch.Tensor:
    """Mean over noise maps and channels of ``|ε̂_target − ε̂_source|`` at the encode timestep: [B, h, w]."""
    if isinstance(num_maps, bool) or not isinstance(num_maps, int) or num_maps < 1:
        raise LLMGAInputError(f"num_maps is {num_maps!r}; it must be a positive whole number (LLMGA uses 10).")
    denoiser = as_denoiser(model)
    tables = NoiseTables.from_alphas_cumprod(alphas_cumprod)
    t = encode_timestep
    if t is None:
        t = mask_encode_timestep(num_train_timesteps=tables.num_train_timesteps)
    if not 0 <= int(t) < tables.num_train_timesteps:
        raise LLMGAInputError(f"encode timestep {t} is outside 0..{tables.num_train_timesteps - 1}.")
    maps = _check_latents(latents, num_maps)
    batch = maps.shape[0]
    flat = maps.reshape(batch * num_maps, *maps.shape[2:])
    noisy = tables.add_noise(flat, noise_like(flat, flat.shape, generator), int(t))

    hooks = Hooks(progress, check_interrupt)
    hooks.before_step()
    eps_target, eps_source = denoiser.predict(noisy, int(t), [target_cond, source_cond])
    hooks.after_step(1, 1)
    difference = (eps_target - eps_source).abs()
    # Identical prompts must give a zero map on every CPU: the two predictions are different rows of one batch,
    # and some SIMD paths (AVX2) round batch rows differently, which threshold_map's 0/0 rule would read as
    # disagreement. Differences at rounding level (far below any real disagreement) count as none.
    floor = ROUNDING_FLOOR * eps_source.abs().mean()
    difference = torch.where(difference <= floor, torch.zeros_like(difference), difference)
    return difference.reshape(batch, num_maps, *flat.shape[1:]).mean([1, 2])


def threshold_map(guidance: torch.Tensor, ratio: float = THRESHOLD_RATIO) -> torch.Tensor:
    """Binary mask [B, 1, h, w] (float 0/1): 0 where ``clamp(map, 0, ratio·mean)/(ratio·mean) <= 0.5``, else 1.

    The mean is per image (for one image, as LLMGA runs it, this is the original's whole-batch mean). A map that
    is zero everywhere (identical prompts) gives 0/0 and, as in the original, an all-ones mask.
    """
    if not ratio > 0:
        raise LLMGAInputError(f"mask threshold ratio is {ratio}; it must be positive (LLMGA uses 3.0).")
    clamp_magnitude = guidance.mean(dim=(-2, -1), keepdim=True) * ratio
    relative = torch.minimum(guidance.clamp(min=0), clamp_magnitude) / clamp_magnitude
    return torch.where(relative <= 0.5, 0.0, 1.0).to(guidance.dtype).unsqueeze(1)


def diffedit_mask(
    model: Denoiser | EpsFn,
    latents: torch.Tensor,
    target_cond: Any,
    source_cond: Any,
    alphas_cumprod: torch.Tensor,
    generator: torch.Generator | None,
    *,
    num_maps: int = NUM_MAPS,
    threshold_ratio: float = THRESHOLD_RATIO,
    encode_timestep: int | None = None,
    progress: ProgressFn | None = None,
    check_interrupt: InterruptFn | None = None,
) -> torch.Tensor:
    """LLMGA's edit mask at latent resolution, [B, 1, h, w] with values 0/1 (1 = region to edit).

    ``latents`` are the VAE latents of the image (×0.18215): [B, C, h, w], or [B, num_maps, C, h, w] to give
    each noise map its own VAE sample as the original does. ``generator`` draws the map noise.
    """
    guidance = guidance_map(
        model,
        latents,
        target_cond,
        source_cond,
        alphas_cumprod,
        generator,
        num_maps=num_maps,
        encode_timestep=encode_timestep,
        progress=progress,
        check_interrupt=check_interrupt,
    )
    return threshold_map(guidance, threshold_ratio)


def latent_mask(mask: torch.Tensor, image_hw: tuple[int, int], latent_hw: tuple[int, int]) -> torch.Tensor:
    """An image-size MASK ([B, H, W] or [H, W]) as [B, 1, h, w] 0/1: a latent pixel is edited when half its
    block is."""
    m = mask if mask.ndim == 3 else mask.reshape(-1, *mask.shape[-2:])
    if tuple(m.shape[-2:]) != tuple(image_hw):
        raise LLMGAInputError(
            f"the mask is {m.shape[-1]}x{m.shape[-2]} px but the image is {image_hw[1]}x{image_hw[0]}; give a mask "
            "of the image's size (white = region to edit)."
        )
    area = F.interpolate(m[:, None].float().clamp(0, 1), size=latent_hw, mode="area")
    return (area >= 0.5).float()


def posterior_samples(
    mean: torch.Tensor, logvar: torch.Tensor, num_maps: int, generator: torch.Generator | None
) -> torch.Tensor:
    """``num_maps`` draws of the VAE's diagonal Gaussian posterior per image, [B, num_maps, C, h, w].

    LLMGA's mask stage VAE-encodes the image repeated ``num_maps`` times and takes ``latent_dist.sample()``:
    ``mean + exp(½·clamp(logvar, −30, 20))·ε`` with one ε draw for all maps, in that order.
    """
    if mean.shape != logvar.shape or mean.ndim != 4:
        raise LLMGAInputError(f"VAE posterior mean {list(mean.shape)} and log-variance {list(logvar.shape)} differ.")
    means = mean.repeat_interleave(num_maps, dim=0)
    std = torch.exp(0.5 * logvar.clamp(-30.0, 20.0)).repeat_interleave(num_maps, dim=0)
    draws = means + std * noise_like(means, means.shape, generator)
    return draws.reshape(mean.shape[0], num_maps, *mean.shape[1:])
