"""Edit-friendly inversion: the sampling loop retraces it; callbacks; input checks."""

from __future__ import annotations

import pytest
import torch

from llmga_core.editing import Denoiser, edit_timesteps, invert, prepare_mask, sample
from llmga_core.errors import LLMGAInputError
from tests.core.editing.conftest import Golden, generator

COND = "inversion_source_cond"
UNCOND = "inversion_uncond"


def reconstruct(model: Denoiser, golden: Golden, x0: torch.Tensor, alphas: torch.Tensor, steps: int, **kwargs):
    cond, uncond = golden.get("s10_skip25", COND), golden.get("s10_skip25", UNCOND)
    timesteps = edit_timesteps(steps, 25)
    inversion = invert(model, x0, cond, uncond, alphas, timesteps, generator(9), source_cfg=3.5)
    out = sample(model, inversion.start, inversion.zs, timesteps, cond, uncond, alphas, None, target_cfg=3.5, **kwargs)
    return inversion, out


@pytest.mark.parametrize("model_name", ["single", "batched"])
def test_same_prompt_and_cfg_reconstruct_the_input(
    golden: Golden, alphas: torch.Tensor, model_name: str, request: pytest.FixtureRequest
) -> None:
    model = request.getfixturevalue(model_name)
    x0 = golden.get("s10_skip25", "x0")
    inversion, out = reconstruct(model, golden, x0, alphas, 16)
    assert (out - x0).abs().max() <= 1e-4
    assert torch.equal(out, inversion.xts[-1])  # the loop retraces the inverted chain bit for bit
    assert (inversion.start - x0).abs().max() > 0.5  # and it started far from the input


def test_short_chains_end_first_order_like_the_original(golden: Golden, single: Denoiser, alphas: torch.Tensor) -> None:
    # Below 15 steps the original sampler's last step is first order while the inversion's is second order,
    # so the last step does not retrace; with lower_order_final off it does.
    x0 = golden.get("s10_skip25", "x0")
    _, quirky = reconstruct(single, golden, x0, alphas, 10)
    _, exact = reconstruct(single, golden, x0, alphas, 10, lower_order_final=False)
    assert (quirky - x0).abs().max() > 1e-3
    assert (exact - x0).abs().max() <= 1e-4


def test_non_square_batch_reconstructs(single: Denoiser, alphas: torch.Tensor) -> None:
    x0 = torch.randn(2, 4, 8, 12, generator=generator(1)) * 0.5
    cond = torch.randn(1, 77, 32, generator=generator(2))
    uncond = torch.randn(1, 77, 32, generator=generator(3))
    timesteps = edit_timesteps(16, 40)
    inversion = invert(single, x0, cond, uncond, alphas, timesteps, generator(4))
    assert inversion.zs.shape == (16, 2, 4, 8, 12) and inversion.xts.shape == (17, 2, 4, 8, 12)
    assert inversion.timesteps == timesteps
    out = sample(
        single, inversion.start, inversion.zs, timesteps, cond, uncond, alphas, torch.ones(8, 12), target_cfg=7.5
    )
    # the sampling cfg differs from the inversion's 3.5, so this is an edit, not a reconstruction
    assert (out - x0).abs().max() > 1e-3
    out = sample(single, inversion.start, inversion.zs, timesteps, cond, uncond, alphas, None, target_cfg=3.5)
    assert (out - x0).abs().max() <= 1e-4


def test_outside_the_mask_only_the_unconditional_prediction_guides(
    alphas: torch.Tensor, monkeypatch: pytest.MonkeyPatch
) -> None:
    # ε̂ = ε_u + cfg·(ε_t − ε_u)·M: with ε_u = 0 and ε_t = 1, a step sees cfg inside M and 0 outside.
    seen: list[torch.Tensor] = []
    mask = torch.zeros(1, 1, 2, 2)
    mask[..., 0, 0] = 1

    def eps(x: torch.Tensor, t: int, cond: str) -> torch.Tensor:
        return torch.zeros_like(x) if cond == "u" else torch.ones_like(x)

    from llmga_core.editing import solver as solver_module

    original = solver_module.SdeDpmSolverPP2M.mean_and_std

    def spy(self, index, eps_hat, x):
        seen.append(eps_hat.clone())
        return original(self, index, eps_hat, x)

    monkeypatch.setattr(solver_module.SdeDpmSolverPP2M, "mean_and_std", spy)
    sample(eps, torch.zeros(1, 4, 2, 2), torch.zeros(1, 1, 4, 2, 2), [500], "t", "u", alphas, mask, target_cfg=7.5)
    assert seen[0][0, :, 0, 0].eq(7.5).all()
    assert seen[0][0, :, 1, 1].eq(0).all()


def test_cfg_at_most_one_uses_the_target_prediction_alone(alphas: torch.Tensor) -> None:
    calls: list[str] = []

    def eps(x: torch.Tensor, t: int, cond: str) -> torch.Tensor:
        calls.append(cond)
        return torch.zeros_like(x)

    sample(eps, torch.zeros(1, 4, 2, 2), torch.zeros(2, 1, 4, 2, 2), [500, 100], "t", "u", alphas, None, target_cfg=1.0)
    assert calls == ["t", "t"]


def test_empty_source_inverts_unconditionally(alphas: torch.Tensor) -> None:
    calls: list[object] = []

    def eps(x: torch.Tensor, t: int, cond: object) -> torch.Tensor:
        calls.append(cond)
        return torch.zeros_like(x)

    invert(eps, torch.zeros(1, 4, 2, 2), None, "u", alphas, [500, 100], None)
    assert calls == ["u", "u"]


def test_progress_and_interrupt_once_per_step(alphas: torch.Tensor) -> None:
    progress: list[tuple[int, int]] = []
    checks: list[int] = []

    def eps(x: torch.Tensor, t: int, cond: object) -> torch.Tensor:
        return torch.zeros_like(x)

    def check() -> None:
        checks.append(1)
        if len(checks) == 3:
            raise InterruptedError

    x0 = torch.zeros(1, 4, 2, 2)
    inversion = invert(
        eps, x0, "s", "u", alphas, [700, 500, 300, 100], None, progress=lambda d, n: progress.append((d, n))
    )
    assert progress == [(1, 4), (2, 4), (3, 4), (4, 4)]
    with pytest.raises(InterruptedError):
        sample(eps, inversion.start, inversion.zs, inversion.timesteps, "t", "u", alphas, None, check_interrupt=check)
    assert len(checks) == 3


def test_seed_decides_the_inversion_noise(golden: Golden, alphas: torch.Tensor) -> None:
    def eps(x: torch.Tensor, t: int, cond: object) -> torch.Tensor:
        return torch.zeros_like(x)

    x0 = golden.get("s10_skip25", "x0")
    a = invert(eps, x0, None, "u", alphas, [500, 100], generator(1))
    b = invert(eps, x0, None, "u", alphas, [500, 100], generator(1))
    c = invert(eps, x0, None, "u", alphas, [500, 100], generator(2))
    assert torch.equal(a.zs, b.zs) and not torch.equal(a.zs, c.zs)


@pytest.mark.parametrize(
    ("mask", "message"),
    [
        (torch.ones(4, 4), "latent resolution 8x8"),
        (torch.ones(3, 1, 8, 8), "latent resolution"),
        (torch.full((8, 8), 2.0), "between 0 and 1"),
        (torch.ones(1, 2, 8, 8), "latent resolution"),
        ([[1.0]], "must be a tensor"),
    ],
)
def test_bad_masks(mask: object, message: str) -> None:
    with pytest.raises(LLMGAInputError, match=message):
        prepare_mask(mask, torch.zeros(2, 4, 8, 8))  # type: ignore[arg-type]


def test_masks_are_binarised_and_broadcast() -> None:
    m = prepare_mask(torch.tensor([[0.2, 0.5], [0.7, 0.49]]), torch.zeros(3, 4, 2, 2))
    assert m.shape == (3, 1, 2, 2)
    assert m[2, 0].tolist() == [[0.0, 1.0], [1.0, 0.0]]


def test_bad_inversion_and_sampling_inputs(alphas: torch.Tensor) -> None:
    def eps(x: torch.Tensor, t: int, cond: object) -> torch.Tensor:
        return torch.zeros_like(x)

    x = torch.zeros(1, 4, 2, 2)
    with pytest.raises(LLMGAInputError, match="strictly decreasing"):
        invert(eps, x, "s", "u", alphas, [100, 500], None)
    with pytest.raises(LLMGAInputError, match="strictly decreasing"):
        invert(eps, x, "s", "u", alphas, [1000], None)
    with pytest.raises(LLMGAInputError, match="empty"):
        invert(eps, x, "s", "u", alphas, [], None)
    with pytest.raises(LLMGAInputError, match="latent batch"):
        invert(eps, torch.zeros(4, 2, 2), "s", "u", alphas, [500], None)
    with pytest.raises(LLMGAInputError, match="source_cfg"):
        invert(eps, x, "s", "u", alphas, [500], None, source_cfg=float("inf"))
    with pytest.raises(LLMGAInputError, match="zs has shape"):
        sample(eps, x, torch.zeros(1, 1, 4, 2, 2), [500, 100], "t", "u", alphas)
    with pytest.raises(LLMGAInputError, match="denoiser"):
        sample(42, x, torch.zeros(1, 1, 4, 2, 2), [500], "t", "u", alphas)  # type: ignore[arg-type]
