"""DiffRIR x1 inference: harmonise the generated region of an inpainted/outpainted image with the rest.

Tensor layout (ComfyUI-neutral, channels first, values 0..1, float):

- ``generated``: ``[B, 3, h, w]``, the Stable Diffusion output; resized (bicubic, antialiased) to the
  reference size when ``(h, w)`` differs;
- ``reference``: ``[B, 3, H, W]`` or ``[1, 3, H, W]``, the original image (its hole may be anything: only
  ``(1 - mask) * reference`` is used, as in ``inference_diffrir.py``);
- ``mask``: ``[H, W]``, ``[B, H, W]`` or ``[B, 1, H, W]`` (batch 1 broadcasts), 1 = generated region,
  binarised at 0.5;
- result: ``[B, 3, H, W]`` on the reference's device and dtype; equal to ``reference`` outside the mask,
  bit for bit, and the restored pixels (clamped to 0..1) inside.

Procedure per image (llmga-spec.md 4.5): ``x6 = cat(generated, (1 - mask) * reference)``, reflect-pad right
and bottom to a multiple of 32, prior from seeded noise through the 4-step DDPM, ``G``, crop, composite.
With ``tile_size`` set, ``G`` runs on overlapping 32-aligned tiles blended with cosine ramps while the prior
is computed once per image on the whole image (exactly, in chunks; see ``ConditionEncoder``).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator

import torch
import torch.nn.functional as F

from ..errors import LLMGAInputError
from .network import PRIOR_DIM, SIZE_MULTIPLE, ChannelAttention, DiffRIRNet, GatedFeedForward, _ResBlock
from .tiling import tile_grid, tile_weight, validate_tiling

# Tiling defaults, from bench/diffrir_tiling.py (seeded synthetic weights; max / mean abs deviation from
# untiled over a fully restored image): 256² with tile 128/overlap 32: 0.45/0.033, 128/64: 0.38/0.026,
# 192/64: 0.19/0.011; 512² with 256/128: 0.15/0.0086, 384/128: 0.087/0.0047. The deviation falls
# steeply with the absolute tile size (channel attention pools over the tile), and more overlap helps
# less, so the default is a large tile with a quarter overlap. Peak RSS above the loaded model, CPU fp32,
# 2048² image: 5.0 GB untiled, 1.49 GB with the default 1024²/256 tiles, 0.46 GB with 512²/128 tiles: a
# tile bounds the working set whatever the image size.
DEFAULT_TILE_SIZE = 1024
DEFAULT_TILE_OVERLAP = 256
# Suggested switch for an "auto" mode: tile only when the padded image is larger than one default tile,
# so images up to 1024² run exactly like the original (one pass).
AUTO_TILE_ABOVE = DEFAULT_TILE_SIZE
# The condition encoder runs in chunks of this many feature pixels (x4 image pixels) per side.
CONDITION_CHUNK = 256

ProgressFn = Callable[[int, int], None]
InterruptFn = Callable[[], None]


def _padded(side: int) -> int:
    """``side`` rounded up to the network's size multiple (the input is reflect-padded to it)."""
    return side + (-side) % SIZE_MULTIPLE


def auto_tile_size(height: int, width: int) -> int | None:
    """The tile size an "auto" tiling mode should pass for an image: ``None`` (one pass) up to 1024²."""
    padded = max(_padded(height), _padded(width))
    return DEFAULT_TILE_SIZE if padded > AUTO_TILE_ABOVE else None


def _check_image(name: str, t: object) -> torch.Tensor:
    if not isinstance(t, torch.Tensor):
        raise LLMGAInputError(f"DiffRIR '{name}' must be a tensor, got {type(t).__name__}.")
    if t.dim() != 4 or t.shape[1] != 3:
        raise LLMGAInputError(
            f"DiffRIR '{name}' must be [batch, 3, height, width] RGB, got shape {list(t.shape)}"
            + (" (wrong channel count: only RGB is supported; drop alpha first)" if t.dim() == 4 else "")
            + "."
        )
    if not t.is_floating_point():
        raise LLMGAInputError(f"DiffRIR '{name}' must be float with values 0..1, got {t.dtype}.")
    if t.shape[0] == 0 or t.shape[2] == 0 or t.shape[3] == 0:
        raise LLMGAInputError(f"DiffRIR '{name}' is empty: shape {list(t.shape)}.")
    if not torch.isfinite(t).all():
        raise LLMGAInputError(f"DiffRIR '{name}' contains NaN or infinite pixel values.")
    return t


def _check_mask(t: object, height: int, width: int) -> torch.Tensor:
    if not isinstance(t, torch.Tensor):
        raise LLMGAInputError(f"DiffRIR 'mask' must be a tensor, got {type(t).__name__}.")
    m = t
    if m.dim() == 2:
        m = m[None, None]
    elif m.dim() == 3:
        m = m[:, None]
    elif m.dim() != 4 or m.shape[1] != 1:
        raise LLMGAInputError(
            f"DiffRIR 'mask' must be [height, width], [batch, height, width] or [batch, 1, height, width], "
            f"got shape {list(t.shape)}."
        )
    if m.shape[-2:] != (height, width):
        raise LLMGAInputError(
            f"DiffRIR mask is {m.shape[-1]}x{m.shape[-2]} but the reference image is {width}x{height}; "
            "they must be the same size (resize the mask to the reference)."
        )
    if m.dtype != torch.bool and not m.is_floating_point() and m.dtype != torch.uint8:
        raise LLMGAInputError(f"DiffRIR 'mask' must be float (0..1) or bool, got {m.dtype}.")
    if m.is_floating_point() and not torch.isfinite(m).all():
        raise LLMGAInputError("DiffRIR 'mask' contains NaN or infinite values.")
    if m.dtype == torch.uint8:
        m = m.float() / 255.0
    return m >= 0.5 if m.dtype != torch.bool else m


def _batch_size(**sizes: int) -> int:
    n = max(sizes.values())
    bad = {k: v for k, v in sizes.items() if v not in (1, n)}
    if bad:
        desc = ", ".join(f"{k} {v}" for k, v in sizes.items())
        raise LLMGAInputError(
            f"DiffRIR batch sizes do not match ({desc}); each must be {n} or 1 (a batch of 1 is shared)."
        )
    return n


def _pad_to_multiple(x: torch.Tensor, multiple: int) -> torch.Tensor:
    h, w = x.shape[-2:]
    ph, pw = (-h) % multiple, (-w) % multiple
    if ph == 0 and pw == 0:
        return x
    # reflect like inference_diffrir.py; tiny images (pad >= side) cannot reflect, so replicate there
    mode = "reflect" if ph < h and pw < w else "replicate"
    return F.pad(x, (0, pw, 0, ph), mode=mode)


def _network_dtype(net: DiffRIRNet) -> torch.dtype:
    return next(net.parameters()).dtype


def _check_dtype(dtype: object, net_dtype: torch.dtype) -> bool:
    """Validate the requested compute dtype; True when it needs autocast (lower than the network's).

    Asking for float32 with half-precision weights runs in the weights' precision: nothing more precise
    is possible without casting the caller's network, which we never do.
    """
    if dtype is not None and dtype not in (torch.float16, torch.bfloat16, torch.float32):
        raise LLMGAInputError(f"DiffRIR dtype must be float32, float16 or bfloat16, got {dtype}.")
    return dtype is not None and dtype != net_dtype and net_dtype in (torch.float32, torch.float64)


def _run_g_tiled(
    net: DiffRIRNet,
    x6: torch.Tensor,
    prior: torch.Tensor,
    tile_size: int,
    overlap: int,
    before_tile: Callable[[], None],
    after_tile: Callable[[], None],
) -> torch.Tensor:
    _, _, h, w = x6.shape
    acc = torch.zeros(x6.shape[0], 3, h, w, device=x6.device, dtype=torch.float32)
    weight_sum = torch.zeros(1, 1, h, w, device=x6.device, dtype=torch.float32)
    for y, x, th, tw in tile_grid(h, w, tile_size, overlap):
        before_tile()
        out = net.restore(x6[..., y:y + th, x:x + tw], prior).float()
        wt = tile_weight(y, x, th, tw, h, w, overlap).to(x6.device)
        acc[..., y:y + th, x:x + tw] += out * wt
        weight_sum[..., y:y + th, x:x + tw] += wt
        after_tile()
    return acc / weight_sum


# Modules after which a Cancel is honoured inside one pass of the network: each is a small share of a
# whole-image pass (a 512x512 image without tiling runs ~100 of them), so Cancel stops within one.
_CHECKPOINTS = (ChannelAttention, GatedFeedForward, _ResBlock)


@contextlib.contextmanager
def _cancellable(net: DiffRIRNet, check: Callable[[], None] | None) -> Iterator[None]:
    """Call ``check()`` before every attention, feed-forward and residual block of ``net`` meanwhile."""
    if check is None:
        yield
        return
    hooks = [m.register_forward_pre_hook(lambda _m, _a: check()) for m in net.modules() if isinstance(m, _CHECKPOINTS)]
    try:
        yield
    finally:
        for hook in hooks:
            hook.remove()


def _items(n: int, generated: torch.Tensor, reference: torch.Tensor, mask: torch.Tensor) -> Iterator[tuple]:
    for i in range(n):
        yield (
            i,
            generated[i if generated.shape[0] > 1 else 0],
            reference[i if reference.shape[0] > 1 else 0],
            mask[i if mask.shape[0] > 1 else 0],
        )


def restore(
    net: DiffRIRNet,
    generated: torch.Tensor,
    reference: torch.Tensor,
    mask: torch.Tensor,
    *,
    seed: int = 0,
    tile_size: int | None = None,
    tile_overlap: int = DEFAULT_TILE_OVERLAP,
    dtype: torch.dtype | None = None,
    progress: ProgressFn | None = None,
    check_interrupt: InterruptFn | None = None,
) -> torch.Tensor:
    """Restore ``generated`` inside ``mask`` against ``reference``; see the module docstring for layouts.

    ``seed`` seeds the prior's starting noise (a CPU ``torch.Generator``, so results do not depend on the
    device); image ``i`` of the batch uses row ``i`` of ``randn(B, 256)``. ``tile_size`` (multiple of 32,
    or ``None`` for one pass) enables tiling of ``G`` when the padded image is larger than one tile.
    ``dtype`` is the compute precision: ``None`` = the network's own; another float type runs under
    ``torch.autocast`` (fp16/bf16 are meant for GPUs). The network runs on its own device.
    ``progress(done, total)`` is called after each tile (or image) processed, ``check_interrupt()``
    before each and before every block inside the network (so Cancel is prompt without tiling too); it
    may raise to abort. Images whose mask is empty come back as the reference without
    running the network.
    """
    reference = _check_image("reference", reference)
    generated = _check_image("generated", generated)
    _, _, height, width = reference.shape
    bin_mask = _check_mask(mask, height, width)
    n = _batch_size(generated=generated.shape[0], reference=reference.shape[0], mask=bin_mask.shape[0])
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise LLMGAInputError(f"DiffRIR seed must be an integer, got {seed!r}.")
    if tile_size is not None:
        validate_tiling(tile_size, tile_overlap)
    net_dtype = _network_dtype(net)
    use_autocast = _check_dtype(dtype, net_dtype)
    device = next(net.parameters()).device

    out = reference.expand(n, -1, -1, -1).clone()
    todo = [i for i in range(n) if bool(bin_mask[i if bin_mask.shape[0] > 1 else 0].any())]
    if not todo:
        return out
    noise = torch.randn(n, PRIOR_DIM, generator=torch.Generator().manual_seed(seed % 2**64))

    pad_h, pad_w = _padded(height), _padded(width)
    tiled = tile_size is not None and max(pad_h, pad_w) > tile_size
    per_item = len(tile_grid(pad_h, pad_w, tile_size, tile_overlap)) if tiled else 1
    total, done = len(todo) * per_item, 0

    def step() -> None:
        if check_interrupt is not None:
            check_interrupt()

    def advance() -> None:
        nonlocal done
        done += 1
        if progress is not None:
            progress(done, total)

    amp = torch.autocast(device_type=device.type, dtype=dtype) if use_autocast else contextlib.nullcontext()
    with torch.inference_mode(), amp, _cancellable(net, check_interrupt):
        for i, gen, ref, m in _items(n, generated, reference, bin_mask):
            if i not in todo:
                continue
            if not tiled:
                step()
            ref_d = ref[None].to(device=device, dtype=torch.float32)
            m_d = m[None].to(device=device)
            gen_d = gen[None].to(device=device, dtype=torch.float32)
            if gen_d.shape[-2:] != (height, width):
                gen_d = F.interpolate(gen_d, size=(height, width), mode="bicubic", antialias=True, align_corners=False)
                gen_d = gen_d.clamp(0.0, 1.0)
            x6 = torch.cat([gen_d, ref_d * (~m_d)], dim=1)
            x6 = _pad_to_multiple(x6, SIZE_MULTIPLE).to(net_dtype)
            # the prior is computed once per image on the whole image, shared by all tiles
            cond = net.condition.forward_chunked(x6, CONDITION_CHUNK)
            prior = net.diffusion.sample(cond, noise[i:i + 1].to(device))
            if tiled:
                restored = _run_g_tiled(net, x6, prior, tile_size, tile_overlap, step, advance)
            else:
                restored = net.restore(x6, prior)
                advance()
            restored = restored[..., :height, :width].float().clamp(0.0, 1.0)
            restored = restored.to(device=out.device, dtype=out.dtype)
            # outside the mask take the caller's own reference values (no device/dtype round trip)
            out[i] = torch.where(m.to(out.device), restored[0], ref)
    return out
