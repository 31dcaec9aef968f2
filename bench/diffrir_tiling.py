"""Measure DiffRIR tiled-vs-untiled deviation and peak memory (our implementation only).

    python bench/diffrir_tiling.py deviation            # 256² and 512², several tile/overlap settings
    python bench/diffrir_tiling.py memory --size 2048   # peak RSS, one fresh subprocess per configuration

Weights are the seeded synthetic ones (llmga_core.diffrir.synthetic, seed 20240115); images are smooth
seeded patterns with a rectangular + disc hole. Numbers are printed as JSON lines.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch

from llmga_core.diffrir.restore import restore
from llmga_core.diffrir.synthetic import synthetic_network

WEIGHT_SEED = 20240115


def pattern(h: int, w: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    yy, xx = torch.meshgrid(torch.linspace(0, 1, h), torch.linspace(0, 1, w), indexing="ij")
    ph = torch.rand(3, 3, generator=g) * 6
    base = torch.stack([0.5 + 0.3 * torch.sin(ph[i, 0] + 5 * xx * ph[i, 1] + 3 * yy * ph[i, 2]) for i in range(3)])
    return (base + 0.05 * torch.randn(3, h, w, generator=g)).clamp(0, 1)[None]


def hole(h: int, w: int) -> torch.Tensor:
    m = torch.zeros(1, 1, h, w)
    m[..., h // 2: h - h // 8, w // 3: w - w // 10] = 1
    yy, xx = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
    m[0, 0][((yy - h // 4) ** 2 + (xx - w // 4) ** 2) < (min(h, w) // 6) ** 2] = 1
    return m


CONFIGS = {256: [(128, 32), (128, 64), (192, 64)], 512: [(256, 128), (384, 128)]}


def deviation(sizes: list[int]) -> None:
    net = synthetic_network(WEIGHT_SEED)
    for size in sizes:
        cfgs = CONFIGS[size]
        gen, ref = pattern(size, size, 1), pattern(size, size, 2)
        ones = torch.ones(1, 1, size, size)  # whole image restored: worst case, every pixel compared
        m = hole(size, size)
        t0 = time.perf_counter()
        base = restore(net, gen, ref, ones, seed=7)
        base_m = restore(net, gen, ref, m, seed=7)
        t_untiled = (time.perf_counter() - t0) / 2
        for tile, ov in cfgs:
            t0 = time.perf_counter()
            out = restore(net, gen, ref, ones, seed=7, tile_size=tile, tile_overlap=ov)
            dt = time.perf_counter() - t0
            out_m = restore(net, gen, ref, m, seed=7, tile_size=tile, tile_overlap=ov)
            d, dm = (out - base).abs(), (out_m - base_m).abs()
            inside = dm[m.expand_as(dm) > 0]
            print(json.dumps({
                "size": size, "tile": tile, "overlap": ov,
                "full_mask_max": round(d.max().item(), 5), "full_mask_mean": round(d.mean().item(), 6),
                "hole_max": round(inside.max().item(), 5), "hole_mean": round(inside.mean().item(), 6),
                "untiled_s": round(t_untiled, 2), "tiled_s": round(dt, 2),
                "output_range_vs_input": round((base - gen).abs().mean().item(), 4),
            }), flush=True)


def memory_one(size: int, tile: int | None, overlap: int) -> None:
    net = synthetic_network(WEIGHT_SEED)
    gen, ref, m = pattern(size, size, 1), pattern(size, size, 2), hole(size, size)
    after_load = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    t0 = time.perf_counter()
    restore(net, gen, ref, m, seed=7, tile_size=tile, tile_overlap=overlap)
    dt = time.perf_counter() - t0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"size": size, "tile": tile, "overlap": overlap, "maxrss_after_load_MB": round(after_load),
                      "maxrss_peak_MB": round(peak), "delta_MB": round(peak - after_load), "seconds": round(dt, 1)}))


def memory(size: int, configs: list[tuple[int | None, int]]) -> None:
    for tile, ov in configs:
        cmd = [sys.executable, __file__, "_memory_one", "--size", str(size), "--tile", str(tile or 0),
               "--overlap", str(ov)]
        res = subprocess.run(cmd, capture_output=True, text=True, check=False)
        print(res.stdout.strip() or res.stderr[-2000:], flush=True)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("what", choices=["deviation", "memory", "_memory_one"])
    ap.add_argument("--size", type=int, default=2048)
    ap.add_argument("--tile", type=int, default=512)
    ap.add_argument("--overlap", type=int, default=128)
    ap.add_argument("--sizes", type=int, nargs="+", default=[256, 512])
    a = ap.parse_args()
    if a.what == "deviation":
        deviation(a.sizes)
    elif a.what == "memory":
        memory(a.size, [(a.tile, a.overlap), (None, 0)])
    else:
        memory_one(a.size, a.tile or None, a.overlap)



if __name__ == "__main__":
    main()
