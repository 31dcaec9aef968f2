#!/usr/bin/env bash
# LLMGA on vLLM, on a GPU machine: parity with the in-process path and throughput (bench/vllm_check.py).
#
#   bash bench/gpu.sh --sections mllm   # once: builds .venv (torch + ComfyUI) if it is missing
#   bash bench/vllm_check.sh            # vLLM in its own .venv-vllm (it pins its own torch), then the check
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
VLLM_VERSION="${VLLM_VERSION:-0.33.0}"
if [ ! -x .venv/bin/python ]; then
  echo "[vllm_check.sh] .venv is missing: run 'LLMGA_SKIP_BROWSER=1 bash scripts/setup_host.sh' first" >&2
  exit 2
fi
if [ ! -x .venv-vllm/bin/vllm ]; then
  python3 -m venv .venv-vllm
  .venv-vllm/bin/pip install -q "vllm==${VLLM_VERSION}"
fi
exec .venv/bin/python bench/vllm_check.py --vllm .venv-vllm/bin/vllm "$@"
