#!/usr/bin/env bash
# Developer check (not CI: the tree comes from GitHub): the compatibility tier on ComfyUI 0.3.64, the oldest
# version the pack supports. Record its last line in the README's compatibility table.
#   scripts/check_comfyui_0.3.64.sh                 clones tag v0.3.64 into .cache/hosts/ComfyUI-0.3.64
#   scripts/check_comfyui_0.3.64.sh /path/ComfyUI   uses that 0.3.64 tree
# It runs tests/host/test_comfyui_range.py (all nodes registered, no import error, every tooltip, one
# shipped workflow per node family, the too-old gate) with a small venv that layers 0.3.64's pinned
# frontend/templates/docs packages over .venv (torch and the rest are shared; nothing in .venv changes).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
[ -x "$ROOT/.venv/bin/python" ] || { echo "run make setup first (it builds .venv)" >&2; exit 1; }
TREE="${1:-$ROOT/.cache/hosts/ComfyUI-0.3.64}"
[ $# -gt 0 ] && shift  # the rest goes to pytest
if [ ! -f "$TREE/main.py" ]; then
  git clone -q --depth 1 --branch v0.3.64 https://github.com/Comfy-Org/ComfyUI "$TREE"
fi
grep -q '__version__ = "0.3.64"' "$TREE/comfyui_version.py" || { echo "$TREE is not ComfyUI 0.3.64" >&2; exit 1; }

VENV="$ROOT/.cache/venv-comfyui-0.3.64"
if [ ! -x "$VENV/bin/python" ]; then
  "$ROOT/.venv/bin/python" -c 'import sys; print(sys.base_prefix)' >/dev/null
  "$(readlink -f "$ROOT/.venv/bin/python")" -m venv "$VENV"
  site="$("$ROOT/.venv/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
  own="$("$VENV/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
  echo "$site" >"$own/zz-llmga-shared-venv.pth"  # after the venv's own packages: 0.3.64's pins win
fi
# 0.3.64's requirements.txt pins these three; the rest of its requirements are met by .venv.
pins=$(grep -E '^comfyui-(frontend-package|workflow-templates|embedded-docs)==' "$TREE/requirements.txt")
# shellcheck disable=SC2086
"$VENV/bin/python" -m pip --disable-pip-version-check -q install --no-deps $pins

started=$(date -u +%Y-%m-%d)
set +e
LLMGA_COMFYUI_HOSTS="$TREE" "$VENV/bin/python" -m pytest tests/host/test_comfyui_range.py -q "$@" 2>&1 \
  | tee "$ROOT/.cache/check-comfyui-0.3.64.log" | tail -25
status=${PIPESTATUS[0]}
set -e
summary=$(grep -E '^[0-9]+ (passed|failed)|[0-9]+ passed' "$ROOT/.cache/check-comfyui-0.3.64.log" | tail -1)
echo "ComfyUI 0.3.64, $started: ${summary:-no result} (exit $status)"
exit "$status"
