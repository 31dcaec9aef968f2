"""The whole edit in the CLI's order, on one generator."""

from __future__ import annotations

import pytest
import torch

from llmga_core.editing import Denoiser, EditConds, diffedit_mask, edit, edit_timesteps, invert, sample
from llmga_core.errors import LLMGAInputError
from tests.core.editing.conftest import Golden, generator

CFG = "s10_skip25"


def conds(golden: Golden) -> EditConds:
    return EditConds(
        target=golden.get(CFG, "sampling_target_cond"),
        source=golden.get(CFG, "inversion_source_cond"),
        inversion_uncond=golden.get(CFG, "inversion_uncond"),
        sampling_uncond=golden.get(CFG, "sampling_uncond"),
        mask_target=golden.get(CFG, "mask_target_cond"),
        mask_source=golden.get(CFG, "mask_source_cond"),
    )


def test_edit_chains_mask_inversion_sampling(golden: Golden, batched: Denoiser, alphas: torch.Tensor) -> None:
    c, x0 = conds(golden), golden.get(CFG, "x0")
    progress: list[tuple[int, int]] = []
    result = edit(
        batched, x0, c, alphas, generator(7), steps=12, skip=30, progress=lambda d, n: progress.append((d, n))
    )

    g = generator(7)
    mask = diffedit_mask(batched, x0, c.mask_target, c.mask_source, alphas, g)
    timesteps = edit_timesteps(12, 30)
    inversion = invert(batched, x0, c.source, c.inversion_uncond, alphas, timesteps, g, source_cfg=3.5)
    latent = sample(batched, inversion.start, inversion.zs, timesteps, c.target, c.sampling_uncond, alphas, mask)

    assert torch.equal(result.mask, mask)
    assert torch.equal(result.inversion.zs, inversion.zs)
    assert torch.equal(result.latent, latent)
    assert progress == [(i, 25) for i in range(1, 26)]


def test_given_mask_skips_the_mask_stage(golden: Golden, single: Denoiser, alphas: torch.Tensor) -> None:
    c, x0 = conds(golden), golden.get(CFG, "x0")
    user_mask = torch.zeros(1, 1, 8, 8)
    progress: list[tuple[int, int]] = []
    result = edit(
        single, x0, c, alphas, generator(7), steps=4, mask=user_mask, progress=lambda d, n: progress.append((d, n))
    )
    assert torch.equal(result.mask, user_mask)
    assert progress[-1] == (8, 8)
    # the inversion drew the generator's first noises, as there was no mask stage before it
    inversion = invert(single, x0, c.source, c.inversion_uncond, alphas, edit_timesteps(4, 25), generator(7))
    assert torch.equal(result.inversion.xts[0], inversion.xts[0])


def test_mask_needs_a_source(alphas: torch.Tensor) -> None:
    conds = EditConds(target="t", source=None, inversion_uncond="u")
    with pytest.raises(LLMGAInputError, match="source conditioning"):
        edit(lambda x, t, c: x, torch.zeros(1, 4, 2, 2), conds, alphas, None, steps=2)
