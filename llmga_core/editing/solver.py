"""One step of the second-order SDE-DPM-Solver++ (2M, midpoint) over an explicit timestep list.

A step from ``x_s`` to ``x_s'`` (``s' `` the next, smaller timestep; 0 after the last) is

    x_s' = μ + std·z,   μ = (σ_s'/σ_s)·e^{−h}·x_s + α_s'(1−e^{−2h})·(D0 + ½·D1),   std = σ_s'·√(1−e^{−2h})

with ``h = λ_s' − λ_s``, ``D0`` the current x0-prediction and ``D1 = (D0 − D_prev)/r0``,
``r0 = (λ_s − λ_prev)/h`` (``D1`` is dropped on the first step). Inversion solves this for ``z`` so that the
step lands on a given ``x_s'``; sampling adds the stored ``z``. The arithmetic follows the original
scheduler term by term in float32, so a sampling step that reuses an inverted ``z`` with the same ε̂
reproduces the inverted latent to the last bits.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from .schedule import NoiseTables

# The original scheduler's `lower_order_final`: short chains finish with a first-order step.
LOWER_ORDER_FINAL_BELOW = 15


class SdeDpmSolverPP2M:
    """Stateful stepper: call :meth:`mean_and_std` once per timestep, in order."""

    def __init__(self, tables: NoiseTables, timesteps: Sequence[int], lower_order_final: bool = False) -> None:
        self.tables = tables
        self.timesteps = [int(t) for t in timesteps]
        # Only the sampling loop of the original applies it (through scheduler.step); the inversion's own
        # noise solver always goes second order after the first step.
        self.lower_order_final = lower_order_final and len(self.timesteps) < LOWER_ORDER_FINAL_BELOW
        self._previous_x0: torch.Tensor | None = None

    def next_timestep(self, index: int) -> int:
        return self.timesteps[index + 1] if index + 1 < len(self.timesteps) else 0

    def mean_and_std(self, index: int, eps: torch.Tensor, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(μ, std) of the step from ``x`` at ``timesteps[index]`` given the noise prediction ``eps``."""
        tab = self.tables
        s, t = self.timesteps[index], self.next_timestep(index)
        x0 = (x - tab.sigma[s] * eps) / tab.alpha[s]
        previous, self._previous_x0 = self._previous_x0, x0

        alpha_t, sigma_t, sigma_s = tab.alpha[t], tab.sigma[t], tab.sigma[s]
        h = tab.lam[t] - tab.lam[s]
        last = index == len(self.timesteps) - 1
        if previous is None or (self.lower_order_final and last):
            mean = (sigma_t / sigma_s * torch.exp(-h)) * x + (alpha_t * (1 - torch.exp(-2.0 * h))) * x0
        else:
            s_prev = self.timesteps[index - 1]
            r0 = (tab.lam[s] - tab.lam[s_prev]) / h
            d1 = (1.0 / r0) * (x0 - previous)
            mean = (
                (sigma_t / sigma_s * torch.exp(-h)) * x
                + (alpha_t * (1 - torch.exp(-2.0 * h))) * x0
                + 0.5 * (alpha_t * (1 - torch.exp(-2.0 * h))) * d1
            )
        std = sigma_t * torch.sqrt(1.0 - torch.exp(-2 * h))
        return mean, std
