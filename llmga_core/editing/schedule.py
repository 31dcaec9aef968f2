"""Noise-schedule tables and the timestep lists LLMGA's editing uses (llmga-spec.md 3.4).

Two timestep rules matter:

* the edit chain: ``int(linspace(T - skip/100 * T - 1, 1, steps))``, descending, e.g. [749, 733, ..., 16, 1]
  for 50 steps and skip 25;
* the DiffEdit mask's encode timestep: the img2img rule of a 50-step DPM-Solver schedule at strength 0.5,
  which is t = 500.

Both are computed with the same float64 arithmetic as numpy's ``linspace`` (``i * step + start``, exact
end point) so that the floor/round lands on the same integers as the original for every setting.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import pairwise

import torch

from ..errors import LLMGAInputError
from ..sd.geometry import LATENT_STEP

SD15_BETA_START = 0.00085
SD15_BETA_END = 0.012
SD15_TRAIN_TIMESTEPS = 1000

# The DiffEdit mask is made at the 50-step schedule's strength-0.5 point (generate_mask defaults).
MASK_SCHEDULE_STEPS = 50
MASK_ENCODE_STRENGTH = 0.5


def scaled_linear_alphas_cumprod(beta_start: float, beta_end: float, num_train_timesteps: int) -> torch.Tensor:
    """ᾱ of a scaled-linear beta schedule in float32, computed as diffusers' schedulers do.

    ComfyUI builds the same schedule in float64 and keeps σ; ᾱ recovered from that σ differs by ~5e-7, enough
    to move an edited latent past the 1e-4 parity bound, so the edit takes ᾱ from here.
    """
    betas = torch.linspace(beta_start**0.5, beta_end**0.5, num_train_timesteps, dtype=torch.float32) ** 2
    return torch.cumprod(1.0 - betas, dim=0)


def sd15_alphas_cumprod() -> torch.Tensor:
    """ᾱ of SD1.5's scaled-linear betas (0.00085..0.012, 1000 steps), in float32 as diffusers computes it."""
    return scaled_linear_alphas_cumprod(SD15_BETA_START, SD15_BETA_END, SD15_TRAIN_TIMESTEPS)


@dataclass(frozen=True)
class NoiseTables:
    """Per-timestep VP quantities, float32, indexed by the integer training timestep.

    ``alpha = √ᾱ``, ``sigma = √(1−ᾱ)``, ``lam = log alpha − log sigma`` (DPM-Solver's half log-SNR).
    """

    alphas_cumprod: torch.Tensor
    alpha: torch.Tensor
    sigma: torch.Tensor
    lam: torch.Tensor

    @classmethod
    def from_alphas_cumprod(cls, alphas_cumprod: torch.Tensor | Sequence[float]) -> NoiseTables:
        ac = torch.as_tensor(alphas_cumprod).detach()
        if ac.ndim != 1 or ac.numel() < 2:
            raise LLMGAInputError(
                f"alphas_cumprod must be a 1-D list of the model's ᾱ per training timestep (1000 values for SD1.5), "
                f"got shape {list(ac.shape)}."
            )
        # Float32 like the original scheduler, so the solver coefficients round the same way.
        ac = ac.to(device="cpu", dtype=torch.float32)
        if not bool(torch.isfinite(ac).all()) or bool((ac <= 0).any()) or bool((ac >= 1).any()):
            raise LLMGAInputError(
                "alphas_cumprod must lie strictly between 0 and 1 at every timestep (an epsilon-prediction VP "
                "model such as SD1.5); zero-terminal-SNR or v-prediction schedules are not supported by this edit."
            )
        alpha = torch.sqrt(ac)
        sigma = torch.sqrt(1 - ac)
        lam = torch.log(alpha) - torch.log(sigma)
        return cls(alphas_cumprod=ac, alpha=alpha, sigma=sigma, lam=lam)

    @property
    def num_train_timesteps(self) -> int:
        return int(self.alphas_cumprod.numel())

    def to(self, device: torch.device | str) -> NoiseTables:
        return NoiseTables(*(t.to(device) for t in (self.alphas_cumprod, self.alpha, self.sigma, self.lam)))

    def add_noise(self, x0: torch.Tensor, noise: torch.Tensor, t: int) -> torch.Tensor:
        """``√ᾱ_t·x0 + √(1−ᾱ_t)·noise`` in the latents' dtype (DDPM forward process)."""
        ac = self.alphas_cumprod.to(device=x0.device, dtype=x0.dtype)[t]
        return ac**0.5 * x0 + (1 - ac) ** 0.5 * noise


def _numpy_linspace(start: float, stop: float, num: int) -> list[float]:
    """``numpy.linspace(start, stop, num)`` value for value (float64 ``i*step + start``, exact end point)."""
    if num == 1:
        return [start]
    step = (stop - start) / (num - 1)
    if step == 0:
        return [start] * num
    values = [i * step + start for i in range(num)]
    values[-1] = stop
    return values


def edit_timesteps(steps: int, skip: float, num_train_timesteps: int = SD15_TRAIN_TIMESTEPS) -> list[int]:
    """The descending timesteps of LLMGA's inversion and sampling: ``int(linspace(T − skip%·T − 1, 1, steps))``.

    ``skip`` is a percentage of the chain left out at the noisy end (the CLI's 25 starts at t=749): the edit
    keeps more of the input the larger it is.
    """
    if isinstance(steps, bool) or not isinstance(steps, int):
        raise LLMGAInputError(f"steps must be a whole number, got {steps!r}.")
    if steps < 1:
        raise LLMGAInputError(f"steps is {steps}; use at least 1 step (LLMGA uses 50).")
    if isinstance(skip, bool) or not isinstance(skip, int | float) or not math.isfinite(skip):
        raise LLMGAInputError(f"skip must be a number (a percentage, LLMGA uses 25), got {skip!r}.")
    train = num_train_timesteps
    start = train - (skip / 100) * train - 1
    if skip < 0 or start < 1:
        raise LLMGAInputError(
            f"skip is {skip}; it is the percentage of the noise schedule left out and must be between 0 and "
            f"{100 * (train - 2) / train:g} (LLMGA uses 25; larger keeps more of the input image)."
        )
    timesteps = [int(v) for v in _numpy_linspace(start, 1.0, steps)]
    if any(a <= b for a, b in pairwise(timesteps)):
        raise LLMGAInputError(
            f"{steps} steps do not fit in the {int(start)} timesteps left after skip {skip}: two steps would share a "
            f"timestep. Use at most {int(start)} steps, or a smaller skip."
        )
    return timesteps


def mask_encode_timestep(
    strength: float = MASK_ENCODE_STRENGTH,
    num_inference_steps: int = MASK_SCHEDULE_STEPS,
    num_train_timesteps: int = SD15_TRAIN_TIMESTEPS,
) -> int:
    """Timestep at which the DiffEdit mask is measured: the img2img start of a DPM-Solver schedule.

    The schedule is ``round(linspace(0, T−1, n+1))`` reversed without its final 0; strength s starts at index
    ``n − int(n·s)``. The defaults give t = 500.
    """
    if not 0 < strength <= 1:
        raise LLMGAInputError(f"mask encode strength is {strength}; it must be in (0, 1] (LLMGA uses 0.5).")
    if num_inference_steps < 1:
        raise LLMGAInputError(f"mask schedule steps is {num_inference_steps}; use at least 1 (LLMGA uses 50).")
    grid = [round(v) for v in _numpy_linspace(0.0, float(num_train_timesteps - 1), num_inference_steps + 1)]
    schedule: list[int] = []
    for t in reversed(grid[1:]):
        if t not in schedule:
            schedule.append(int(t))
    start = max(num_inference_steps - min(int(num_inference_steps * strength), num_inference_steps), 0)
    return schedule[min(start, len(schedule) - 1)]


def check_image_size(height: int, width: int) -> tuple[int, int]:
    """Latent (height, width) of an image to edit; the image sides must be positive multiples of 8.

    The mask, the inversion and the sampling all work on the VAE latent grid, so an image whose side is not
    a multiple of 8 would lose its last rows/columns and come back a different size.
    """
    for name, side in (("height", height), ("width", width)):
        if isinstance(side, bool) or not isinstance(side, int) or side < LATENT_STEP or side % LATENT_STEP:
            raise LLMGAInputError(
                f"Image {name} is {side!r} px; editing needs both sides to be positive multiples of {LATENT_STEP}. "
                "Resize or crop the image first (LLMGA itself center-crops and resizes to 512x512)."
            )
    return height // LATENT_STEP, width // LATENT_STEP
