"""Load DiffRIR x1 S2 weights strictly, from the released ``.pth`` or from ``.safetensors``.

Released files are BasicSR ``torch.save`` dicts ``{"params": ..., "params_ema": ...}``; the inference
script loads ``params_ema`` (llmga-spec.md 4.4). We never unpickle arbitrary objects
(``weights_only=True``). Accepted layouts:

- a dict with ``params_ema`` (preferred) or ``params``, or a bare state dict;
- keys optionally prefixed ``module.`` (DataParallel saves);
- the duplicated ``diffusion.condition.*`` / ``diffusion.model.*`` keys and the 12 ``diffusion.*`` schedule
  buffers may be absent (safetensors cannot store shared tensors twice): they are rebuilt from their twins
  and from the schedule formula. When present they must agree with them.

Anything else (other keys, other shapes, an x2/x4 or stage-1 model, unreadable bytes) raises
:class:`DiffRIRCheckpointError` naming what was expected.
"""

from __future__ import annotations

import functools
import os
import pickle
import zipfile
from collections.abc import Mapping
from pathlib import Path

import torch

from ..errors import LLMGAInputError
from ..weight_checks import check_weights
from .network import X1_CONFIG, DiffRIRNet
from .prior import SCHEDULE_BUFFERS, linear_schedule

EXPECTED = (
    "a DiffRIR x1 stage-2 checkpoint (DiffRIRS2, scale 1, as loaded by DiffRIR's inference_diffrir.py: "
    "615 tensors G.*, condition.*, denoise.*, diffusion.*)"
)
TORCH_SUFFIXES = (".pth", ".pt", ".ckpt", ".bin")
SAFETENSORS_SUFFIXES = (".safetensors", ".sft")
_TWINS = (("diffusion.condition.", "condition."), ("diffusion.model.", "denoise."))
_SHOW = 5  # keys listed in an error message


class DiffRIRCheckpointError(ValueError):
    """The file is unreadable or is not a DiffRIR x1 S2 checkpoint; the message says what was found."""


def _read_torch(path: Path) -> object:
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        if "weights only" in str(exc).lower() or "weights_only" in str(exc):
            raise DiffRIRCheckpointError(
                f"{path.name}: the file contains Python objects other than tensors, so it is not loaded "
                f"(only plain tensors are read; the pack never runs code from a model file). Expected {EXPECTED}."
            ) from None
        raise DiffRIRCheckpointError(f"{path.name}: not a readable PyTorch file (corrupt or truncated).") from None
    except (RuntimeError, EOFError, zipfile.BadZipFile, ValueError, OSError, KeyError, IndexError) as exc:
        raise DiffRIRCheckpointError(
            f"{path.name}: could not be read as a PyTorch checkpoint; it is corrupt, truncated or not a "
            f"checkpoint ({type(exc).__name__}: {str(exc).splitlines()[0][:200] if str(exc) else ''})."
        ) from None


def _read_safetensors(path: Path) -> dict[str, torch.Tensor]:
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        return load_file(str(path), device="cpu")
    except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
        raise DiffRIRCheckpointError(
            f"{path.name}: could not be read as safetensors; it is corrupt, truncated or not a safetensors "
            f"file ({str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__})."
        ) from None


def _pick_state_dict(obj: object, name: str) -> dict[str, torch.Tensor]:
    if not isinstance(obj, Mapping):
        raise DiffRIRCheckpointError(f"{name}: holds a {type(obj).__name__}, not a state dict. Expected {EXPECTED}.")
    for wrapper in ("params_ema", "params"):
        if wrapper in obj:
            obj = obj[wrapper]
            if not isinstance(obj, Mapping):
                raise DiffRIRCheckpointError(f"{name}: '{wrapper}' is a {type(obj).__name__}, not a state dict.")
            break
    bad = [k for k, v in obj.items() if not isinstance(k, str) or not isinstance(v, torch.Tensor)]
    if bad:
        raise DiffRIRCheckpointError(
            f"{name}: entries that are not named tensors, e.g. {[str(k) for k in bad[:_SHOW]]}. Expected {EXPECTED}."
        )
    sd = dict(obj)
    if sd and all(k.startswith("module.") for k in sd):
        sd = {k.removeprefix("module."): v for k, v in sd.items()}
    return sd


def _diagnose_other_model(sd: Mapping[str, torch.Tensor]) -> str:
    """A hint when the file is a sibling DiffRIR/DiffIR model rather than x1 S2."""
    embed = sd.get("G.patch_embed.proj.weight")
    if embed is not None and embed.dim() == 4 and embed.shape[1] in (60, 51):
        return f" This looks like a DiffRIR x{2 if embed.shape[1] == 60 else 4} model; only x1 is supported."
    first = sd.get("condition.E.0.weight")
    if first is not None and first.dim() == 4 and first.shape[1] == 144:
        return " This looks like a stage-1 (S1 teacher) model; inference needs the stage-2 (S2) weights."
    return ""


@functools.lru_cache(maxsize=1)
def _expected_shapes() -> dict[str, torch.Size]:
    """Key -> shape of the x1 state dict, in released order (built once per process)."""
    return {k: v.shape for k, v in DiffRIRNet(X1_CONFIG).state_dict().items()}


def _complete(sd: dict[str, torch.Tensor], expected: Mapping[str, torch.Size], name: str) -> None:
    """Fill in derivable keys (twins, schedule) in place and check present ones agree with them."""
    for dup, src in _TWINS:
        for key in expected:
            if not key.startswith(dup):
                continue
            twin = src + key.removeprefix(dup)
            if key not in sd and twin in sd:
                sd[key] = sd[twin]
            elif key in sd and twin not in sd:
                sd[twin] = sd[key]
            elif key in sd and twin in sd and sd[key].shape == sd[twin].shape and not torch.equal(sd[key], sd[twin]):
                raise DiffRIRCheckpointError(
                    f"{name}: '{key}' differs from '{twin}', which must be the same tensor; the file is damaged."
                )
    cfg = X1_CONFIG
    schedule = linear_schedule(cfg.timesteps, cfg.linear_start, cfg.linear_end)
    for buf in SCHEDULE_BUFFERS:
        key = "diffusion." + buf
        ref = schedule[buf]
        if key not in sd:
            sd[key] = ref.clone()
        elif sd[key].shape != ref.shape or not torch.allclose(sd[key].float(), ref, rtol=1e-5, atol=1e-6):
            raise DiffRIRCheckpointError(
                f"{name}: schedule buffer '{key}' = {sd[key].flatten()[:4].tolist()} does not match the x1 "
                f"schedule {ref.tolist()} (4 steps, linear 0.1..0.99). Expected {EXPECTED}."
            )


def check_diffrir_state_dict(
    sd: Mapping[str, torch.Tensor], name: str = "state dict", net: DiffRIRNet | None = None
) -> dict[str, torch.Tensor]:
    """Validate (and complete) a state dict for the x1 network; returns a dict ready for strict loading.

    ``net`` (optional) is an x1 network whose keys and shapes are expected (saves building one).
    """
    sd = dict(sd)
    expected = {k: v.shape for k, v in net.state_dict().items()} if net is not None else _expected_shapes()
    hint = _diagnose_other_model(sd)
    unexpected = [k for k in sd if k not in expected]
    try:  # before the schedule comparison, so an int32 file is named as such, not as a schedule mismatch
        check_weights(sd, name, everything=True, fix="get the file again")
    except LLMGAInputError as err:
        raise DiffRIRCheckpointError(str(err)) from None
    _complete(sd, expected, name)
    missing = [k for k in expected if k not in sd]
    if missing or unexpected:
        parts = [f"{name} is not {EXPECTED}."]
        if missing:
            parts.append(f"{len(missing)} missing keys, e.g. {missing[:_SHOW]}.")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected keys, e.g. {unexpected[:_SHOW]}.")
        raise DiffRIRCheckpointError(" ".join(parts) + hint)
    wrong = [
        f"{k}: file {list(sd[k].shape)} vs expected {list(shape)}"
        for k, shape in expected.items()
        if sd[k].shape != shape
    ]
    if wrong:
        raise DiffRIRCheckpointError(
            f"{name} is not {EXPECTED}. {len(wrong)} tensors have other shapes, e.g. {wrong[:_SHOW]}.{hint}"
        )
    not_float = [k for k, v in sd.items() if not v.is_floating_point()]
    if not_float:
        raise DiffRIRCheckpointError(f"{name}: non-float tensors where weights are expected, e.g. {not_float[:_SHOW]}.")
    return sd


def read_diffrir_state_dict(
    path: str | os.PathLike[str], net: DiffRIRNet | None = None
) -> dict[str, torch.Tensor]:
    """Read and validate a DiffRIR x1 weight file (``.pth``-style pickle or ``.safetensors``)."""
    p = Path(path)
    if not p.is_file():
        raise DiffRIRCheckpointError(f"{p}: no such file.")
    suffix = p.suffix.lower()
    if suffix in SAFETENSORS_SUFFIXES:
        raw: object = _read_safetensors(p)
    elif suffix in TORCH_SUFFIXES:
        raw = _read_torch(p)
    else:
        raise DiffRIRCheckpointError(
            f"{p.name}: unknown file type '{suffix}'; use {', '.join(TORCH_SUFFIXES + SAFETENSORS_SUFFIXES)}."
        )
    return check_diffrir_state_dict(_pick_state_dict(raw, p.name), p.name, net)


def load_diffrir(
    path: str | os.PathLike[str], device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32
) -> DiffRIRNet:
    """Build the x1 network and load ``path`` strictly; returns it in eval mode without gradients."""
    net = DiffRIRNet(X1_CONFIG)
    sd = read_diffrir_state_dict(path, net)
    net.load_state_dict(sd, strict=True)  # copies, converting fp16/bf16 files to the fp32 parameters
    return net.eval().requires_grad_(False).to(device=device, dtype=dtype)
