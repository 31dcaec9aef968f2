"""Parity with the original LLMGA editing pipeline on the same tiny weights (tests/golden/editing).

The golden run fed the original `generate_mask` / `invert` / `__call__` the repo's tiny UNet; the embeddings,
VAE latents and seeds it used are stored with its outputs. Our denoiser mirrors its batching (one UNet call
per conditioning in the inversion, one batch for the mask and the sampling). The golden values are float32
from one CPU; the inversion and edit are compared through a float64 run of our code on the same inputs, with
the float32 bounds of tests/tolerances.py (the UNet's error growth, per step for the noise maps).
"""

from __future__ import annotations

from typing import Any

import pytest
import torch

from llmga_core.editing import (
    Denoiser,
    diffedit_mask,
    edit_timesteps,
    guidance_map,
    invert,
    mask_encode_timestep,
    sample,
)
from tests.core.editing.conftest import Golden, generator
from tests.core.editing.tiny_models import fingerprint, tiny_unet
from tests.tolerances import (
    FINGERPRINT_RELATIVE,
    FLOAT32_UNIT_ROUNDOFF,
    RANDN_ULPS,
    assert_steps_within,
    assert_within,
    float32_bound,
    network_growth,
)

pytestmark = pytest.mark.parity

CONFIGS = ["s10_skip25", "s20_skip36"]
# A z of the 2nd-order solver depends on two UNet evaluations (this step's and the previous x0-prediction).
Z_EVALUATIONS = 2
# x_t = √ᾱ·x0 + √(1−ᾱ)·ε, then z = (x_t − μ)/std and μ + std·z: about 8 roundings of |x|-sized values, no UNet.
LATENT_REBUILD_GROWTH = 8**0.5


def test_tiny_unet_is_the_golden_one(golden: Golden) -> None:
    # A mismatch here means the fixture changed, not the algorithm: regenerate the goldens (PROVENANCE.md).
    assert fingerprint(tiny_unet()) == pytest.approx(golden.fingerprints["unet"], rel=FINGERPRINT_RELATIVE)


@pytest.mark.parametrize("config", CONFIGS)
def test_schedule_matches_original(golden: Golden, config: str) -> None:
    cfg = golden.configs[config]
    assert edit_timesteps(cfg["steps"], cfg["skip"]) == cfg["timesteps"]
    assert mask_encode_timestep() == cfg["mask_encode_timestep"] == 500


@pytest.mark.parametrize("config", CONFIGS)
def test_mask_matches_original(golden: Golden, batched: Denoiser, alphas: torch.Tensor, config: str) -> None:
    cfg = golden.configs[config]
    args = (
        batched,
        golden.get(config, "mask_latents")[None],  # one VAE sample per noise map, as the original drew them
        golden.get(config, "mask_target_cond"),
        golden.get(config, "mask_source_cond"),
        alphas,
    )
    mask = diffedit_mask(*args, generator(cfg["mask_noise_seed"]), threshold_ratio=cfg["mask_ratio"])
    expected = golden.get(config, "mask")
    assert mask.shape == (1, 1, 8, 8)
    assert torch.equal(mask[:, 0], expected)
    # The original's map is |1 - 7.5| times ours (its cond/uncond swap); same threshold, same mask.
    ours = guidance_map(*args, generator(cfg["mask_noise_seed"])) * 6.5
    torch.testing.assert_close(ours, golden.get(config, "mask_map_original"), rtol=1e-4, atol=1e-5)


def test_golden_masks_are_informative(golden: Golden) -> None:
    # The masked-guidance parity means something only if one golden mask mixes edited and kept pixels.
    fraction = golden.get("s10_skip25", "mask").mean().item()
    assert 0.2 < fraction < 0.8


def invert_golden(
    golden: Golden,
    config: str,
    denoiser: Denoiser,
    alphas: torch.Tensor,
    timesteps: list[int],
    dtype: torch.dtype = torch.float32,
    **kw: Any,
) -> Any:
    """Our inversion of the golden case's x0 with its conditionings and noise seed."""
    return invert(
        denoiser,
        golden.get(config, "x0", dtype),
        golden.get(config, "inversion_source_cond", dtype),
        golden.get(config, "inversion_uncond", dtype),
        alphas,
        timesteps,
        generator(golden.configs[config]["inversion_seed"]),
        **kw,
    )


def sample_golden(
    golden: Golden,
    config: str,
    denoiser: Denoiser,
    inversion: Any,
    alphas: torch.Tensor,
    timesteps: list[int],
    dtype: torch.dtype = torch.float32,
    **kw: Any,
) -> torch.Tensor:
    """Our masked edit from an inversion with the golden case's target conditioning and mask."""
    return sample(
        denoiser,
        inversion.start,
        inversion.zs,
        timesteps,
        golden.get(config, "sampling_target_cond", dtype),
        golden.get(config, "sampling_uncond", dtype),
        alphas,
        golden.get(config, "mask", dtype),
        **kw,
    )


@pytest.mark.parametrize("config", CONFIGS)
def test_inversion_and_sampling_match_original(
    golden: Golden,
    unet: torch.nn.Module,
    single: Denoiser,
    batched: Denoiser,
    single64: Denoiser,
    batched64: Denoiser,
    alphas: torch.Tensor,
    config: str,
) -> None:
    cfg = golden.configs[config]
    timesteps = edit_timesteps(cfg["steps"], cfg["skip"])
    growth = network_growth(unet)
    runs = {}
    setups = (("ours", torch.float32, single, batched), ("f64", torch.float64, single64, batched64))
    for name, dtype, one, many in setups:
        inversion = invert_golden(golden, config, one, alphas, timesteps, dtype, source_cfg=cfg["src_cfg"])
        edited = sample_golden(golden, config, many, inversion, alphas, timesteps, dtype, target_cfg=cfg["tar_cfg"])
        runs[name] = (inversion, edited)
    (ours, ours_edit), (ref, ref_edit) = runs["ours"], runs["f64"]
    # original: zs in descending-t order, xts ascending [x0, x_1, ..., x_749]
    golden_run = (golden.get(config, "zs"), golden.get(config, "xts").flip(0), golden.get(config, "edited_latent"))
    for who, (zs, xts, edited) in (("original", golden_run), ("ours", (ours.zs, ours.xts, ours_edit))):
        assert_steps_within(zs, ref.zs, f"{config} zs {who}", growth=growth, evaluations=Z_EVALUATIONS)
        # The rebuilt latent passes through μ and std·z, as large as the largest latent of the chain; the
        # original's noise came from another CPU's randn (σ ≤ 1 times RANDN_ULPS·u·(1 + |ε| ≤ 6)).
        bound = float32_bound(ref.xts, growth=LATENT_REBUILD_GROWTH)
        if who == "original":
            bound += RANDN_ULPS * FLOAT32_UNIT_ROUNDOFF * 7
        assert_within(xts, ref.xts, bound, f"{config} xts {who}")
        bound = float32_bound(ref_edit, growth=growth, evaluations=len(timesteps))
        assert_within(edited, ref_edit, bound, f"{config} edited latent {who}")
    # and the edit really changed the latent (the comparisons above are not trivially satisfied)
    assert (ref_edit - golden.get(config, "x0", torch.float64)).abs().max() > 0.1


def test_batched_inversion_stays_close(
    golden: Golden, unet: torch.nn.Module, batched: Denoiser, alphas: torch.Tensor
) -> None:
    """A host that batches cond/uncond in the inversion too (ComfyUI) differs only by UNet rounding."""
    config = "s20_skip36"
    cfg = golden.configs[config]
    timesteps = edit_timesteps(cfg["steps"], cfg["skip"])
    inversion = invert_golden(golden, config, batched, alphas, timesteps)
    edited = sample_golden(golden, config, batched, inversion, alphas, timesteps)
    expected = golden.get(config, "edited_latent")
    # two float32 runs (the original's and this batched one), each within the bound of the exact value
    bound = 2 * float32_bound(expected, growth=network_growth(unet), evaluations=len(timesteps))
    assert_within(edited, expected, bound, f"{config} batched edit vs original")
