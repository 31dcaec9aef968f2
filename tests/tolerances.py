"""How close a float32 result must be to the original's: the one place the parity tolerances come from.

Why tolerances at all. The golden values (tests/golden/*) are the original implementations' float32
outputs on one CPU. Another CPU (or the same one with another SIMD path or thread count) sums the same
products in another order, so every float32 run lands somewhere within its rounding error of the exact
result, and two runs differ by up to twice that. A fixed number tuned on one machine (the old 1e-4 / 1e-5 /
1e-6) fails on the next one; a bound derived from the computation does not.

How the parity tests compare. Where the pack's code runs in float64 (all of it: the tiny models are cast
with ``.double()``, noise is still drawn in float32), the test computes a float64 reference of *our*
algorithm on the golden inputs and asserts two things against it:

1. the golden float32 value lies within the float32 bound of our float64 result: the original and our
   code compute the same function (a wrong coefficient, mask or chunk order moves the result by orders of
   magnitude more than rounding);
2. our float32 result lies within the same bound: our float32 run on *this* machine is as accurate as
   the original's was on its machine.

The float64 reference is itself exact to ~1e-16 relative, so neither check depends on which CPU made the
golden data or runs the test.

The float32 bound. A dot product of length n rounds with a relative error of about √n·u (u = 2⁻²⁴, the
float32 unit roundoff; rounding errors behave like a random walk, Higham & Mary 2019). A network
accumulates that through its layers, so its relative error grows like

    growth = √(Σ fan_in over its Linear/Conv layers)              (:func:`network_growth`)

and ``k`` network evaluations whose errors reach one value add in quadrature (√k). The bound is

    SAFETY · u · magnitude · growth · √k · (1 + κ/√n)              (:func:`float32_bound`)

with ``magnitude`` the largest |value| of the compared tensor (per step for per-step quantities) and
``κ/√n`` the amplification of a mean-renormalisation (LPW weights: the output is rescaled by
mean(before)/mean(after); a mean of n values whose sum nearly cancels has condition number
κ = mean|x| / |mean x|, and independent rounding errors shrink by √n in the mean; see
:func:`renormalisation_amplification`). ``SAFETY`` = 4 covers the tail of the random walk (the maximum over
thousands of elements is a 3-4σ event).

Measured with the AVX-512, AVX2 and scalar ``default`` paths, 1 and 4 threads (scripts/parity_matrix.py), the
worst deviation any parity test sees is 0.72 of its bound, on the scalar path (tests/README.md has the table).
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import torch

# float32 unit roundoff (half the machine epsilon torch.finfo(torch.float32).eps).
FLOAT32_UNIT_ROUNDOFF = 2.0**-24
# Tail factor of the random-walk model (the worst of thousands of elements) with room for unmodelled terms.
SAFETY = 4.0
# torch.randn's float32 draws are not bit-identical across SIMD paths: its Box-Muller transform uses
# vectorised log/sin/cos (Sleef) on AVX2/AVX-512 and libm on the scalar path. Measured over 10⁶ draws:
# 38 % differ, by at most 31·u·(1 + |x|). So the tiny models' seeded weights and the seeded noises differ by
# that much between CPUs; the float64 reference uses the local weights, and the rounding-error model above
# covers a perturbation of a few ulps per input.
RANDN_ULPS = 64


def assert_same_draws(ours: torch.Tensor, golden: torch.Tensor, what: str) -> None:
    """Seeded normal draws (noise, weights) equal the golden ones up to the SIMD paths' last-bit differences."""
    assert ours.shape == golden.shape, f"{what}: shape {list(ours.shape)} != {list(golden.shape)}"
    limit = RANDN_ULPS * FLOAT32_UNIT_ROUNDOFF * (1.0 + golden.detach().double().abs())
    excess = (ours.detach().double() - golden.detach().double()).abs() - limit
    assert float(excess.max()) <= 0.0, f"{what}: the draws differ by more than {RANDN_ULPS} ulps"


# A fingerprint (sum of |w| in float64) of seeded random weights moves by ≤ RANDN_ULPS·u·(1 + 1/mean|w|)
# relative between SIMD paths; a changed fixture (another layer, seed or init rule) moves it by O(1).
FINGERPRINT_RELATIVE = 1e-4


def network_growth(model: torch.nn.Module) -> float:
    """√(Σ fan_in) over the model's Linear and Conv layers: its float32 error growth in units of u."""
    total = 0
    for module in model.modules():
        if isinstance(module, torch.nn.Linear | torch.nn.Conv1d | torch.nn.Conv2d):
            total += math.prod(module.weight.shape[1:])
    if total == 0:
        raise ValueError(f"{type(model).__name__} has no Linear/Conv layer to derive an error growth from")
    return math.sqrt(total)


def renormalisation_amplification(reference: torch.Tensor) -> float:
    """κ/√n of LPW's mean renormalisation, from the (float64) renormalised output itself.

    The output's mean equals the unweighted mean (that is what the renormalisation enforces), so
    κ = mean|x| / |mean x| of the output is the condition number of both means the rescaling divides.
    """
    ref = reference.detach().double()
    mean = float(ref.mean().abs())
    kappa = float(ref.abs().mean()) / mean if mean > 0 else math.inf
    return kappa / math.sqrt(ref.numel())


def float32_bound(reference: torch.Tensor, *, growth: float, evaluations: int = 1, amplification: float = 0.0) -> float:
    """Largest deviation a float32 computation of ``reference`` may show (see the module docstring)."""
    magnitude = float(reference.detach().abs().max())
    return SAFETY * FLOAT32_UNIT_ROUNDOFF * magnitude * growth * math.sqrt(evaluations) * (1.0 + amplification)


def max_deviation(actual: torch.Tensor, reference: torch.Tensor) -> float:
    return float((actual.detach().double() - reference.detach().double()).abs().max())


def assert_within(actual: torch.Tensor, reference: torch.Tensor, bound: float, what: str) -> float:
    """Assert max |actual − reference| ≤ bound; record the deviation for the report; return it."""
    assert actual.shape == reference.shape, f"{what}: shape {list(actual.shape)} != {list(reference.shape)}"
    deviation = max_deviation(actual, reference)
    record(what, deviation, bound)
    assert deviation <= bound, f"{what}: max deviation {deviation:.3g} > bound {bound:.3g}"
    return deviation


def assert_steps_within(actual: torch.Tensor, reference: torch.Tensor, what: str, **bound: float) -> float:
    """Per-step form of :func:`assert_within` over dim 0 (each step's bound from its own magnitude).

    Records the step closest to its bound; returns the largest deviation/bound ratio.
    """
    assert actual.shape == reference.shape, f"{what}: shape {list(actual.shape)} != {list(reference.shape)}"
    worst = (0.0, 0.0, 1.0, -1)
    for i in range(reference.shape[0]):
        deviation = max_deviation(actual[i], reference[i])
        limit = float32_bound(reference[i], **bound)
        if deviation / limit >= worst[0]:
            worst = (deviation / limit, deviation, limit, i)
    ratio, deviation, limit, step = worst
    record(what, deviation, limit)
    assert ratio <= 1.0, f"{what}: step {step} deviates by {deviation:.3g} > bound {limit:.3g}"
    return ratio


# Set LLMGA_PARITY_REPORT=path to collect every (check, deviation, bound) of a run as JSON lines
# (scripts/parity_matrix.py builds the README table from several runs).
REPORT_ENV = "LLMGA_PARITY_REPORT"


def record(what: str, deviation: float, bound: float) -> None:
    path = os.environ.get(REPORT_ENV)
    if not path:
        return
    test = os.environ.get("PYTEST_CURRENT_TEST", "").split(" ")[0]
    line = json.dumps({"test": test, "check": what, "deviation": deviation, "bound": bound}) + "\n"
    with Path(path).open("a", encoding="utf-8") as f:  # one short append per line: safe across xdist workers
        f.write(line)
