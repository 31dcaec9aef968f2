"""ComfyUI-LLMGA entry point: model folders, the V3 extension, and the frontend directory.

Each node module is imported on its own, so one that fails (a missing optional dependency, say) leaves
the others working and the log says which module failed and why.
"""

from __future__ import annotations

import importlib
import logging
import pkgutil
from pathlib import Path

from comfy_api.latest import ComfyExtension, io

from .nodes import model_folders
from .nodes._guard import guard

WEB_DIRECTORY = "./js"
# Every public module of nodes/ is a node family; those without a NODES list (helpers) add nothing.
NODE_MODULES: tuple[str, ...] = tuple(
    sorted(m.name for m in pkgutil.iter_modules([str(Path(__file__).parent / "nodes")]) if not m.name.startswith("_"))
)

_log = logging.getLogger("ComfyUI-LLMGA")
model_folders.register()


def _load_node_classes() -> list[type[io.ComfyNode]]:
    classes: list[type[io.ComfyNode]] = []
    for name in NODE_MODULES:
        try:
            module = importlib.import_module(f".nodes.{name}", __name__)
        except Exception:
            _log.exception("ComfyUI-LLMGA: node module '%s' failed to import; its nodes are unavailable", name)
            continue
        # one guard for every node: finite numbers, clean messages naming the node (nodes/_guard.py)
        classes.extend(guard(node) for node in getattr(module, "NODES", ()))
    return classes


class LLMGAExtension(ComfyExtension):
    async def get_node_list(self) -> list[type[io.ComfyNode]]:
        return _load_node_classes()


async def comfy_entrypoint() -> LLMGAExtension:
    return LLMGAExtension()
