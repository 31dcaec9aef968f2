"""The edit itself: replay the inverted chain with the target prompt, guided only inside the mask.

LLMGA (llmga-spec.md 3.4 step 3) starts from the noisiest inverted latent, and at each timestep uses
``ε̂ = ε̂_u + cfg·(ε̂_target − ε̂_u)·M`` (M the binary mask: outside it the plain unconditional prediction) in
the SDE-DPM-Solver++ 2M step with the stored noise ``z`` instead of fresh noise. Chains shorter than 15 steps
end with a first-order step, as the original scheduler's ``lower_order_final`` does.
"""

from __future__ import annotations

from typing import Any

import torch

from ..errors import LLMGAInputError
from .denoiser import Denoiser, EpsFn, Hooks, InterruptFn, ProgressFn, as_denoiser
from .inversion import check_latent, check_scale, check_timesteps
from .schedule import NoiseTables
from .solver import SdeDpmSolverPP2M

TARGET_CFG = 7.5


def prepare_mask(mask: torch.Tensor | None, latent: torch.Tensor) -> torch.Tensor:
    """A [B, 1, h, w] 0/1 mask in the latent's dtype from [h, w], [B|1, h, w] or [B|1, 1, h, w] values in [0, 1].

    Values are binarised at 0.5 as the original does; None means "edit everywhere".
    """
    batch, _, height, width = latent.shape
    if mask is None:
        return torch.ones((batch, 1, height, width), device=latent.device, dtype=latent.dtype)
    if not isinstance(mask, torch.Tensor):
        raise LLMGAInputError(f"mask must be a tensor, got {type(mask).__name__}.")
    m = mask.detach()
    if m.ndim == 2:
        m = m[None, None]
    elif m.ndim == 3:
        m = m[:, None]
    if m.ndim != 4 or m.shape[1] != 1 or m.shape[0] not in (1, batch) or tuple(m.shape[-2:]) != (height, width):
        raise LLMGAInputError(
            f"The edit mask has shape {list(mask.shape)} but the latent is {list(latent.shape)}: the mask must be at "
            f"latent resolution {height}x{width} (image size / 8), one per image or one for all."
        )
    m = m.to(device=latent.device, dtype=torch.float32)
    if bool(torch.isnan(m).any()) or float(m.min()) < 0 or float(m.max()) > 1:
        raise LLMGAInputError("The edit mask must have values between 0 and 1.")
    return (m >= 0.5).to(latent.dtype).expand(batch, -1, -1, -1)


def sample(
    model: Denoiser | EpsFn,
    start: torch.Tensor,
    zs: torch.Tensor,
    timesteps: list[int],
    target_cond: Any,
    uncond: Any,
    alphas_cumprod: torch.Tensor,
    mask: torch.Tensor | None = None,
    *,
    target_cfg: float = TARGET_CFG,
    lower_order_final: bool = True,
    progress: ProgressFn | None = None,
    check_interrupt: InterruptFn | None = None,
) -> torch.Tensor:
    """Run the edit from ``start`` (``Inversion.start``) with the stored noises ``zs``; returns the clean latent.

    With ``target_cfg <= 1`` the original uses the target prediction alone (no guidance, mask unused).
    """
    check_latent(start, "start")
    denoiser = as_denoiser(model)
    tables = NoiseTables.from_alphas_cumprod(alphas_cumprod).to(start.device)
    steps = check_timesteps(timesteps, tables.num_train_timesteps)
    scale = check_scale(target_cfg, "target_cfg")
    if not isinstance(zs, torch.Tensor) or tuple(zs.shape) != (len(steps), *start.shape):
        shape = list(zs.shape) if isinstance(zs, torch.Tensor) else type(zs).__name__
        raise LLMGAInputError(
            f"zs has shape {shape}; expected {[len(steps), *start.shape]} (one noise per timestep, from the inversion "
            "of this latent with the same steps and skip)."
        )
    m = prepare_mask(mask, start)
    guided = scale > 1.0
    conds = [uncond, target_cond] if guided else [target_cond]

    solver = SdeDpmSolverPP2M(tables, steps, lower_order_final=lower_order_final)
    hooks = Hooks(progress, check_interrupt)
    x = start
    n = len(steps)
    for i, t in enumerate(steps):
        hooks.before_step()
        preds = denoiser.predict(x, t, conds)
        if guided:
            eps_uncond, eps_target = preds
            eps = eps_uncond + scale * (eps_target - eps_uncond) * m
        else:
            eps = preds[0]
        mean, std = solver.mean_and_std(i, eps, x)
        x = mean + std * zs[i].to(device=x.device, dtype=x.dtype)
        hooks.after_step(i + 1, n)
    return x
