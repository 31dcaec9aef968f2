"""restore(): compositing, batching, resizing, padding, seeding, tiling, callbacks and input errors."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from llmga_core.diffrir import restore
from llmga_core.diffrir.tiling import tile_grid, tile_weight, validate_tiling
from llmga_core.errors import LLMGAInputError
from tests.core.diffrir.conftest import box_mask, case, smooth_image

# Tiles see different channel-attention statistics than the whole image, so tiled output deviates a
# little everywhere. Measured for the case below (128x128, tile 96, overlap 32, seeded synthetic
# weights): max 0.270, mean 0.0242; bounds are those plus ~25%. Larger tiles deviate much less (512x512
# with tile 384 / overlap 128: max 0.087, mean 0.0047; bench/diffrir_tiling.py).
TILED_MEAN_BOUND = 0.03
TILED_MAX_BOUND = 0.35


@pytest.fixture(scope="module")
def small():
    gen, ref = smooth_image(32, 64, 11), smooth_image(32, 64, 12)
    return gen, ref, box_mask(32, 64, 6, 28, 10, 50)


def test_outside_mask_is_the_reference_exactly(net, small) -> None:
    gen, ref, mask = small
    ref = ref.double()  # any float dtype: the untouched pixels are copied, not recomputed
    out = restore(net, gen, ref, mask, seed=1)
    assert out.dtype == torch.float64 and out.shape == ref.shape
    outside = (mask < 0.5).expand_as(ref)
    assert torch.equal(out[outside], ref[outside])
    inside = ~outside
    assert (out[inside] - ref[inside]).abs().mean() > 0.05
    assert out.min() >= 0 and out.max() <= 1


def test_mask_binarised_at_half(net, small) -> None:
    gen, ref, mask = small
    soft = mask * 0.6 + 0.2  # 0.2 outside, 0.8 inside
    assert torch.equal(restore(net, gen, ref, soft, seed=1), restore(net, gen, ref, mask, seed=1))


def test_empty_mask_returns_reference_without_running_network(fresh_net, small, monkeypatch) -> None:
    gen, ref, _ = small

    def boom(*_a, **_k):
        raise AssertionError("network called")

    for module in (fresh_net.G, fresh_net.condition, fresh_net.denoise):
        monkeypatch.setattr(module, "forward", boom)
    monkeypatch.setattr(fresh_net.condition, "forward_chunked", boom)
    calls: list[tuple[int, int]] = []
    out = restore(fresh_net, gen.expand(3, -1, -1, -1), ref, torch.zeros(32, 64), progress=lambda *a: calls.append(a))
    assert out.shape == (3, 3, 32, 64)
    assert all(torch.equal(o, ref[0]) for o in out)
    assert out.data_ptr() != ref.data_ptr()
    assert calls == []


def test_one_mask_and_reference_for_a_batch(net, small) -> None:
    gen, ref, mask = small
    gens = torch.cat([gen, smooth_image(32, 64, 13)])
    out = restore(net, gens, ref, mask[0], seed=4)  # mask [1, H, W], reference batch 1
    assert out.shape == (2, 3, 32, 64)
    assert torch.equal(out[0:1], restore(net, gen, ref, mask, seed=4))  # image 0 uses noise row 0
    inside = mask[0].expand(3, -1, -1) > 0.5
    assert (out[0][inside] - out[1][inside]).abs().mean() > 0.01
    assert torch.equal(out[1][~inside], ref[0][~inside])


def test_mask_layouts_are_equivalent(net, small) -> None:
    gen, ref, mask = small
    expected = restore(net, gen, ref, mask, seed=2)
    for m in (mask[0, 0], mask[:, 0], mask.bool(), (mask * 255).to(torch.uint8)):
        assert torch.equal(restore(net, gen, ref, m, seed=2), expected)


def test_generated_is_resized_to_reference(net, small) -> None:
    gen, ref, mask = small
    low = F.interpolate(gen, size=(16, 32), mode="area")
    out = restore(net, low, ref, mask, seed=3)
    assert out.shape == ref.shape
    up = F.interpolate(low, size=(32, 64), mode="bicubic", antialias=True, align_corners=False).clamp(0, 1)
    assert torch.equal(out, restore(net, up, ref, mask, seed=3))


def test_odd_sizes_are_padded_and_cropped(net) -> None:
    for h, w in ((70, 50), (33, 65), (20, 24)):  # the last one is too small to reflect-pad to 32
        gen, ref = smooth_image(h, w, 5), smooth_image(h, w, 6)
        mask = box_mask(h, w, h // 4, h - 2, w // 4, w - 3)
        out = restore(net, gen, ref, mask, seed=0)
        assert out.shape == (1, 3, h, w)
        assert torch.isfinite(out).all()


def test_seeded_determinism(net, golden) -> None:
    gen, ref, mask = case(golden, "a")
    a, b = restore(net, gen, ref, mask, seed=123), restore(net, gen, ref, mask, seed=123)
    c = restore(net, gen, ref, mask, seed=124)
    assert torch.equal(a, b)
    inside = mask.expand_as(a) > 0.5
    assert (a[inside] - c[inside]).abs().max() > 1e-4


def test_tile_covering_whole_image_equals_untiled(net, small) -> None:
    gen, ref, mask = small
    assert torch.equal(
        restore(net, gen, ref, mask, seed=5, tile_size=128, tile_overlap=32), restore(net, gen, ref, mask, seed=5)
    )


def test_tiled_close_to_untiled_and_reports_progress(net) -> None:
    gen, ref = smooth_image(128, 128, 7), smooth_image(128, 128, 8)
    mask = torch.ones(1, 1, 128, 128)
    calls: list[tuple[int, int]] = []
    interrupts: list[int] = []
    tiled = restore(
        net,
        gen,
        ref,
        mask,
        seed=6,
        tile_size=96,
        tile_overlap=32,
        progress=lambda d, t: calls.append((d, t)),
        check_interrupt=lambda: interrupts.append(1),
    )
    untiled = restore(net, gen, ref, mask, seed=6)
    diff = (tiled - untiled).abs()
    assert diff.mean() < TILED_MEAN_BOUND and diff.max() < TILED_MAX_BOUND
    assert diff.max() > 0  # it really ran tiled
    assert calls == [(1, 4), (2, 4), (3, 4), (4, 4)]
    assert len(interrupts) > 4 * 50  # before each tile and before every block inside each pass (issue 19)


def test_interrupt_stops_between_tiles(net) -> None:
    gen, ref = smooth_image(128, 128, 7), smooth_image(128, 128, 8)
    seen: list[int] = []

    class Stop(Exception):
        pass

    def check() -> None:
        seen.append(1)
        if len(seen) == 2:
            raise Stop

    with pytest.raises(Stop):
        restore(net, gen, ref, torch.ones(128, 128), tile_size=96, tile_overlap=32, check_interrupt=check)
    assert len(seen) == 2


def test_untiled_batch_progress(net, small) -> None:
    gen, ref, mask = small
    masks = torch.cat([mask, torch.zeros_like(mask), mask])
    calls: list[tuple[int, int]] = []
    out = restore(net, gen, ref, masks, progress=lambda d, t: calls.append((d, t)))
    assert calls == [(1, 2), (2, 2)]  # the empty-mask image is skipped
    assert torch.equal(out[1], ref[0])


def test_bfloat16_autocast_close_to_fp32(net, small) -> None:
    gen, ref, mask = small
    a = restore(net, gen, ref, mask, seed=1)
    b = restore(net, gen, ref, mask, seed=1, dtype=torch.bfloat16)
    assert b.dtype == torch.float32
    assert (a - b).abs().mean() < 0.05
    assert next(net.parameters()).dtype == torch.float32  # the network itself is left alone


def test_half_network_runs_in_its_own_precision(small) -> None:
    from llmga_core.diffrir.synthetic import synthetic_network

    gen, ref, mask = small
    bf16 = synthetic_network(20240115).to(torch.bfloat16)
    a = restore(bf16, gen, ref, mask, seed=1)
    b = restore(bf16, gen, ref, mask, seed=1, dtype=torch.float32)  # cannot be more precise than weights
    assert torch.equal(a, b) and a.dtype == torch.float32
    outside = (mask < 0.5).expand_as(ref)
    assert torch.equal(a[outside], ref[outside])


def test_tile_grid_and_weights() -> None:
    grid = tile_grid(320, 192, 128, 32)
    assert all(y % 32 == 0 and x % 32 == 0 for y, x, _, _ in grid)
    cover = torch.zeros(320, 192)
    total = torch.zeros(320, 192)
    for y, x, th, tw in grid:
        cover[y : y + th, x : x + tw] += 1
        w = tile_weight(y, x, th, tw, 320, 192, 32)
        assert w.min() > 0 and w.max() == 1
        total[y : y + th, x : x + tw] += w
    assert cover.min() >= 1
    assert total.min() > 0.5
    assert tile_grid(64, 64, 128, 32) == [(0, 0, 64, 64)]


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"generated": torch.rand(2, 3, 32, 64), "reference": torch.rand(3, 3, 32, 64)}, "batch sizes"),
        ({"mask": torch.ones(2, 1, 32, 64), "generated": torch.rand(3, 3, 32, 64)}, "batch sizes"),
        ({"mask": torch.ones(1, 1, 32, 60)}, "mask is 60x32 but the reference image is 64x32"),
        ({"generated": torch.full((1, 3, 32, 64), float("nan"))}, "NaN"),
        ({"reference": torch.full((1, 3, 32, 64), float("inf"))}, "NaN or infinite"),
        ({"mask": torch.full((1, 1, 32, 64), float("nan"))}, "mask' contains NaN"),
        ({"generated": torch.rand(1, 4, 32, 64)}, "channel count"),
        ({"reference": torch.rand(3, 32, 64)}, r"\[batch, 3, height, width\]"),
        ({"mask": torch.ones(1, 3, 32, 64)}, "mask' must be"),
        ({"reference": (torch.rand(1, 3, 32, 64) * 255).to(torch.uint8)}, "must be float"),
        ({"generated": [[0.5]]}, "must be a tensor"),
        ({"tile_size": 100}, "multiple of 32"),
        ({"tile_size": 128, "tile_overlap": 128}, "overlap"),
        ({"seed": 1.5}, "seed"),
        ({"dtype": torch.int8}, "dtype"),
    ],
)
def test_bad_inputs(net, small, kwargs, match) -> None:
    gen, ref, mask = small
    args = {"generated": gen, "reference": ref, "mask": mask, **kwargs}
    with pytest.raises(LLMGAInputError, match=match):
        restore(net, args.pop("generated"), args.pop("reference"), args.pop("mask"), **args)


def test_validate_tiling_accepts_defaults() -> None:
    from llmga_core.diffrir import DEFAULT_TILE_OVERLAP, DEFAULT_TILE_SIZE, auto_tile_size

    validate_tiling(DEFAULT_TILE_SIZE, DEFAULT_TILE_OVERLAP)
    assert auto_tile_size(1024, 1000) is None
    assert auto_tile_size(1025, 512) == DEFAULT_TILE_SIZE
    with pytest.raises(LLMGAInputError):
        validate_tiling(32, 0)
