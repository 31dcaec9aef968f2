"""Timesteps, encode timestep, ᾱ/λ tables and input checks."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from diffusers import DPMSolverMultistepScheduler
from hypothesis import given, settings
from hypothesis import strategies as st

from llmga_core.editing import NoiseTables, check_image_size, edit_timesteps, mask_encode_timestep, sd15_alphas_cumprod
from llmga_core.errors import LLMGAInputError


def numpy_reference(steps: int, skip: float) -> list[int]:
    """The original's expression, verbatim arithmetic: numpy linspace cast to int64."""
    skip = skip / 100
    return np.linspace(1000 - skip * 1000 - 1, 1, steps).astype(np.int64).tolist()


def test_cli_defaults_give_the_spec_timesteps() -> None:
    ts = edit_timesteps(50, 25)
    assert len(ts) == 50
    assert ts[:4] == [749, 733, 718, 703]
    assert ts[-3:] == [31, 16, 1]


@settings(max_examples=300, deadline=None)
@given(
    skip=st.one_of(st.integers(0, 99), st.floats(0, 99.8, allow_nan=False), st.just(99.8)), steps=st.integers(1, 1000)
)
def test_timesteps_match_numpy_for_any_setting(skip: float, steps: int) -> None:
    if 1000 - skip / 100 * 1000 - 1 < 1:  # would reach t = 0
        with pytest.raises(LLMGAInputError, match="between 0 and"):
            edit_timesteps(steps, skip)
        return
    reference = numpy_reference(steps, skip)
    if len(set(reference)) < len(reference):  # the original would silently mis-index duplicated timesteps
        with pytest.raises(LLMGAInputError, match="share a timestep"):
            edit_timesteps(steps, skip)
    else:
        assert edit_timesteps(steps, skip) == reference


@pytest.mark.parametrize("skip", [0, 7, 29, 33, 57, 99])
def test_float_rounding_of_skip_matches_numpy(skip: int) -> None:
    # skip/100*1000 is inexact for some percentages; the start must floor the same way as the original
    assert edit_timesteps(1, skip) == numpy_reference(1, skip)
    assert edit_timesteps(3, skip) == numpy_reference(3, skip)


def test_max_steps_is_accepted_one_more_is_not() -> None:
    assert edit_timesteps(749, 25) == list(range(749, 0, -1))
    with pytest.raises(LLMGAInputError, match="at most 749 steps"):
        edit_timesteps(750, 25)


@pytest.mark.parametrize(
    ("steps", "skip", "message"),
    [
        (0, 25, "at least 1 step"),
        (-3, 25, "at least 1 step"),
        (2.5, 25, "whole number"),
        (True, 25, "whole number"),
        (50, -1, "between 0 and 99.8"),
        (50, 100, "between 0 and 99.8"),
        (50, float("nan"), "must be a number"),
        (50, "25", "must be a number"),
    ],
)
def test_bad_steps_or_skip_are_rejected(steps: object, skip: object, message: str) -> None:
    with pytest.raises(LLMGAInputError, match=message):
        edit_timesteps(steps, skip)  # type: ignore[arg-type]
    assert issubclass(LLMGAInputError, ValueError)


def test_mask_encode_timestep_is_500() -> None:
    assert mask_encode_timestep() == 500


@pytest.mark.parametrize(("strength", "steps"), [(0.5, 50), (0.3, 50), (1.0, 50), (0.5, 20), (0.8, 7)])
def test_mask_encode_timestep_matches_the_img2img_rule(strength: float, steps: int) -> None:
    schedule = np.linspace(0, 999, steps + 1).round()[::-1][:-1].astype(np.int64)
    _, first = np.unique(schedule, return_index=True)
    schedule = schedule[np.sort(first)]
    start = max(steps - min(int(steps * strength), steps), 0)
    assert mask_encode_timestep(strength, steps) == int(schedule[start])


def test_mask_encode_strength_is_checked() -> None:
    with pytest.raises(LLMGAInputError, match=r"\(0, 1\]"):
        mask_encode_timestep(0.0)


def test_alphas_and_tables_match_the_original_scheduler_config() -> None:
    # The original scheduler derives its tables exactly like diffusers' DPMSolverMultistepScheduler.
    ref = DPMSolverMultistepScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear")
    ac = sd15_alphas_cumprod()
    assert ac.dtype == torch.float32 and ac.shape == (1000,)
    assert torch.equal(ac, ref.alphas_cumprod)
    tables = NoiseTables.from_alphas_cumprod(ac)
    assert torch.equal(tables.alpha, ref.alpha_t)
    assert torch.equal(tables.sigma, ref.sigma_t)
    assert torch.equal(tables.lam, ref.lambda_t)
    # ComfyUI's float64-derived ᾱ are accepted (cast to float32, like the original scheduler's).
    assert NoiseTables.from_alphas_cumprod(ac.double()).alphas_cumprod.dtype == torch.float32


@pytest.mark.parametrize(
    "bad",
    [
        torch.ones(1000),
        torch.zeros(1000),
        torch.full((10, 10), 0.5),
        torch.tensor([0.5]),
        torch.tensor([0.9, float("nan")]),
    ],
)
def test_bad_alphas_are_rejected(bad: torch.Tensor) -> None:
    with pytest.raises(LLMGAInputError, match="alphas_cumprod"):
        NoiseTables.from_alphas_cumprod(bad)


def test_add_noise_is_the_ddpm_forward_process() -> None:
    tables = NoiseTables.from_alphas_cumprod(sd15_alphas_cumprod())
    x0, noise = torch.randn(1, 4, 2, 2), torch.randn(1, 4, 2, 2)
    a = float(sd15_alphas_cumprod().double()[500])
    expected = a**0.5 * x0.double() + (1 - a) ** 0.5 * noise.double()
    torch.testing.assert_close(tables.add_noise(x0, noise, 500).double(), expected, rtol=1e-6, atol=1e-6)


def test_image_size_must_be_a_multiple_of_8() -> None:
    assert check_image_size(512, 768) == (64, 96)
    for height, width in [(510, 512), (512, 4), (0, 512), (512, 12.0)]:
        with pytest.raises(LLMGAInputError, match="multiples of 8"):
            check_image_size(height, width)  # type: ignore[arg-type]
