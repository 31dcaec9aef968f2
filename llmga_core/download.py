"""Fetch the LLMGA weights a user names into ComfyUI's model folders (``make models NAMES=...``).

    python -m llmga_core.download --list
    python -m llmga_core.download [--models-dir DIR] NAME [NAME ...]

Hub downloads go through huggingface_hub (resumable, with progress) and take only what the loaders read.
Offline, or for the DiffRIR weights that live on Google Drive, it prints exactly what to fetch and where
to put it. Nothing is downloaded unless asked for by name.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from .catalog import CATALOG, CatalogEntry, find


def default_models_dir() -> Path:
    """ComfyUI/models when the pack sits in ComfyUI/custom_nodes, else the embedded dev host's."""
    pack = Path(__file__).resolve().parents[1]
    if pack.parent.name == "custom_nodes":
        return pack.parent.parent / "models"
    recorded = pack / ".cache" / "comfyui_path"
    if recorded.exists():
        return Path(recorded.read_text().strip()) / "models"
    return Path.cwd() / "models"


def table() -> str:
    rows = [f"{'name':42} {'size':8} {'folder':16} tasks"]
    rows += [f"{e.name:42} {e.size:8} {e.folder:16} {e.tasks}" for e in CATALOG]
    return "\n".join(rows)


def instructions(entry: CatalogEntry, models_dir: Path) -> str:
    target = models_dir / entry.target
    if entry.repo_id is None:
        return (
            f"{entry.name}: download the DiffRIR x1 S2 GAN checkpoint (net_g_latest.pth of the x1 model) from\n"
            f"  {entry.url}\n  and save it as {target}"
        )
    patterns = " ".join(f"--include '{p}'" for p in entry.patterns)
    return (
        f"{entry.name}: download {entry.url} into {target}/\n"
        f"  e.g. hf download {entry.repo_id} {patterns} --local-dir {target}"
    )


def _offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes")


def download(entry: CatalogEntry, models_dir: Path) -> Path:
    from huggingface_hub import snapshot_download

    target = models_dir / entry.target
    target.mkdir(parents=True, exist_ok=True)
    snapshot_download(repo_id=entry.repo_id, local_dir=target, allow_patterns=list(entry.patterns))
    return target


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m llmga_core.download", description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", help="model names from --list")
    parser.add_argument("--list", action="store_true", help="show the models that can be fetched")
    parser.add_argument("--models-dir", type=Path, default=None, help="ComfyUI's models directory")
    opts = parser.parse_args(argv)
    if opts.list or not opts.names:
        print(table())
        return 0
    try:
        entries = [find(name) for name in opts.names]
    except KeyError as err:
        print(err.args[0], file=sys.stderr)
        return 2
    models_dir = (opts.models_dir or default_models_dir()).resolve()
    status = 0
    for entry in entries:
        if entry.repo_id is None or _offline():
            print(instructions(entry, models_dir))
            status = status or (0 if entry.repo_id is None else 3)
            continue
        try:
            print(f"{entry.name}: {download(entry, models_dir)}")
        except Exception as err:  # network down, gated repo, disk full: say what to do instead
            print(f"{entry.name}: download failed ({type(err).__name__}: {err}).\n{instructions(entry, models_dir)}")
            status = 3
    return status


if __name__ == "__main__":
    raise SystemExit(main())
