"""The network against the original DiffRIR: key layout, schedule and numerical parity (golden).

The golden outputs are float32 from one CPU; they and ours are each compared with a float64 run of the same
network, within the float32 bound of tests/tolerances.py.
"""

from __future__ import annotations

import copy
import json

import pytest
import torch

from llmga_core.diffrir import build_diffrir_x1, restore
from llmga_core.diffrir.network import DiffRIRNet
from llmga_core.diffrir.prior import SCHEDULE_BUFFERS, linear_schedule
from tests.core.diffrir.conftest import GOLDEN_DIR, case
from tests.tolerances import assert_same_draws, assert_within, float32_bound, network_growth


@pytest.fixture(scope="module")
def net64(net: DiffRIRNet) -> DiffRIRNet:
    return copy.deepcopy(net).double()


def assert_parity(name: str, ours: torch.Tensor, golden: torch.Tensor, reference: torch.Tensor, net) -> None:
    """The original's float32 value and ours, each within the float32 bound of the float64 reference."""
    bound = float32_bound(reference, growth=network_growth(net))
    assert_within(golden, reference, bound, f"{name} original")
    assert_within(ours, reference, bound, f"{name} ours")


def test_state_dict_matches_original_keys_shapes_and_order() -> None:
    original = json.loads((GOLDEN_DIR / "s2_x1_state_dict_shapes.json").read_text())
    ours = build_diffrir_x1().state_dict()
    assert len(original) == 615
    assert list(ours) == [k for k, _ in original]
    assert [list(v.shape) for v in ours.values()] == [s for _, s in original]


def test_state_dict_families_and_parameter_count() -> None:
    net = build_diffrir_x1()
    keys = list(net.state_dict())
    count = {p: sum(k.startswith(p) for k in keys) for p in ("G.", "condition.", "denoise.", "diffusion.")}
    assert count == {"G.": 499, "condition.": 48, "denoise.": 4, "diffusion.": 64}
    assert net.diffusion.condition is net.condition and net.diffusion.model is net.denoise
    assert sum(p.numel() for p in net.parameters()) == 25_078_342


def test_schedule_buffers_match_spec() -> None:
    sched = linear_schedule(4, 0.1, 0.99)
    assert tuple(sched) == SCHEDULE_BUFFERS
    assert all(v.dtype == torch.float32 and v.shape == (4,) for v in sched.values())
    torch.testing.assert_close(sched["betas"], torch.tensor([0.1000, 0.2943, 0.5910, 0.9900]), atol=1e-4, rtol=0)
    torch.testing.assert_close(
        sched["alphas_cumprod"], torch.tensor([0.9000, 0.6351, 0.2598, 0.002598]), atol=1e-4, rtol=1e-3
    )
    torch.testing.assert_close(
        sched["posterior_mean_coef1"], torch.tensor([1.0, 0.765187, 0.636270, 0.505927]), atol=1e-6, rtol=0
    )
    torch.testing.assert_close(
        sched["posterior_mean_coef2"], torch.tensor([0.0, 0.230246, 0.315256, 0.074212]), atol=1e-6, rtol=0
    )
    assert sched["alphas_cumprod_prev"][0] == 1.0
    assert sched["posterior_variance"][0] == 0.0
    assert sched["posterior_log_variance_clipped"][0] == pytest.approx(torch.log(torch.tensor(1e-20)).item())
    net = build_diffrir_x1()
    for name in SCHEDULE_BUFFERS:
        assert torch.equal(getattr(net.diffusion, name), sched[name])


def _x6(golden: dict[str, torch.Tensor]) -> torch.Tensor:
    gen, ref, mask = case(golden, "a")
    return torch.cat([gen, (1 - mask) * ref], dim=1)


@pytest.mark.parity
def test_parity_prior_and_network_output(net, net64, golden) -> None:
    x6 = _x6(golden)
    noise = torch.randn(1, 256, generator=torch.Generator().manual_seed(1234))
    assert_same_draws(noise, golden["a_noise"], "prior noise")  # our seeding == the original's global-RNG draw
    with torch.inference_mode():
        ours = {"condition": net.condition(x6), "prior": net.estimate_prior(x6, noise), "output": net(x6, noise)}
        x6, noise = x6.double(), noise.double()
        ref = {"condition": net64.condition(x6), "prior": net64.estimate_prior(x6, noise), "output": net64(x6, noise)}
    for name in ours:
        assert_parity(name, ours[name], golden[f"a_{name}"], ref[name], net)
    # the golden output is far from the identity, so parity exercises the whole network
    assert (golden["a_output"] - x6[:, :3]).abs().mean() > 0.1


@pytest.mark.parity
def test_parity_full_procedure_with_padding(net, net64, golden) -> None:
    """inference_diffrir.py at 70x50 (reflect-padded to 96x64, cropped, composited, clamped)."""
    gen, ref, mask = case(golden, "b")
    out = restore(net, gen, ref, mask, seed=99)
    assert out.shape == (1, 3, 70, 50)
    # restore() returns float32 whatever the network's precision: the reference carries ½u of rounding more
    assert_parity("restored", out, golden["b_output"], restore(net64, gen, ref, mask, seed=99), net)


def test_chunked_condition_equals_whole_image(net) -> None:
    x6 = torch.rand(1, 6, 192, 256, generator=torch.Generator().manual_seed(3))
    with torch.inference_mode():
        whole = net.condition(x6)
        chunked = net.condition.forward_chunked(x6, 16)  # 3x4 chunks with a 22-px halo
    assert net.condition.halo == 22
    assert (whole - chunked).abs().max() < 1e-5
