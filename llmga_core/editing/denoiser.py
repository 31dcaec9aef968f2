"""How the editing algorithm talks to a diffusion model and to its host.

The model is a plain noise predictor ``eps(x, t, cond) -> ε̂`` in DDPM/VP terms: ``x`` is the noisy latent
``√ᾱ_t·x0 + √(1−ᾱ_t)·ε`` (already scaled by the VAE factor), ``t`` the integer training timestep and ``cond``
whatever the caller uses for conditioning (opaque here). Hosts that evaluate several conditionings on the
same input in one batched call (ComfyUI's ``calc_cond_batch``) can also pass ``eps_batch``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import torch

from ..errors import LLMGAInputError


class EpsFn(Protocol):
    def __call__(self, x: torch.Tensor, t: int, cond: Any) -> torch.Tensor: ...


class EpsBatchFn(Protocol):
    def __call__(self, x: torch.Tensor, t: int, conds: Sequence[Any]) -> Sequence[torch.Tensor]: ...


ProgressFn = Callable[[int, int], None]
InterruptFn = Callable[[], None]


@dataclass(frozen=True)
class Denoiser:
    """A noise predictor, optionally with a batched form for several conditionings on one input."""

    eps: EpsFn
    eps_batch: EpsBatchFn | None = None

    def predict(self, x: torch.Tensor, t: int, conds: Sequence[Any]) -> list[torch.Tensor]:
        """ε̂ for each conditioning in ``conds``, all evaluated at the same ``x`` and ``t``."""
        if self.eps_batch is not None and len(conds) > 1:
            outs = list(self.eps_batch(x, t, conds))
            if len(outs) != len(conds):
                raise LLMGAInputError(
                    f"eps_batch returned {len(outs)} predictions for {len(conds)} conditionings; it must return one "
                    "per conditioning, in order."
                )
        else:
            outs = [self.eps(x, t, c) for c in conds]
        for out in outs:
            if not isinstance(out, torch.Tensor) or out.shape != x.shape:
                shape = list(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
                raise LLMGAInputError(
                    f"The denoiser returned {shape} for a latent of shape {list(x.shape)}; eps(x, t, cond) must "
                    "return a noise prediction shaped like x."
                )
        return outs


def as_denoiser(model: Denoiser | EpsFn) -> Denoiser:
    if isinstance(model, Denoiser):
        return model
    if not callable(model):
        raise LLMGAInputError(
            f"Expected a denoiser: a callable eps(x, t, cond) or a Denoiser, got {type(model).__name__}."
        )
    return Denoiser(eps=model)


@dataclass(frozen=True)
class Hooks:
    """Host callbacks, called once per model evaluation round (one UNet step)."""

    progress: ProgressFn | None = None
    check_interrupt: InterruptFn | None = None

    def before_step(self) -> None:
        if self.check_interrupt is not None:
            self.check_interrupt()

    def after_step(self, done: int, total: int) -> None:
        if self.progress is not None:
            self.progress(done, total)


def noise_like(x: torch.Tensor, shape: Sequence[int], generator: torch.Generator | None) -> torch.Tensor:
    """Standard normal noise drawn in float32 on the generator's device, then moved to ``x``'s device and dtype.

    A seed gives the same noise on any host and in any precision (a float64 run reuses the float32 draws the
    original made, which is what the parity tests' float64 reference needs).
    """
    device = generator.device if generator is not None else x.device
    noise = torch.randn(tuple(shape), generator=generator, device=device, dtype=torch.float32)
    return noise.to(device=x.device, dtype=x.dtype)
