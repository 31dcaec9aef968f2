"""Where the ComfyUI host for the tests lives, and the tiny models it runs with."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.fixtures.cache import REPO_ROOT, cached_dir

TINY_SD_VERSION = "1"
TINY_SDXL_VERSION = "1"
TINY_SD2V_VERSION = "2"


def comfyui_location() -> Path:
    """Where the ComfyUI tree should be: COMFYUI_PATH if set, else the 0.30.0 tree that
    scripts/setup_host.sh extracted (not checked)."""
    if os.environ.get("COMFYUI_PATH"):
        return Path(os.environ["COMFYUI_PATH"]).resolve()
    recorded = REPO_ROOT / ".cache" / "comfyui_path"
    return Path(recorded.read_text().strip()) if recorded.exists() else REPO_ROOT / ".cache" / "host" / "ComfyUI"


def comfyui_dir() -> Path:
    """:func:`comfyui_location`, checked to hold a ComfyUI tree."""
    path = comfyui_location()
    if not (path / "main.py").is_file():
        raise RuntimeError(f"No ComfyUI at {path}: run `make setup` (or set COMFYUI_PATH to a ComfyUI checkout).")
    return path


# The older ComfyUIs the compatibility tier runs (scripts/setup_compat.sh extracts them from PyPI sdists).
OLD_HOSTS = ("0.16.3", "0.18.2")
NEWEST_FRONTEND = "1.58.1"


def old_comfyui_dir(version: str) -> Path:
    """The ComfyUI ``version`` tree under .cache/hosts (not checked)."""
    return REPO_ROOT / ".cache" / "hosts" / f"ComfyUI-{version}"


def newest_frontend_root() -> Path:
    """The static folder of comfyui-frontend-package NEWEST_FRONTEND (for --front-end-root; not checked)."""
    return REPO_ROOT / ".cache" / f"frontend-{NEWEST_FRONTEND}" / "comfyui_frontend_package" / "static"


def tiny_sd_models() -> Path:
    """Folder with checkpoints/tiny_sd15{,_inpaint}.safetensors and controlnet/tiny_controlnet.safetensors."""

    def build(out: Path) -> None:
        script = Path(__file__).resolve().parents[1] / "fixtures" / "build_tiny_sd.py"
        subprocess.run([sys.executable, str(script), str(out), str(comfyui_dir())], check=True)

    return cached_dir("tiny-sd15", TINY_SD_VERSION, build)


def tiny_sdxl_models() -> Path:
    """Folder with checkpoints/tiny_sdxl.safetensors (Segmind-Vega-shaped UNet, full random SDXL CLIPs)."""

    def build(out: Path) -> None:
        script = Path(__file__).resolve().parents[1] / "fixtures" / "build_tiny_sdxl.py"
        subprocess.run([sys.executable, str(script), str(out), str(comfyui_dir())], check=True)

    return cached_dir("tiny-sdxl", TINY_SDXL_VERSION, build)


def tiny_sd2v_models() -> Path:
    """Folder with checkpoints/tiny_sd2v.safetensors (SD2 768-v layout at 320 channels, no text encoder)."""

    def build(out: Path) -> None:
        script = Path(__file__).resolve().parents[1] / "fixtures" / "build_tiny_sd2v.py"
        subprocess.run([sys.executable, str(script), str(out), str(comfyui_dir())], check=True)

    return cached_dir("tiny-sd2v", TINY_SD2V_VERSION, build)
