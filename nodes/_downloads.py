"""Released models in the loaders' lists: ``<name> (download)`` entries for what is not on disk yet.

Nothing is fetched unless the user picked such an entry and ran the graph; then the model is fetched with
llmga_core.download.fetch into ComfyUI's models folder, with ComfyUI's progress bar and Cancel.
"""

from __future__ import annotations

from pathlib import Path

import comfy.utils
import folder_paths

from ..llmga_core.catalog import CATALOG
from ..llmga_core.download import DownloadError, fetch, find
from . import runtime
from ._errors import LLMGANodeError

SUFFIX = " (download)"


def with_downloads(installed: list[str], catalog_folder: str) -> list[str]:
    """``installed``, then every released model of ``catalog_folder`` (e.g. "llmga/mllm") not among them."""
    missing = [e.name for e in CATALOG if e.folder == catalog_folder and e.name not in installed]
    return [*installed, *(name + SUFFIX for name in missing)]


def resolve(choice: str, node_title: str) -> str:
    """The plain model name for a combo value; a ``(download)`` pick is fetched first (once)."""
    if not choice.endswith(SUFFIX):
        return choice
    entry = find(choice.removesuffix(SUFFIX))
    bar: comfy.utils.ProgressBar | None = None

    def progress(done: int, total: int) -> None:
        nonlocal bar
        bar = bar or comfy.utils.ProgressBar(max(total, 1))
        bar.update_absolute(done, max(total, 1))

    try:
        fetch(entry, Path(folder_paths.models_dir), progress=progress, check_cancel=runtime.check_interrupt)
    except DownloadError as err:
        raise LLMGANodeError(f"{node_title}: {entry.name} could not be downloaded: {err}") from None
    return entry.name
