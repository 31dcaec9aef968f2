"""Run the numeric parity tests (pytest -m parity) under forced CPU code paths and thread counts.

Each configuration pins the SIMD level of all three kernel libraries torch uses on CPU: ATen's own
vectorised kernels (ATEN_CPU_CAPABILITY), oneDNN's convolutions (ONEDNN_MAX_CPU_ISA) and MKL's GEMMs
(MKL_ENABLE_INSTRUCTIONS), plus the torch thread count (LLMGA_TEST_THREADS, tests/conftest.py). The tests
record every checked deviation with its bound (tests/tolerances.py); this prints, per parity test, the
worst deviation/bound ratio under each configuration, as the table in tests/README.md.

    .venv/bin/python scripts/parity_matrix.py                       # default, avx2, avx512 x 1, 4 threads
    .venv/bin/python scripts/parity_matrix.py default:1 native:2    # what CI runs after the full suite

A configuration is CAPABILITY:THREADS with CAPABILITY one of native (nothing forced), default (no SIMD:
SSE4.2 for MKL, SSE4.1 for oneDNN), avx2, avx512. One the CPU cannot run (avx512 on an AVX2 machine, any
x86 level on arm64) is reported and skipped. Exit status: 1 if any run failed.

torch.randn's draws differ in the last bits between the scalar and the vectorised paths, and the tiny test
models' weights are drawn with it: the `default` configurations therefore build their own fixture cache
(.cache/fixtures-scalar-randn), as a fresh clone on such a CPU would.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PYTHON = sys.executable

# CAPABILITY -> (ATEN_CPU_CAPABILITY, MKL_ENABLE_INSTRUCTIONS, ONEDNN_MAX_CPU_ISA); None = leave unset.
LEVELS: dict[str, tuple[str | None, str | None, str | None]] = {
    "native": (None, None, None),
    "default": ("default", "SSE4_2", "SSE41"),
    "avx2": ("avx2", "AVX2", "AVX2"),
    "avx512": ("avx512", "AVX512", "AVX512_CORE"),
}
DEFAULT_CONFIGS = [f"{level}:{threads}" for level in ("default", "avx2", "avx512") for threads in (1, 4)]


def config_env(level: str, threads: int, report: Path) -> dict[str, str]:
    env = dict(os.environ)
    for name, value in zip(
        ("ATEN_CPU_CAPABILITY", "MKL_ENABLE_INSTRUCTIONS", "ONEDNN_MAX_CPU_ISA"), LEVELS[level], strict=True
    ):
        if value is None:
            env.pop(name, None)
        elif name == "ATEN_CPU_CAPABILITY" or platform.machine().lower() in ("x86_64", "amd64"):
            env[name] = value
    if level == "default":
        env["LLMGA_FIXTURE_CACHE"] = str(REPO / ".cache" / "fixtures-scalar-randn")
    env["LLMGA_TEST_THREADS"] = str(threads)
    env["LLMGA_PARITY_REPORT"] = str(report)
    return env


def effective_capability(env: dict[str, str]) -> str:
    code = "import torch; print(torch.backends.cpu.get_cpu_capability())"
    out = subprocess.run([PYTHON, "-c", code], env=env, capture_output=True, text=True, check=True)  # noqa: S603
    return out.stdout.strip()


def run(configs: list[str], pytest_args: list[str]) -> int:
    # test -> config -> (deviation, bound, check) of the check closest to its bound
    results: dict[str, dict[str, tuple[float, float, str]]] = defaultdict(dict)
    status = 0
    with tempfile.TemporaryDirectory() as tmp:
        for config in configs:
            level, _, threads = config.partition(":")
            if level not in LEVELS:
                raise SystemExit(f"unknown capability {level!r}; use one of {', '.join(LEVELS)}")
            report = Path(tmp) / f"{config.replace(':', '_')}.jsonl"
            env = config_env(level, int(threads or 1), report)
            capability = effective_capability(env)
            wanted = LEVELS[level][0]
            if wanted is not None and capability.lower() != wanted:
                print(f"== {config}: this CPU runs {capability} instead, skipped", flush=True)
                continue
            print(f"== {config} (torch capability {capability})", flush=True)
            started = time.monotonic()
            cmd = [PYTHON, "-m", "pytest", "tests", "-m", "parity", "-q", *pytest_args]
            code = subprocess.run(cmd, cwd=REPO, env=env, check=False).returncode  # noqa: S603
            print(f"== {config}: exit {code} in {time.monotonic() - started:.0f} s", flush=True)
            status = status or int(code != 0)
            for line in report.read_text(encoding="utf-8").splitlines() if report.exists() else []:
                row = json.loads(line)
                test = row["test"].split("::", 1)[-1] or row["check"]
                old = results[test].get(config)
                if old is None or row["deviation"] / row["bound"] > old[0] / old[1]:
                    results[test][config] = (row["deviation"], row["bound"], row["check"])
    print_table(results, configs)
    return status


def print_table(results: dict[str, dict[str, tuple[float, float, str]]], configs: list[str]) -> None:
    ran = [c for c in configs if any(c in per for per in results.values())]
    print("\n| parity test | " + " | ".join(ran) + " | worst deviation | bound | in |")
    print("|---|" + "---:|" * (len(ran) + 2) + "---|")
    for test in sorted(results):
        per = results[test]
        worst = max(per.values(), key=lambda row: row[0] / row[1])
        cells = [f"{per[c][0] / per[c][1]:.2f}" if c in per else "–" for c in ran]
        print(f"| `{test}` | " + " | ".join(cells) + f" | {worst[0]:.2e} | {worst[1]:.2e} | {worst[2]} |")
    print("\nCells: the test's largest deviation / bound under that configuration (≤ 1 passes).")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("configs", nargs="*", default=DEFAULT_CONFIGS, help="CAPABILITY:THREADS, e.g. avx2:4")
    parser.add_argument("--pytest-args", default="", help="extra pytest arguments, e.g. '-x -n 2'")
    args = parser.parse_args()
    return run(args.configs, args.pytest_args.split())


if __name__ == "__main__":
    sys.exit(main())
