from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from llmga_core.errors import LLMGAInputError
from llmga_core.outpaint import MAX_SIDE, Borders, grow_canvas, source_indices


def ramp_image(batch: int = 1, height: int = 4, width: int = 5, channels: int = 3) -> torch.Tensor:
    values = torch.arange(batch * height * width * channels, dtype=torch.float32)
    return (values / values.numel()).reshape(batch, height, width, channels)


def test_shapes_and_original_pixels_kept() -> None:
    image = ramp_image(2, 4, 5)
    canvas, mask = grow_canvas(image, Borders(left=3, top=1, right=2, bottom=6), "edge")
    assert canvas.shape == (2, 11, 10, 3)
    assert mask.shape == (2, 11, 10)
    assert torch.equal(canvas[:, 1:5, 3:8], image)


def test_mask_is_one_outside_and_zero_inside() -> None:
    _, mask = grow_canvas(ramp_image(), Borders(2, 1, 3, 2))
    assert mask[:, 1:5, 2:7].sum() == 0
    assert mask.sum() == mask.numel() - 4 * 5
    assert set(mask.unique().tolist()) == {0.0, 1.0}


def test_black_fill_is_zero() -> None:
    canvas, _ = grow_canvas(ramp_image() + 0.5, Borders(left=2, bottom=1), "black")
    assert canvas[:, :, :2].abs().sum() == 0
    assert canvas[:, -1:].abs().sum() == 0


def test_edge_fill_replicates_border_pixels() -> None:
    image = ramp_image()
    canvas, _ = grow_canvas(image, Borders(left=3, top=2), "edge")
    assert torch.equal(canvas[0, 2:, 0], image[0, :, 0])
    assert torch.equal(canvas[0, 0, 3:], image[0, 0])
    assert torch.equal(canvas[0, 0, 0], image[0, 0, 0])


def test_reflect_matches_torch_reflect_when_it_applies() -> None:
    image = ramp_image(1, 6, 7)
    canvas, _ = grow_canvas(image, Borders(2, 3, 4, 5), "reflect")
    expected = torch.nn.functional.pad(image.permute(0, 3, 1, 2), (2, 4, 3, 5), mode="reflect").permute(0, 2, 3, 1)
    assert torch.equal(canvas, expected)


def test_reflect_handles_borders_larger_than_the_image() -> None:
    # torch's reflect padding refuses this; mirroring must keep going periodically.
    assert source_indices(3, 0, 7, "reflect").tolist() == [0, 1, 2, 1, 0, 1, 2, 1, 0, 1]
    assert source_indices(3, 5, 0, "reflect").tolist() == [1, 0, 1, 2, 1, 0, 1, 2]
    assert source_indices(1, 2, 2, "reflect").tolist() == [0, 0, 0, 0, 0]


def test_feather_ramps_only_inside_new_area() -> None:
    _, mask = grow_canvas(ramp_image(1, 4, 4), Borders(right=6), feather=3)
    row = mask[0, 0].tolist()
    assert row[:4] == [0.0, 0.0, 0.0, 0.0]
    assert row[4:] == pytest.approx([0.25, 0.5, 0.75, 1.0, 1.0, 1.0])


def test_feather_corner_uses_euclidean_distance() -> None:
    _, mask = grow_canvas(ramp_image(1, 2, 2), Borders(left=2, top=2), feather=4)
    assert mask[0, 1, 1].item() == pytest.approx(2**0.5 / 5)
    assert mask[0, 0, 0].item() == pytest.approx((8**0.5) / 5)


def test_batch_grows_each_image_alike() -> None:
    image = ramp_image(3, 4, 4)
    canvas, mask = grow_canvas(image, Borders(1, 1, 1, 1), "reflect", feather=1)
    for i in range(3):
        single, single_mask = grow_canvas(image[i : i + 1], Borders(1, 1, 1, 1), "reflect", feather=1)
        assert torch.equal(canvas[i : i + 1], single)
        assert torch.equal(mask[i : i + 1], single_mask)


def test_zero_borders_are_identity() -> None:
    image = ramp_image(2)
    for fill in ("black", "edge", "reflect"):
        canvas, mask = grow_canvas(image, Borders(), fill, feather=5)
        assert torch.equal(canvas, image)
        assert mask.shape == (2, 4, 5)
        assert mask.abs().sum() == 0


def test_rgba_and_grey_images_work() -> None:
    for channels in (1, 4):
        canvas, _ = grow_canvas(ramp_image(1, 3, 3, channels), Borders(top=2), "edge")
        assert canvas.shape == (1, 5, 3, channels)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"borders": Borders(left=-8)}, "cannot be negative"),
        ({"borders": Borders(right=MAX_SIDE)}, f"at most {MAX_SIDE} px"),
        ({"fill": "blur"}, "Unknown fill"),
        ({"feather": -1}, "Feather"),
    ],
)
def test_bad_parameters_say_what_to_do(kwargs: dict, message: str) -> None:
    args = {"image": ramp_image(), "borders": Borders(1, 1, 1, 1), "fill": "black", "feather": 0} | kwargs
    with pytest.raises(LLMGAInputError, match=message):
        grow_canvas(**args)


@pytest.mark.parametrize(
    "bad",
    [
        torch.zeros(4, 4),
        torch.zeros(1, 4, 4, 7),
        torch.zeros(1, 4, 4, 3, dtype=torch.uint8),
        [[0.0]],
        torch.zeros(0, 4, 4, 3),
    ],
)
def test_non_image_input_is_refused(bad: object) -> None:
    with pytest.raises(LLMGAInputError, match=r"IMAGE|empty"):
        grow_canvas(bad, Borders(1))  # type: ignore[arg-type]


@settings(max_examples=150, deadline=None)
@given(
    h=st.integers(1, 9),
    w=st.integers(1, 9),
    sides=st.tuples(*[st.integers(0, 20)] * 4),
    fill=st.sampled_from(["black", "edge", "reflect"]),
    feather=st.integers(0, 12),
)
def test_canvas_arithmetic_invariants(
    h: int, w: int, sides: tuple[int, int, int, int], fill: str, feather: int
) -> None:
    left, top, right, bottom = sides
    image = torch.rand(1, h, w, 3)
    canvas, mask = grow_canvas(image, Borders(left, top, right, bottom), fill, feather)  # type: ignore[arg-type]
    assert canvas.shape == (1, h + top + bottom, w + left + right, 3)
    assert torch.equal(canvas[:, top : top + h, left : left + w], image)
    assert mask[:, top : top + h, left : left + w].abs().sum() == 0
    assert float(mask.min()) >= 0.0 and float(mask.max()) <= 1.0
    new_area = torch.ones_like(mask, dtype=torch.bool)
    new_area[:, top : top + h, left : left + w] = False
    assert bool((mask[new_area] > 0).all())
    if fill != "black":  # every new pixel is a copy of some original pixel
        assert bool(torch.isin(canvas.flatten(), image.flatten()).all())
