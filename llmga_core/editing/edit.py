"""LLMGA's whole instruction edit on latents: mask, inversion, masked sampling, in the CLI's order.

The caller owns the VAE and the prompt encoding. The original encodes the prompts differently per stage
(llmga-spec.md 3.4): the mask uses target and source LPW-encoded to a common length, the inversion the source
truncated to 77 tokens with a 77-token "" as uncond, the sampling the target LPW-encoded (up to 4 chunks) with
"" padded to the same length. :class:`EditConds` carries one conditioning per use; the mask ones default to
the sampling target and the inversion source.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from ..errors import LLMGAInputError
from .denoiser import Denoiser, EpsFn, InterruptFn, ProgressFn, as_denoiser
from .inversion import SOURCE_CFG, Inversion, check_latent, invert
from .mask import NUM_MAPS, THRESHOLD_RATIO, diffedit_mask
from .sampling import TARGET_CFG, sample
from .schedule import edit_timesteps

STEPS = 50
SKIP = 25


@dataclass(frozen=True)
class EditConds:
    target: Any  # target prompt, for sampling
    source: Any  # source prompt, for inversion (None: invert unconditionally)
    inversion_uncond: Any  # "" for the inversion
    sampling_uncond: Any = None  # "" for sampling; defaults to inversion_uncond
    mask_target: Any = None  # defaults to target
    mask_source: Any = None  # defaults to source


@dataclass(frozen=True)
class EditResult:
    latent: torch.Tensor  # edited clean latent [B, C, h, w] (decode with the VAE after ÷0.18215)
    mask: torch.Tensor  # [B, 1, h, w] 0/1 at latent resolution
    inversion: Inversion


def edit(
    model: Denoiser | EpsFn,
    x0: torch.Tensor,
    conds: EditConds,
    alphas_cumprod: torch.Tensor,
    generator: torch.Generator | None,
    *,
    steps: int = STEPS,
    skip: float = SKIP,
    source_cfg: float = SOURCE_CFG,
    target_cfg: float = TARGET_CFG,
    mask: torch.Tensor | None = None,
    mask_latents: torch.Tensor | None = None,
    num_maps: int = NUM_MAPS,
    threshold_ratio: float = THRESHOLD_RATIO,
    progress: ProgressFn | None = None,
    check_interrupt: InterruptFn | None = None,
) -> EditResult:
    """Edit ``x0`` (VAE mode ×0.18215). Without ``mask``, the DiffEdit mask is computed first from
    ``mask_latents`` (default ``x0``), as the CLI does, then the inversion draws its noises from the same
    ``generator``. ``progress(done, total)`` counts UNet steps over the whole edit (1 + 2·steps)."""
    check_latent(x0, "x0")
    denoiser = as_denoiser(model)
    timesteps = edit_timesteps(steps, skip, int(torch.as_tensor(alphas_cumprod).numel()))
    n = len(timesteps)
    total = 2 * n + (1 if mask is None else 0)
    offset = 0

    def stage_progress(done: int, _stage_total: int) -> None:
        if progress is not None:
            progress(offset + done, total)

    if mask is None:
        if (conds.source if conds.mask_source is None else conds.mask_source) is None:
            raise LLMGAInputError(
                "The edit mask compares the target and source prompts: give a source conditioning (or a mask)."
            )
        mask = diffedit_mask(
            denoiser,
            x0 if mask_latents is None else mask_latents,
            conds.target if conds.mask_target is None else conds.mask_target,
            conds.source if conds.mask_source is None else conds.mask_source,
            alphas_cumprod,
            generator,
            num_maps=num_maps,
            threshold_ratio=threshold_ratio,
            progress=stage_progress,
            check_interrupt=check_interrupt,
        )
        offset += 1
    inversion = invert(
        denoiser,
        x0,
        conds.source,
        conds.inversion_uncond,
        alphas_cumprod,
        timesteps,
        generator,
        source_cfg=source_cfg,
        progress=stage_progress,
        check_interrupt=check_interrupt,
    )
    offset += n
    latent = sample(
        denoiser,
        inversion.start,
        inversion.zs,
        timesteps,
        conds.target,
        conds.inversion_uncond if conds.sampling_uncond is None else conds.sampling_uncond,
        alphas_cumprod,
        mask,
        target_cfg=target_cfg,
        progress=stage_progress,
        check_interrupt=check_interrupt,
    )
    return EditResult(latent=latent, mask=mask, inversion=inversion)
