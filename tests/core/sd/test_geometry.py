from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from llmga_core.errors import LLMGAInputError
from llmga_core.sd import Box, crop_box, fit_size, model_size, sample_size


def test_model_sizes_are_llmgas_unless_overridden() -> None:
    assert model_size("sd15") == 512 and model_size("sdxl") == 1024
    assert model_size("sdxl", 64) == 64
    with pytest.raises(LLMGAInputError):
        model_size("sd15", 60)


def test_llmga_mode_stretches_to_the_square_and_fit_keeps_the_aspect() -> None:
    assert sample_size("llmga", "sd15", 800, 300) == (512, 512)
    assert sample_size("llmga", "sdxl", 800, 300) == (1024, 1024)
    assert sample_size("fit", "sd15", 800, 400) == (728, 360)  # 724.1 x 362.0 to steps of 8
    assert sample_size("crop", "sd15", 64, 64, 64) == (64, 64)
    with pytest.raises(LLMGAInputError, match="unknown resolution mode"):
        sample_size("stretch", "sd15", 8, 8)


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 4000), st.integers(1, 4000), st.sampled_from([64, 512, 1024]))
def test_fit_size_is_a_multiple_of_8_near_the_area_and_aspect(width: int, height: int, side: int) -> None:
    w, h = fit_size(width, height, side)
    assert w % 8 == 0 and h % 8 == 0 and w >= 8 and h >= 8
    if min(w, h) >= 64:  # rounding to 8 bounds the error once both sides are not tiny
        assert abs(w * h / side**2 - 1) < 0.3
        assert abs((w / h) / (width / height) - 1) < 0.3


def test_crop_box_grows_by_context_and_clips() -> None:
    mask = torch.zeros(2, 48, 80)
    mask[0, 12:24, 20:40] = 1.0
    mask[1, 30:31, 70:72] = 0.6  # second item widens the union; ≥ 0.5 counts
    box = crop_box(mask, 0.0)
    assert box == Box(left=20, top=12, width=52, height=19)
    grown = crop_box(mask[:1], 0.25)  # ceil(0.25 * 20) = 5 on each side
    assert grown == Box(left=15, top=7, width=30, height=22)
    assert crop_box(mask[:1], 4.0) == Box(0, 0, 80, 48)
    assert crop_box(torch.zeros(1, 10, 12), 0.5) == Box(0, 0, 12, 10)
    assert crop_box(mask[:1] * 0.4, 0.5) == Box(0, 0, 80, 48)  # below 0.5 is not masked
    rows, cols = grown.slices
    assert torch.zeros(48, 80)[rows, cols].shape == (22, 30)
    with pytest.raises(LLMGAInputError):
        crop_box(mask, -1.0)
