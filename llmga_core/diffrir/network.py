"""The DiffRIR S2 restoration network (x1), laid out so released ``params_ema`` dicts load strictly.

Three parts (llmga-spec.md 4.2):

- ``G``: a Restormer-style U-Net whose every block is modulated (FiLM) by a 256-d image prior;
- ``condition``: a conv encoder that pools the 6-channel input into the 256-d condition vector;
- ``denoise``: a small MLP that predicts the prior from (condition, timestep, noisy prior).

``diffusion`` (see :mod:`.prior`) refers to ``condition`` and ``denoise`` again, which is why released
state dicts hold every one of their tensors twice. Module and parameter names below follow the released
key names exactly; the attribute names are therefore fixed, not a style choice.

Input layout everywhere: ``[B, 6, H, W]`` = generated RGB then masked reference RGB, values 0..1, H and W
multiples of 32 for ``G`` (4 for ``condition``).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .prior import PriorDiffusion

PRIOR_DIM = 256  # length of the image prior (IPR) vector that modulates every block
_HALF_TYPES = (torch.float16, torch.bfloat16)


@dataclass(frozen=True)
class DiffRIRConfig:
    """Hyper-parameters of the released x1 S2 model (``inference_diffrir.py`` instantiation)."""

    dim: int = 64
    num_blocks: tuple[int, int, int, int] = (13, 1, 1, 1)
    num_refinement_blocks: int = 13
    heads: tuple[int, int, int, int] = (1, 2, 4, 8)
    ffn_expansion_factor: float = 2.2
    n_encoder_res: int = 9
    n_denoise_res: int = 1
    timesteps: int = 4
    linear_start: float = 0.1
    linear_end: float = 0.99


X1_CONFIG = DiffRIRConfig()
INPUT_CHANNELS = 6  # generated RGB + masked reference RGB
UNSHUFFLE = 4  # both G and the condition encoder start with PixelUnshuffle(4): 6 ch -> 96 ch at H/4
SIZE_MULTIPLE = 32  # PixelUnshuffle(4) then three 2x downsamplings


def _film(x: torch.Tensor, prior: torch.Tensor, kernel: nn.Module, gain: torch.Tensor | None) -> torch.Tensor:
    """Scale-and-shift every channel of ``x`` by a linear map of the prior.

    ``gain`` is the preceding norm's per-channel weight, folded into the scale (one full-size multiply
    fewer): ``(x * gain) * scale + shift == x * (gain * scale) + shift``.
    """
    scale, shift = kernel(prior).unsqueeze(-1).unsqueeze(-1).chunk(2, dim=1)
    if gain is not None:
        scale = scale * gain.view(1, -1, 1, 1).to(scale.dtype)
    return torch.addcmul(shift, x, scale)


class _NormWeight(nn.Module):
    """Holds the per-channel gain under the released name ``norm*.body.weight``."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(channels))


class ChannelNorm(nn.Module):
    """Bias-free layer norm over channels of an NCHW map: ``x / sqrt(var_c(x) + 1e-5) * w``.

    Computed in place on the 4-D map (no NHWC round trip); half inputs are normalised in fp32 because
    squared activations overflow fp16.
    """

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.body = _NormWeight(channels)

    def standardize(self, x: torch.Tensor) -> torch.Tensor:
        """``x / sqrt(var + 1e-5)`` without the gain (callers fold the gain into what follows)."""
        xf = x.float() if x.dtype in _HALF_TYPES else x
        var = xf.var(dim=1, keepdim=True, unbiased=False)
        return (xf * torch.rsqrt(var + 1e-5)).to(x.dtype)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.standardize(x) * self.body.weight.view(1, -1, 1, 1)


class ChannelAttention(nn.Module):
    """Multi-head attention across channels (C_h x C_h maps per head), cost linear in pixels."""

    def __init__(self, dim: int, num_heads: int) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.temperature = nn.Parameter(torch.ones(num_heads, 1, 1))
        self.kernel = nn.Sequential(nn.Linear(PRIOR_DIM, dim * 2, bias=False))
        self.qkv = nn.Conv2d(dim, dim * 3, kernel_size=1, bias=False)
        self.qkv_dwconv = nn.Conv2d(dim * 3, dim * 3, kernel_size=3, padding=1, groups=dim * 3, bias=False)
        self.project_out = nn.Conv2d(dim, dim, kernel_size=1, bias=False)

    def forward(self, x: torch.Tensor, prior: torch.Tensor, gain: torch.Tensor | None = None) -> torch.Tensor:
        b, c, h, w = x.shape
        x = _film(x, prior, self.kernel, gain)
        q, k, v = self.qkv_dwconv(self.qkv(x)).chunk(3, dim=1)
        heads = self.num_heads
        q = q.reshape(b, heads, c // heads, h * w)
        k = k.reshape(b, heads, c // heads, h * w)
        v = v.reshape(b, heads, c // heads, h * w)
        if q.dtype in _HALF_TYPES:  # norms over H*W pixels overflow fp16; the C_h x C_h map is tiny
            q, k = q.float(), k.float()
        q = F.normalize(q, dim=-1)
        k = F.normalize(k, dim=-1)
        attn = (q @ k.transpose(-2, -1)) * self.temperature.to(q.dtype)
        attn = attn.softmax(dim=-1).to(v.dtype)
        out = (attn @ v).reshape(b, c, h, w)
        return self.project_out(out)


class GatedFeedForward(nn.Module):
    """Gated depth-wise conv feed-forward: ``gelu(a) * b`` with ``a, b`` from one expanded projection."""

    def __init__(self, dim: int, expansion: float) -> None:
        super().__init__()
        hidden = int(dim * expansion)
        self.project_in = nn.Conv2d(dim, hidden * 2, kernel_size=1, bias=False)
        self.dwconv = nn.Conv2d(hidden * 2, hidden * 2, kernel_size=3, padding=1, groups=hidden * 2, bias=False)
        self.project_out = nn.Conv2d(hidden, dim, kernel_size=1, bias=False)
        self.kernel = nn.Sequential(nn.Linear(PRIOR_DIM, dim * 2, bias=False))

    def forward(self, x: torch.Tensor, prior: torch.Tensor, gain: torch.Tensor | None = None) -> torch.Tensor:
        x = self.project_in(_film(x, prior, self.kernel, gain))
        gate, value = self.dwconv(x).chunk(2, dim=1)
        gated = F.gelu(gate)
        return self.project_out(gated.mul_(value) if not torch.is_grad_enabled() else gated * value)


class PriorBlock(nn.Module):
    """Pre-norm transformer block: attention then feed-forward, both residual and prior-modulated."""

    def __init__(self, dim: int, num_heads: int, expansion: float) -> None:
        super().__init__()
        self.norm1 = ChannelNorm(dim)
        self.attn = ChannelAttention(dim, num_heads)
        self.norm2 = ChannelNorm(dim)
        self.ffn = GatedFeedForward(dim, expansion)

    def forward(self, x: torch.Tensor, prior: torch.Tensor) -> torch.Tensor:
        # Without autograd the residual sums reuse x's buffer; block inputs are always fresh tensors
        # produced inside G, never the caller's.
        inplace = not torch.is_grad_enabled()
        a = self.attn(self.norm1.standardize(x), prior, self.norm1.body.weight)
        x = x.add_(a) if inplace else x + a
        f = self.ffn(self.norm2.standardize(x), prior, self.norm2.body.weight)
        return x.add_(f) if inplace else x + f


class PriorStage(nn.Sequential):
    """A run of :class:`PriorBlock` sharing one prior (indices give the released ``.{i}.`` keys)."""

    def forward(self, x: torch.Tensor, prior: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        for block in self:
            x = block(x, prior)
        return x


def _stage(count: int, dim: int, heads: int, expansion: float) -> PriorStage:
    return PriorStage(*[PriorBlock(dim, heads, expansion) for _ in range(count)])


class _ConvEmbed(nn.Module):
    def __init__(self, in_ch: int, dim: int) -> None:
        super().__init__()
        self.proj = nn.Conv2d(in_ch, dim, kernel_size=3, padding=1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x)


class _Resample(nn.Module):
    """conv3x3 then pixel (un)shuffle by 2: halves (down) or doubles (up) the resolution."""

    def __init__(self, channels: int, down: bool) -> None:
        super().__init__()
        if down:
            self.body = nn.Sequential(
                nn.Conv2d(channels, channels // 2, 3, padding=1, bias=False), nn.PixelUnshuffle(2)
            )
        else:
            self.body = nn.Sequential(nn.Conv2d(channels, channels * 2, 3, padding=1, bias=False), nn.PixelShuffle(2))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)


class RestorationUNet(nn.Module):
    """``G``: 4-level U-Net of prior-modulated blocks at H/4..H/32, with a x4 upsampling tail.

    Predicts a residual added to the generated image (the first three input channels).
    """

    def __init__(self, cfg: DiffRIRConfig = X1_CONFIG) -> None:
        super().__init__()
        d, nb, hd, ex = cfg.dim, cfg.num_blocks, cfg.heads, cfg.ffn_expansion_factor
        self.pixel_unshuffle = nn.PixelUnshuffle(UNSHUFFLE)
        self.patch_embed = _ConvEmbed(INPUT_CHANNELS * UNSHUFFLE**2, d)
        self.encoder_level1 = _stage(nb[0], d, hd[0], ex)
        self.down1_2 = _Resample(d, down=True)
        self.encoder_level2 = _stage(nb[1], d * 2, hd[1], ex)
        self.down2_3 = _Resample(d * 2, down=True)
        self.encoder_level3 = _stage(nb[2], d * 4, hd[2], ex)
        self.down3_4 = _Resample(d * 4, down=True)
        self.latent = _stage(nb[3], d * 8, hd[3], ex)
        self.up4_3 = _Resample(d * 8, down=False)
        self.reduce_chan_level3 = nn.Conv2d(d * 8, d * 4, kernel_size=1, bias=False)
        self.decoder_level3 = _stage(nb[2], d * 4, hd[2], ex)
        self.up3_2 = _Resample(d * 4, down=False)
        self.reduce_chan_level2 = nn.Conv2d(d * 4, d * 2, kernel_size=1, bias=False)
        self.decoder_level2 = _stage(nb[1], d * 2, hd[1], ex)
        self.up2_1 = _Resample(d * 2, down=False)
        # level 1 decodes at 2*dim channels: the skip is concatenated without a 1x1 reduction
        self.decoder_level1 = _stage(nb[0], d * 2, hd[0], ex)
        self.refinement = _stage(cfg.num_refinement_blocks, d * 2, hd[0], ex)
        self.tail = nn.Sequential(
            nn.Sequential(
                nn.Conv2d(d * 2, d * 8, 3, padding=1),
                nn.PixelShuffle(2),
                nn.Conv2d(d * 2, d * 8, 3, padding=1),
                nn.PixelShuffle(2),
            ),
            nn.Conv2d(d * 2, 3, 3, padding=1),
        )

    def forward(self, x: torch.Tensor, prior: torch.Tensor) -> torch.Tensor:
        enc1 = self.encoder_level1(self.patch_embed(self.pixel_unshuffle(x)), prior)
        enc2 = self.encoder_level2(self.down1_2(enc1), prior)
        enc3 = self.encoder_level3(self.down2_3(enc2), prior)
        lat = self.latent(self.down3_4(enc3), prior)
        dec3 = self.decoder_level3(self.reduce_chan_level3(torch.cat([self.up4_3(lat), enc3], 1)), prior)
        del lat, enc3
        dec2 = self.decoder_level2(self.reduce_chan_level2(torch.cat([self.up3_2(dec3), enc2], 1)), prior)
        del dec3, enc2
        dec1 = self.decoder_level1(torch.cat([self.up2_1(dec2), enc1], 1), prior)
        del dec2, enc1
        return self.tail(self.refinement(dec1, prior)) + x[:, :3]


class _ResBlock(nn.Module):
    def __init__(self, channels: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(channels, channels, 3, padding=1),
            nn.LeakyReLU(0.1, inplace=True),
            nn.Conv2d(channels, channels, 3, padding=1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x) + x


class ConditionEncoder(nn.Module):
    """``condition`` (CPEN): 6-ch image -> 256-d condition vector by convs and global average pooling."""

    def __init__(self, cfg: DiffRIRConfig = X1_CONFIG) -> None:
        super().__init__()
        f = cfg.dim
        self.pixel_unshuffle = nn.PixelUnshuffle(UNSHUFFLE)
        self.E = nn.Sequential(
            nn.Conv2d(INPUT_CHANNELS * UNSHUFFLE**2, f, 3, padding=1),
            nn.LeakyReLU(0.1, inplace=True),
            *[_ResBlock(f) for _ in range(cfg.n_encoder_res)],
            nn.Conv2d(f, f * 2, 3, padding=1),
            nn.LeakyReLU(0.1, inplace=True),
            nn.Conv2d(f * 2, f * 2, 3, padding=1),
            nn.LeakyReLU(0.1, inplace=True),
            nn.Conv2d(f * 2, PRIOR_DIM, 3, padding=1),
            nn.LeakyReLU(0.1, inplace=True),
            nn.AdaptiveAvgPool2d(1),
        )
        self.mlp = nn.Sequential(
            nn.Linear(PRIOR_DIM, PRIOR_DIM),
            nn.LeakyReLU(0.1, inplace=True),
            nn.Linear(PRIOR_DIM, PRIOR_DIM),
            nn.LeakyReLU(0.1, inplace=True),
        )

        # every 3x3 conv widens the receptive field by one feature pixel
        self.halo = sum(1 for m in self.E.modules() if isinstance(m, nn.Conv2d))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.mlp(self.E(self.pixel_unshuffle(x)).flatten(1))

    def forward_chunked(self, x: torch.Tensor, chunk: int) -> torch.Tensor:
        """Same result as :meth:`forward` (up to summation order) with memory bounded by ``chunk``.

        The encoder is convolutions followed by a global mean, so the feature map is computed in
        ``chunk x chunk`` pieces (feature pixels, i.e. 4*chunk image pixels) with a ``halo``-wide margin
        of real neighbours, which makes each piece's centre exact; the centres are summed.
        """
        feat = self.pixel_unshuffle(x)
        h, w = feat.shape[-2:]
        if h <= chunk and w <= chunk:
            return self.mlp(self.E(feat).flatten(1))
        body, halo = self.E[:-1], self.halo
        # at least fp32 (fp16 sums overflow); a float64 network keeps its precision
        sum_dtype = torch.promote_types(feat.dtype, torch.float32)
        total = torch.zeros(feat.shape[0], PRIOR_DIM, device=feat.device, dtype=sum_dtype)
        for y0 in range(0, h, chunk):
            for x0 in range(0, w, chunk):
                y1, x1 = min(y0 + chunk, h), min(x0 + chunk, w)
                ya, xa = max(0, y0 - halo), max(0, x0 - halo)
                out = body(feat[..., ya : min(h, y1 + halo), xa : min(w, x1 + halo)])
                core = out[..., y0 - ya : y1 - ya, x0 - xa : x1 - xa]
                total += core.to(sum_dtype).sum(dim=(-2, -1))
        return self.mlp((total / (h * w)).to(feat.dtype))


class _MLPLayer(nn.Module):
    # Named "ResMLP" upstream but has no skip connection; the released weights were trained without one.
    def __init__(self, width: int) -> None:
        super().__init__()
        self.resmlp = nn.Sequential(nn.Linear(width, width), nn.LeakyReLU(0.1, inplace=True))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.resmlp(x)


class PriorDenoiser(nn.Module):
    """``denoise``: predicts the clean prior from ``[condition, t / (10*T), noisy prior]``."""

    def __init__(self, cfg: DiffRIRConfig = X1_CONFIG) -> None:
        super().__init__()
        self.max_period = cfg.timesteps * 10
        self.resmlp = nn.Sequential(
            nn.Linear(PRIOR_DIM * 2 + 1, PRIOR_DIM),
            nn.LeakyReLU(0.1, inplace=True),
            *[_MLPLayer(PRIOR_DIM) for _ in range(cfg.n_denoise_res)],
        )

    def forward(self, x: torch.Tensor, t: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        t = (t.float() / self.max_period).to(x.dtype).view(-1, 1)
        return self.resmlp(torch.cat([cond, t, x], dim=1))


class DiffRIRNet(nn.Module):
    """The whole x1 S2 model. ``forward(x6, noise)`` returns the restored RGB (unclamped) at input size."""

    def __init__(self, cfg: DiffRIRConfig = X1_CONFIG) -> None:
        super().__init__()
        self.config = cfg
        self.G = RestorationUNet(cfg)
        self.condition = ConditionEncoder(cfg)
        self.denoise = PriorDenoiser(cfg)
        self.diffusion = PriorDiffusion(self.denoise, self.condition, cfg.timesteps, cfg.linear_start, cfg.linear_end)

    def estimate_prior(self, x6: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        """The 256-d prior of each image (needs H, W multiples of 4), from starting noise ``[B, 256]``."""
        return self.diffusion(x6, noise)

    def restore(self, x6: torch.Tensor, prior: torch.Tensor) -> torch.Tensor:
        """Run ``G`` with a given prior (H, W multiples of 32)."""
        return self.G(x6, prior)

    def forward(self, x6: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        return self.G(x6, self.diffusion(x6, noise))


def build_diffrir_x1() -> DiffRIRNet:
    """A randomly initialised x1 network in eval mode (load weights with :mod:`.checkpoint`)."""
    return DiffRIRNet(X1_CONFIG).eval()
