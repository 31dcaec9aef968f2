"""LLMGA's instruction-based editing on any ε-prediction denoiser (llmga-spec.md 3.4).

Not InstructPix2Pix: a DiffEdit mask (``mask``), edit-friendly DDPM inversion with a second-order
SDE-DPM-Solver++ (``inversion``, ``solver``), and sampling that replays the stored noises with classifier-free
guidance only inside the mask (``sampling``); ``edit`` chains them as LLMGA's CLI does. Everything works on
VAE latents and a callable ``eps(x, t, cond)``; VAE and prompt encoding stay with the caller.
"""

from __future__ import annotations

from .conditioning import (
    CHUNK,
    Conditioning,
    ModelConds,
    check_conditioning,
    cut_tokens,
    pad_tokens,
    stage_conditionings,
)
from .denoiser import Denoiser, EpsBatchFn, EpsFn, InterruptFn, ProgressFn
from .edit import SKIP, STEPS, EditConds, EditResult, edit
from .inversion import SOURCE_CFG, Inversion, invert
from .mask import (
    NUM_MAPS,
    THRESHOLD_RATIO,
    diffedit_mask,
    guidance_map,
    latent_mask,
    posterior_samples,
    threshold_map,
)
from .sampling import TARGET_CFG, prepare_mask, sample
from .schedule import (
    NoiseTables,
    check_image_size,
    edit_timesteps,
    mask_encode_timestep,
    scaled_linear_alphas_cumprod,
    sd15_alphas_cumprod,
)
from .solver import SdeDpmSolverPP2M

__all__ = [
    "CHUNK",
    "NUM_MAPS",
    "SKIP",
    "SOURCE_CFG",
    "STEPS",
    "TARGET_CFG",
    "THRESHOLD_RATIO",
    "Conditioning",
    "Denoiser",
    "EditConds",
    "EditResult",
    "EpsBatchFn",
    "EpsFn",
    "InterruptFn",
    "Inversion",
    "ModelConds",
    "NoiseTables",
    "ProgressFn",
    "SdeDpmSolverPP2M",
    "check_conditioning",
    "check_image_size",
    "cut_tokens",
    "diffedit_mask",
    "edit",
    "edit_timesteps",
    "guidance_map",
    "invert",
    "latent_mask",
    "mask_encode_timestep",
    "pad_tokens",
    "posterior_samples",
    "prepare_mask",
    "sample",
    "scaled_linear_alphas_cumprod",
    "sd15_alphas_cumprod",
    "stage_conditionings",
    "threshold_map",
]
