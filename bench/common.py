"""Side-by-side timing: interleave the two sides, repeat, report medians, the ratio and its spread.

These machines are noisy, so a figure is only ever a ratio of two things measured in the same run,
alternating A and B so that drifts in machine load hit both sides alike.
"""

from __future__ import annotations

import json
import platform
import statistics
import time
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"


def interleaved(ours: Callable[[], object], theirs: Callable[[], object], repeats: int, warmup: int = 1) -> dict:
    """Time ``ours`` and ``theirs`` alternately; ratio = ours / theirs (below 1 means we are faster)."""
    for _ in range(warmup):
        ours()
        theirs()
    a: list[float] = []
    b: list[float] = []
    for i in range(repeats):
        order = (ours, theirs) if i % 2 == 0 else (theirs, ours)
        for fn in order:
            start = time.perf_counter()
            fn()
            (a if fn is ours else b).append(time.perf_counter() - start)
    ratios = sorted(x / y for x, y in zip(a, b, strict=True))
    return {
        "ours_median_s": statistics.median(a),
        "theirs_median_s": statistics.median(b),
        "ratio_median": statistics.median(a) / statistics.median(b),
        "ratio_p10": ratios[max(0, len(ratios) // 10)],
        "ratio_p90": ratios[min(len(ratios) - 1, (len(ratios) * 9) // 10)],
        "repeats": repeats,
    }


def report(name: str, label: str, stats: dict, goal: str) -> None:
    print(
        f"{label}: ours {stats['ours_median_s'] * 1000:.1f} ms vs {stats['theirs_median_s'] * 1000:.1f} ms, "
        f"ratio {stats['ratio_median']:.3f} (p10 {stats['ratio_p10']:.3f}, p90 {stats['ratio_p90']:.3f}, "
        f"n={stats['repeats']}; goal {goal})"
    )


def write_result(name: str, payload: dict) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    payload = {
        "benchmark": name,
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": f"{platform.machine()} {platform.processor() or ''} python {platform.python_version()}".strip(),
        **payload,
    }
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps(payload, indent=2) + "\n")
    return path
