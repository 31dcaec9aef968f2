"""Cancel latency per long loop of llmga_core: the time from "Cancel pressed" to the loop stopping.

    python bench/cancel_latency.py            # every loop, a JSON line each
    python bench/cancel_latency.py diffrir    # only the ones whose name contains "diffrir"

A background timer sets the flag after ``--after`` seconds; the loop's ``check_interrupt`` raises once it
sees it; latency = raise time - flag time. Next to each figure is the work between two checks before
issue 19 ("before_s": how long the same loop ran with no check inside it), measured in the same run.
DiffRIR runs the seeded synthetic weights (512x512, 2-core CPU figures in BENCHMARKS.md).
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch

from bench.diffrir_tiling import WEIGHT_SEED, hole, pattern
from llmga_core.diffrir.restore import restore
from llmga_core.diffrir.synthetic import synthetic_network


class Cancelled(Exception):
    pass


def cancel_latency(run: Callable[[Callable[[], None]], object], after: float) -> float:
    """Seconds from the flag being set (``after`` s into ``run``) until ``run`` raised Cancelled."""
    flag = threading.Event()
    pressed: list[float] = []

    def press() -> None:
        pressed.append(time.perf_counter())
        flag.set()

    def check() -> None:
        if flag.is_set():
            raise Cancelled

    threading.Timer(after, press).start()
    try:
        run(check)
    except Cancelled:
        return time.perf_counter() - pressed[0]
    raise RuntimeError("the loop finished before Cancel was pressed: raise the size or lower --after")


def diffrir(size: int, tile: int | None, after: float) -> dict:
    net = synthetic_network(WEIGHT_SEED)
    gen, ref, mask = pattern(size, size, 1), pattern(size, size, 2), hole(size, size)[:, 0]

    def run(check: Callable[[], None]) -> object:
        return restore(net, gen, ref, mask, seed=0, tile_size=tile, tile_overlap=32, check_interrupt=check)

    latency = cancel_latency(run, after)
    start = time.perf_counter()  # before: checks only between tiles (or images); one unit of work
    if tile is None:
        restore(net, gen, ref, mask, seed=0)
    else:
        restore(net, gen[..., :tile, :tile], ref[..., :tile, :tile], mask[..., :tile, :tile], seed=0)  # ~ one tile
    before = time.perf_counter() - start
    return {"loop": f"diffrir {size}x{size} tiling {tile or 'off'}", "latency_s": latency, "before_s": before}


def lpw_parser() -> dict:
    from llmga_core.lpw.parser import PromptTooDeep, parse_attention

    text = "(" * 18000 + "a" + ")" * 18000
    start = time.perf_counter()
    try:
        parse_attention(text)
    except PromptTooDeep:
        pass
    refused = time.perf_counter() - start
    worst = "(" * 49 + "(a)b" * 9000  # the deepest nesting allowed over 36k characters: the most work
    start = time.perf_counter()
    parse_attention(worst)
    return {"loop": "lpw parser 36k chars", "refused_nested_s": refused, "worst_allowed_s": time.perf_counter() - start}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("only", nargs="?", default="")
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--after", type=float, default=3.0)
    args = parser.parse_args()
    torch.set_num_threads(2)
    cases: dict[str, Callable[[], dict]] = {
        "diffrir untiled": lambda: diffrir(args.size, None, args.after),
        "diffrir tiled": lambda: diffrir(args.size, 128, args.after),
        "lpw parser": lpw_parser,
    }
    for name, case in cases.items():
        if args.only in name:
            print(json.dumps({k: round(v, 3) if isinstance(v, float) else v for k, v in case().items()}), flush=True)


if __name__ == "__main__":
    main()
