"""The pack's model folders, registered with ComfyUI's folder_paths so extra_model_paths.yaml works.

models/llmga/mllm/<folder>   LLMGA MLLM folders as published (config.json, *.safetensors, tokenizer files)
models/llmga/diffrir/<file>  DiffRIR weights (.pth loaded with weights_only, or .safetensors)
models/llmga/gguf/<file>     LLMGA GGUF text models and their mmproj files (models/LLM/ is searched too)

In extra_model_paths.yaml use the keys ``llmga_mllm``, ``llmga_diffrir`` and ``llmga_gguf``.
"""

from __future__ import annotations

import os

import folder_paths

MLLM = "llmga_mllm"
DIFFRIR = "llmga_diffrir"
GGUF = "llmga_gguf"
_FOLDERS: dict[str, tuple[tuple[str, ...], set[str]]] = {
    MLLM: (("llmga", "mllm"), {"folder"}),
    DIFFRIR: (("llmga", "diffrir"), {".pth", ".safetensors"}),
    GGUF: (("llmga", "gguf"), {".gguf"}),
}
_ALSO = {GGUF: (("LLM",),)}  # where other GGUF packs keep language models


def register() -> None:
    """Add the default folders first in line, keeping any paths extra_model_paths.yaml already gave."""
    for name, (parts, extensions) in _FOLDERS.items():
        folder_paths.add_model_folder_path(name, os.path.join(folder_paths.models_dir, *parts), is_default=True)
        for more in _ALSO.get(name, ()):
            folder_paths.add_model_folder_path(name, os.path.join(folder_paths.models_dir, *more))
        paths, _ = folder_paths.folder_names_and_paths[name]
        folder_paths.folder_names_and_paths[name] = (paths, extensions)


def list_model_dirs(name: str, markers: str | tuple[str, ...] = "config.json") -> list[str]:
    """Sub-folders (one level) of every path of ``name`` that contain one of ``markers``, sorted and unique.
    Hidden folders (a download still in progress stages in one) are never listed."""
    wanted = (markers,) if isinstance(markers, str) else markers
    found: set[str] = set()
    for root in folder_paths.get_folder_paths(name):
        if not os.path.isdir(root):
            continue
        for entry in os.scandir(root):
            if entry.name.startswith(".") or not entry.is_dir():
                continue
            if any(os.path.isfile(os.path.join(entry.path, m)) for m in wanted):
                found.add(entry.name)
    return sorted(found)


def is_plain_name(name: str) -> bool:
    """One folder name: no separators, not '.' or '..' (what a model combo may hold)."""
    return name not in ("", ".", "..") and os.path.basename(name) == name and "/" not in name and "\\" not in name


def find_model_dir(folder_type: str, name: str) -> str | None:
    """The first registered ``folder_type`` path holding a folder ``name`` (a plain name only), else None.
    A user's symlinked model folder is fine: the name itself is confined."""
    if not is_plain_name(name):
        return None
    for root in folder_paths.get_folder_paths(folder_type):
        candidate = os.path.join(root, name)
        if os.path.isdir(candidate):
            return candidate
    return None


def allowed_roots(folder_type: str) -> list[str]:
    """Where files of a ``folder_type`` model may lie after symbolic links (llmga_core.safe_paths): every
    registered path of that type, and the target of every folder or file the user linked into one."""
    roots: list[str] = []
    for root in folder_paths.get_folder_paths(folder_type):
        if not os.path.isdir(root):
            continue
        roots.append(root)
        for entry in os.scandir(root):
            if entry.is_symlink():
                roots.append(os.path.realpath(entry.path))
    return roots
