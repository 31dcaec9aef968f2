"""The SDE-DPM-Solver++ 2M step against closed forms derived independently."""

from __future__ import annotations

import torch

from llmga_core.editing import NoiseTables, SdeDpmSolverPP2M, sd15_alphas_cumprod


def tables64() -> NoiseTables:
    ac = sd15_alphas_cumprod().double()
    return NoiseTables(ac, ac.sqrt(), (1 - ac).sqrt(), ac.sqrt().log() - (1 - ac).sqrt().log())


def test_first_order_step_is_the_ddpm_posterior() -> None:
    # With the exact noise, x0 is predicted exactly and one step is q(x_t | x_s, x0) of DDPM:
    # mean = (α_s/α_t)·σ_t²/σ_s²·x_s + α_t·(1 − (α_s/α_t)²σ_t²/σ_s²)·x0, var = σ_t²·(1 − (α_s/α_t)²σ_t²/σ_s²).
    tab = tables64()
    s, t = 700, 350
    x0, noise = torch.randn(2, 4, 3, 3, dtype=torch.float64), torch.randn(2, 4, 3, 3, dtype=torch.float64)
    xs = tab.alpha[s] * x0 + tab.sigma[s] * noise
    mean, std = SdeDpmSolverPP2M(tab, [s, t]).mean_and_std(0, noise, xs)
    ratio = (tab.alpha[s] / tab.alpha[t]) ** 2 * tab.sigma[t] ** 2 / tab.sigma[s] ** 2
    keep = (tab.alpha[s] / tab.alpha[t]) * tab.sigma[t] ** 2 / tab.sigma[s] ** 2
    expected = keep * xs + tab.alpha[t] * (1 - ratio) * x0
    torch.testing.assert_close(mean, expected)
    torch.testing.assert_close(std, tab.sigma[t] * (1 - ratio).sqrt())


def test_second_order_adds_the_midpoint_correction() -> None:
    tab = tables64()
    steps = [800, 500, 200]
    x0_a, x0_b, x = (torch.randn(1, 4, 2, 2, dtype=torch.float64) for _ in range(3))
    eps_for = lambda x0, xt, s: (xt - tab.alpha[s] * x0) / tab.sigma[s]  # noqa: E731  (ε whose x0-prediction is x0)
    solver = SdeDpmSolverPP2M(tab, steps)
    solver.mean_and_std(0, eps_for(x0_a, x, 800), x)
    mean, _ = solver.mean_and_std(1, eps_for(x0_b, x, 500), x)
    h = tab.lam[200] - tab.lam[500]
    r0 = (tab.lam[500] - tab.lam[800]) / h
    first = tab.sigma[200] / tab.sigma[500] * torch.exp(-h) * x + tab.alpha[200] * (1 - torch.exp(-2 * h)) * x0_b
    correction = 0.5 * tab.alpha[200] * (1 - torch.exp(-2 * h)) * (x0_b - x0_a) / r0
    torch.testing.assert_close(mean, first + correction)
    # a constant x0-prediction has no correction
    solver = SdeDpmSolverPP2M(tab, steps)
    solver.mean_and_std(0, eps_for(x0_b, x, 800), x)
    torch.testing.assert_close(solver.mean_and_std(1, eps_for(x0_b, x, 500), x)[0], first)


def test_last_step_goes_to_t0_and_lower_order_final_only_below_15_steps() -> None:
    tab = tables64()
    x = torch.randn(1, 4, 2, 2, dtype=torch.float64)
    for n, expect_first_order in [(10, True), (14, True), (15, False)]:
        steps = list(range(n * 10, 0, -10))
        x0s = [torch.randn_like(x) for _ in steps]
        solver = SdeDpmSolverPP2M(tab, steps, lower_order_final=True)
        for i, s in enumerate(steps):
            mean, _ = solver.mean_and_std(i, (x - tab.alpha[s] * x0s[i]) / tab.sigma[s], x)
        assert solver.next_timestep(n - 1) == 0
        h = tab.lam[0] - tab.lam[10]
        first = tab.sigma[0] / tab.sigma[10] * torch.exp(-h) * x + tab.alpha[0] * (1 - torch.exp(-2 * h)) * x0s[-1]
        assert torch.allclose(mean, first) == expect_first_order
