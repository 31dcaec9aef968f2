"""The 4-step x0-predicting DDPM that produces DiffRIR's 256-d image prior (llmga-spec.md 4.3).

Sampling starts from Gaussian noise and, for t = T-1 .. 0, replaces the state by the posterior mean
``coef1[t] * x0_hat + coef2[t] * x`` of q(x_{t-1} | x_t, x0_hat). No noise is re-injected, so the only
randomness is the starting noise, which the caller passes in (seeded), and the result is ``x0_hat`` at t=0
(``coef1[0] = 1``, ``coef2[0] = 0``).

The module keeps the 12 schedule buffers that released checkpoints carry (``diffusion.betas`` ...), computed
the same way as upstream (float64 numpy-style maths, stored as float32), so a released dict loads strictly.
"""

from __future__ import annotations

import torch
from torch import nn

SCHEDULE_BUFFERS: tuple[str, ...] = (
    "betas",
    "alphas_cumprod",
    "alphas_cumprod_prev",
    "sqrt_alphas_cumprod",
    "sqrt_one_minus_alphas_cumprod",
    "log_one_minus_alphas_cumprod",
    "sqrt_recip_alphas_cumprod",
    "sqrt_recipm1_alphas_cumprod",
    "posterior_variance",
    "posterior_log_variance_clipped",
    "posterior_mean_coef1",
    "posterior_mean_coef2",
)


def linear_schedule(timesteps: int, linear_start: float, linear_end: float) -> dict[str, torch.Tensor]:
    """All 12 schedule vectors for the "linear" beta schedule: ``beta = linspace(sqrt(s), sqrt(e), T)**2``.

    Computed in float64 and returned as float32, matching the stored buffers.
    """
    betas = torch.linspace(linear_start**0.5, linear_end**0.5, timesteps, dtype=torch.float64) ** 2
    alphas = 1.0 - betas
    ac = torch.cumprod(alphas, dim=0)
    ac_prev = torch.cat([torch.ones(1, dtype=torch.float64), ac[:-1]])
    post_var = betas * (1.0 - ac_prev) / (1.0 - ac)  # v_posterior = 0
    values = {
        "betas": betas,
        "alphas_cumprod": ac,
        "alphas_cumprod_prev": ac_prev,
        "sqrt_alphas_cumprod": ac.sqrt(),
        "sqrt_one_minus_alphas_cumprod": (1.0 - ac).sqrt(),
        "log_one_minus_alphas_cumprod": (1.0 - ac).log(),
        "sqrt_recip_alphas_cumprod": (1.0 / ac).sqrt(),
        "sqrt_recipm1_alphas_cumprod": (1.0 / ac - 1.0).sqrt(),
        "posterior_variance": post_var,
        "posterior_log_variance_clipped": post_var.clamp(min=1e-20).log(),
        "posterior_mean_coef1": betas * ac_prev.sqrt() / (1.0 - ac),
        "posterior_mean_coef2": (1.0 - ac_prev) * alphas.sqrt() / (1.0 - ac),
    }
    return {name: values[name].to(torch.float32) for name in SCHEDULE_BUFFERS}


class PriorDiffusion(nn.Module):
    """``diffusion``: holds (references to) the condition encoder and the denoiser plus the schedule.

    ``model`` and ``condition`` are the very same modules as the network's ``denoise`` and ``condition``;
    registering them here too reproduces the duplicated ``diffusion.model.*`` / ``diffusion.condition.*``
    keys of released checkpoints.
    """

    def __init__(
        self, denoiser: nn.Module, condition: nn.Module, timesteps: int, linear_start: float, linear_end: float
    ) -> None:
        super().__init__()
        self.model = denoiser
        self.condition = condition
        self.num_timesteps = timesteps
        for name, value in linear_schedule(timesteps, linear_start, linear_end).items():
            self.register_buffer(name, value)

    def sample(self, cond: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        """Run the reverse chain from ``noise`` ``[B, 256]`` given the condition vector ``[B, 256]``."""
        x = noise.to(cond.dtype)
        b = x.shape[0]
        for i in reversed(range(self.num_timesteps)):
            t = torch.full((b,), i, device=x.device, dtype=torch.long)
            x0_hat = self.model(x, t, cond)
            coef1 = self.posterior_mean_coef1[i].to(x.dtype)
            coef2 = self.posterior_mean_coef2[i].to(x.dtype)
            x = coef1 * x0_hat + coef2 * x
        return x

    def forward(self, x6: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        if noise.shape[0] != x6.shape[0]:
            raise ValueError(f"prior noise has batch {noise.shape[0]} but the image batch is {x6.shape[0]}")
        return self.sample(self.condition(x6), noise.to(device=x6.device))
