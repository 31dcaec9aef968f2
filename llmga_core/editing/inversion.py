"""Edit-friendly DDPM inversion (Huberman-Spiegelglas et al.) for the SDE-DPM-Solver++ 2M chain.

LLMGA (llmga-spec.md 3.4 step 2) noises the clean latent independently at every timestep of the chain,
``x_t = √ᾱ_t·x0 + √(1−ᾱ_t)·ε_t`` (noise drawn in ascending-t order), then walks the chain from the noisiest
latent down and, at each step, solves the solver's update for the noise ``z_t`` that lands exactly on the next
stored latent. The ε̂ of every step is classifier-free guided with the source prompt (scale 3.5). Each target
latent is replaced by the solver's own ``μ + std·z`` so the sampling loop, reusing the ``z``, retraces it.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import pairwise
from typing import Any

import torch

from ..errors import LLMGAInputError
from .denoiser import Denoiser, EpsFn, Hooks, InterruptFn, ProgressFn, as_denoiser, noise_like
from .schedule import NoiseTables
from .solver import SdeDpmSolverPP2M

SOURCE_CFG = 3.5


@dataclass(frozen=True)
class Inversion:
    """Result of :func:`invert`, everything in sampling (descending-t) order.

    ``zs[i]`` is the noise of the step from ``timesteps[i]``; ``xts[i]`` the latent at ``timesteps[i]`` for
    i < N, and ``xts[N]`` the latent at t = 0 the chain ends on (≈ the input latent). Sampling starts from
    ``xts[0]``.
    """

    timesteps: list[int]
    zs: torch.Tensor  # [N, B, C, h, w]
    xts: torch.Tensor  # [N + 1, B, C, h, w]

    @property
    def start(self) -> torch.Tensor:
        return self.xts[0]


def check_latent(x: torch.Tensor, name: str) -> None:
    if not isinstance(x, torch.Tensor) or not x.is_floating_point():
        raise LLMGAInputError(f"{name} must be a floating-point latent tensor, got {type(x).__name__}.")
    if x.ndim != 4 or min(x.shape) < 1:
        raise LLMGAInputError(
            f"{name} must be a latent batch [batch, channels, height, width], got shape {list(x.shape)}. Encode the "
            "image with the VAE first (the image side must be a multiple of 8)."
        )


def check_timesteps(timesteps: list[int], num_train_timesteps: int) -> list[int]:
    steps = [int(t) for t in timesteps]
    if not steps:
        raise LLMGAInputError("The timestep list is empty; use at least 1 step.")
    out_of_range = any(not 0 < t < num_train_timesteps for t in steps)
    if out_of_range or any(a <= b for a, b in pairwise(steps)):
        raise LLMGAInputError(
            f"Timesteps must be strictly decreasing and within 1..{num_train_timesteps - 1}, got {steps}. Build them "
            "with edit_timesteps(steps, skip)."
        )
    return steps


def check_scale(value: float, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or value != value or abs(value) == float("inf"):
        raise LLMGAInputError(f"{name} must be a finite number, got {value!r}.")
    return float(value)


def invert(
    model: Denoiser | EpsFn,
    x0: torch.Tensor,
    source_cond: Any,
    uncond: Any,
    alphas_cumprod: torch.Tensor,
    timesteps: list[int],
    generator: torch.Generator | None,
    *,
    source_cfg: float = SOURCE_CFG,
    progress: ProgressFn | None = None,
    check_interrupt: InterruptFn | None = None,
) -> Inversion:
    """Invert the clean latent ``x0`` (VAE mode ×0.18215) along ``timesteps`` (see :func:`edit_timesteps`).

    ``source_cond`` may be None: the original then inverts with the unconditional prediction alone.
    ``generator`` draws the N per-timestep noises.
    """
    check_latent(x0, "x0")
    denoiser = as_denoiser(model)
    tables = NoiseTables.from_alphas_cumprod(alphas_cumprod).to(x0.device)
    steps = check_timesteps(timesteps, tables.num_train_timesteps)
    scale = check_scale(source_cfg, "source_cfg")
    n = len(steps)

    xts = torch.empty((n + 1, *x0.shape), device=x0.device, dtype=x0.dtype)
    xts[n] = x0
    for i in reversed(range(n)):  # the original draws the noises from the smallest t up
        xts[i] = tables.add_noise(x0, noise_like(x0, x0.shape, generator), steps[i])

    zs = torch.empty((n, *x0.shape), device=x0.device, dtype=x0.dtype)
    solver = SdeDpmSolverPP2M(tables, steps)
    hooks = Hooks(progress, check_interrupt)
    conds = [uncond] if source_cond is None else [uncond, source_cond]
    for i, t in enumerate(steps):
        hooks.before_step()
        x = xts[i]
        preds = denoiser.predict(x, t, conds)
        eps = preds[0] if source_cond is None else preds[0] + scale * (preds[1] - preds[0])
        mean, std = solver.mean_and_std(i, eps, x)
        z = (xts[i + 1] - mean) / std
        zs[i] = z
        xts[i + 1] = mean + std * z  # the solver's own rounding, so sampling retraces it exactly
        hooks.after_step(i + 1, n)
    return Inversion(timesteps=steps, zs=zs, xts=xts)
