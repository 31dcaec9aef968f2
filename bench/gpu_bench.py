"""The single-GPU benchmark (issue 9 item 7): real-size random-weight models, one run under a time budget.

    .venv/bin/python bench/gpu_bench.py [--budget-s 420] [--sections mllm,unet,diffrir,edit]
    .venv/bin/python bench/gpu_bench.py --smoke        # every section on the CPU, tiny sizes, < 1 min

Normally started by ``bench/gpu.sh``, which sets the machine up first. Sections (bench/gpu_sections.py):

- ``mllm``: decode tokens/s at batch 1 of the LLMGA MLLM in the Qwen2-7B LLaVA layout, fp16, through
  ``llmga_core.mllm.generate``, against the memory-bandwidth bound (weight bytes read per token / the
  bandwidth of a device-to-device copy measured on the card);
- ``unet``: KSampler it/s for SD1.5 at 512² and SDXL at 1024², LLMGA Long Prompt Encode vs core CLIP
  Text Encode feeding the same KSampler, interleaved;
- ``diffrir``: LLMGA DiffRIR Restore latency at 1024², precision auto vs fp32, interleaved;
- ``edit``: LLMGA Instruction Edit wall time at 512² with the node's default steps.

Each section runs in a child process with a share of the budget (time a section leaves unused passes to
the next); a section that fails or overruns is reported with why and the others still run. Results go
to bench/results/gpu-<device>.json (bench/results/gpu-smoke.json for ``--smoke``); the exit status is 1
when any section did not finish.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.common import write_result  # noqa: E402
from tests.harness.host import comfyui_location  # noqa: E402

PARTIAL = "PARTIAL "
# Share of the budget per section (of what is left when it starts), from expected cost on an H100:
# the 7B build + decode and the SDXL sampling dominate.
SHARES = {"mllm": 0.30, "unet": 0.42, "diffrir": 0.10, "edit": 0.18}
CHILD_STARTUP_S = 15.0  # importing torch/ComfyUI before a section's own clock starts
MIN_SECTION_S = 20.0


def run_child(section: str, smoke: bool, seconds: float) -> tuple[dict | None, str]:
    """Run one section in a fresh process for at most ``seconds``; (last reported result, status)."""
    cmd = [sys.executable, __file__, "--child", section, "--child-budget-s", f"{max(seconds - CHILD_STARTUP_S, 5):.1f}"]
    if smoke:
        cmd.append("--smoke")
    last: list[dict | None] = [None]
    with tempfile.TemporaryFile(mode="w+") as errors:
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=errors, text=True, start_new_session=True)

        def forward() -> None:
            assert proc.stdout is not None
            for line in proc.stdout:
                if line.startswith(PARTIAL):
                    last[0] = json.loads(line[len(PARTIAL) :])
                else:
                    print(line, end="", flush=True)

        reader = threading.Thread(target=forward, daemon=True)
        reader.start()
        try:
            rc = proc.wait(timeout=seconds)
            status = "ok" if rc == 0 else f"failed (exit {rc})"
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)  # its own session: the child and anything it started
            proc.wait()
            status = f"stopped at its budget of {seconds:.0f} s"
        reader.join(timeout=10)
        if status != "ok":
            errors.seek(0)
            tail = errors.read()[-2500:]
            print(f"[{section}] {status}; what it measured before is kept. stderr tail:\n{tail}", flush=True)
    return last[0], status


def child(section: str, smoke: bool, budget: float) -> None:
    import torch

    from bench.gpu_sections import SECTIONS, Context, emit

    device = "cpu" if smoke else "cuda"
    if device == "cuda" and not torch.cuda.is_available():
        raise SystemExit(f"no CUDA device visible to torch {torch.__version__} (CUDA {torch.version.cuda})")
    if smoke:
        torch.set_num_threads(min(2, os.cpu_count() or 1))
    ctx = Context(smoke=smoke, device=device, deadline=time.monotonic() + budget, comfy_dir=comfyui_location())
    emit(SECTIONS[section](ctx))


def result_name(env: dict | None, smoke: bool) -> str:
    if smoke:
        return "gpu-smoke"
    gpu = (env or {}).get("gpu") or "unknown"
    return "gpu-" + re.sub(r"[^a-z0-9]+", "-", gpu.lower()).strip("-")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--smoke", action="store_true", help="CPU, tiny models and images: checks every code path")
    parser.add_argument("--budget-s", type=float, default=420.0, help="wall-clock budget for all sections")
    parser.add_argument("--sections", default=",".join(SHARES), help="comma-separated subset of " + ",".join(SHARES))
    parser.add_argument("--name", help="result file name under bench/results (default gpu-<gpu> / gpu-smoke)")
    parser.add_argument("--child", choices=["env", *SHARES], help=argparse.SUPPRESS)
    parser.add_argument("--child-budget-s", type=float, default=60.0, help=argparse.SUPPRESS)
    opts = parser.parse_args()
    if opts.child:
        child(opts.child, opts.smoke, opts.child_budget_s)
        return

    start = time.monotonic()
    sections = [s.strip() for s in opts.sections.split(",") if s.strip()]
    unknown = [s for s in sections if s not in SHARES]
    if unknown:
        parser.error(f"unknown sections {unknown}; choose from {list(SHARES)}")
    env, env_status = run_child("env", opts.smoke, 60.0)
    command = " ".join(["python", "bench/gpu_bench.py", *sys.argv[1:]])
    results: dict = {"command": command, "smoke": opts.smoke, "budget_s": opts.budget_s, "env": env, "sections": {}}
    for i, name in enumerate(sections):
        left = opts.budget_s - (time.monotonic() - start)
        pending = sum(SHARES[s] for s in sections[i:])
        seconds = left * SHARES[name] / pending
        if seconds < MIN_SECTION_S:
            print(f"[{name}] skipped: {left:.0f} s of the budget left", flush=True)
            results["sections"][name] = {"status": "skipped (budget spent)"}
            continue
        t0 = time.monotonic()
        measured, status = run_child(name, opts.smoke, seconds)
        results["sections"][name] = {
            "status": status,
            "wall_s": round(time.monotonic() - t0, 1),
            "budget_s": round(seconds, 1),
            **(measured or {}),
        }
    results["wall_s"] = round(time.monotonic() - start, 1)
    results["env_status"] = env_status
    path = write_result(opts.name or result_name(env, opts.smoke), results)
    statuses = ", ".join(f"{k} {v['status']}" for k, v in results["sections"].items())
    print(f"done in {results['wall_s']:.0f} s ({statuses}); wrote {path}", flush=True)
    if any(v["status"] != "ok" for v in results["sections"].values()):
        sys.exit(1)


if __name__ == "__main__":
    main()
