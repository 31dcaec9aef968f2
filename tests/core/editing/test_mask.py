"""DiffEdit mask behaviour beyond the golden parity."""

from __future__ import annotations

import pytest
import torch

from llmga_core.editing import Denoiser, diffedit_mask, guidance_map, threshold_map
from llmga_core.errors import LLMGAInputError
from tests.core.editing.conftest import Golden, generator


def test_threshold_is_one_and_a_half_times_the_mean() -> None:
    guidance = torch.tensor([[[0.0, 1.0], [1.0, 2.0]]])  # mean 1: keep > 1.5
    assert threshold_map(guidance).flatten().tolist() == [0.0, 0.0, 0.0, 1.0]
    guidance = torch.tensor([[[1.0, 1.0], [1.0, 1.6]]])  # mean 1.15: 1.6 > 1.725? no
    assert threshold_map(guidance).sum() == 0
    assert threshold_map(guidance, ratio=2.0).flatten().tolist() == [0.0, 0.0, 0.0, 1.0]
    guidance = torch.tensor([[[0.5, 0.5], [1.5, 1.5]]])  # exactly 1.5x the mean is kept out, as in the original
    assert threshold_map(guidance).sum() == 0


def test_flat_zero_map_gives_all_ones_like_the_original() -> None:
    assert threshold_map(torch.zeros(1, 4, 4)).eq(1).all()


def test_identical_prompts_give_an_all_ones_mask(golden: Golden, single: Denoiser, alphas: torch.Tensor) -> None:
    cond = golden.get("s10_skip25", "mask_target_cond")
    mask = diffedit_mask(single, golden.get("s10_skip25", "x0"), cond, cond, alphas, generator(0))
    assert mask.shape == (1, 1, 8, 8) and mask.eq(1).all()


def test_rounding_between_batch_rows_is_not_disagreement(alphas: torch.Tensor) -> None:
    """Identical prompts on a CPU whose kernels round batch rows differently (AVX2): still an all-ones mask,
    while a real difference in one pixel still makes the mask."""
    latents = torch.randn(1, 4, 8, 8, generator=torch.Generator().manual_seed(1))

    def rows(offset: torch.Tensor) -> Denoiser:
        def eps(x: torch.Tensor, t: int, cond: object) -> torch.Tensor:
            return x * 0.5 + (offset if cond == "target" else 0.0)

        return Denoiser(eps=eps)

    ulps = torch.randn(1, 4, 8, 8, generator=torch.Generator().manual_seed(2)) * 1e-6  # a few ulps of |ε| ~ 1
    mask = diffedit_mask(rows(ulps), latents, "target", "source", alphas, generator(0))
    assert mask.eq(1).all()
    real = torch.zeros(1, 4, 8, 8)
    real[..., 3, 5] = 0.1
    mask = diffedit_mask(rows(real), latents, "target", "source", alphas, generator(0))
    assert mask.sum() == 1 and mask[0, 0, 3, 5] == 1


def test_one_model_round_with_all_maps_batched(golden: Golden, unet: torch.nn.Module, alphas: torch.Tensor) -> None:
    seen: list[tuple[tuple[int, ...], int, int]] = []

    def eps_batch(x: torch.Tensor, t: int, conds: list[torch.Tensor]) -> list[torch.Tensor]:
        seen.append((tuple(x.shape), t, len(conds)))
        return [torch.zeros_like(x) + c.mean() for c in conds]

    progress: list[tuple[int, int]] = []
    x0 = golden.get("s10_skip25", "x0")
    target, source = torch.ones(1, 3, 32), torch.zeros(1, 3, 32)
    diffedit_mask(
        Denoiser(lambda x, t, c: x, eps_batch),
        x0,
        target,
        source,
        alphas,
        generator(0),
        progress=lambda d, n: progress.append((d, n)),
    )
    assert seen == [((10, 4, 8, 8), 500, 2)]
    assert progress == [(1, 1)]


def test_per_image_threshold_in_a_batch(golden: Golden, single: Denoiser, alphas: torch.Tensor) -> None:
    a, b = golden.get("s10_skip25", "x0"), golden.get("s20_skip36", "x0")
    target, source = golden.get("s10_skip25", "mask_target_cond"), golden.get("s10_skip25", "mask_source_cond")
    g = generator(5)
    both = guidance_map(single, torch.cat([a, b]), target, source, alphas, g)
    g = generator(5)
    first = guidance_map(single, a, target, source, alphas, g)
    second = guidance_map(single, b, target, source, alphas, g)  # continues the same noise stream
    torch.testing.assert_close(both, torch.cat([first, second]), rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(threshold_map(both), torch.cat([threshold_map(first), threshold_map(second)]))


def test_seed_decides_the_noise(golden: Golden, single: Denoiser, alphas: torch.Tensor) -> None:
    args = (single, golden.get("s10_skip25", "x0"), golden.get("s10_skip25", "mask_target_cond"))
    args = (*args, golden.get("s10_skip25", "mask_source_cond"), alphas)
    assert torch.equal(guidance_map(*args, generator(3)), guidance_map(*args, generator(3)))
    assert not torch.equal(guidance_map(*args, generator(3)), guidance_map(*args, generator(4)))


def test_interrupt_stops_before_the_model_runs(alphas: torch.Tensor) -> None:
    calls = []

    def stop() -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        diffedit_mask(
            lambda x, t, c: calls.append(1) or x, torch.zeros(1, 4, 8, 8), 1, 2, alphas, None, check_interrupt=stop
        )
    assert calls == []


@pytest.mark.parametrize(
    ("latents", "kwargs", "message"),
    [
        (torch.zeros(4, 8, 8), {}, "latents must be"),
        (torch.zeros(1, 3, 4, 8, 8), {}, "latents must be"),
        (torch.zeros(1, 4, 8, 8, dtype=torch.int64), {}, "floating-point"),
        (torch.zeros(1, 4, 8, 8), {"num_maps": 0}, "num_maps"),
        (torch.zeros(1, 4, 8, 8), {"threshold_ratio": 0.0}, "threshold ratio"),
        (torch.zeros(1, 4, 8, 8), {"encode_timestep": 1000}, "encode timestep"),
    ],
)
def test_bad_mask_inputs(alphas: torch.Tensor, latents: torch.Tensor, kwargs: dict, message: str) -> None:
    with pytest.raises(LLMGAInputError, match=message):
        diffedit_mask(lambda x, t, c: x, latents, 1, 2, alphas, None, **kwargs)


def test_wrong_shaped_prediction_is_reported(alphas: torch.Tensor) -> None:
    with pytest.raises(LLMGAInputError, match="shaped like x"):
        diffedit_mask(lambda x, t, c: x[:1], torch.zeros(1, 4, 8, 8), 1, 2, alphas, None)
