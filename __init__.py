"""ComfyUI-LLMGA entry point: model folders, the V3 extension, and the frontend directory.

Each node module is imported on its own, so one that fails (a missing optional dependency, say) leaves
the others working and the log says which module failed and why. A ComfyUI older than the supported
range gets one log line naming the version needed, and no nodes (never a traceback).
"""

from __future__ import annotations

import importlib
import logging
import pkgutil
from pathlib import Path

from .nodes import _compat

_log = logging.getLogger("ComfyUI-LLMGA")
# Every public module of nodes/ is a node family; those without a NODES list (helpers) add nothing.
NODE_MODULES: tuple[str, ...] = tuple(
    sorted(m.name for m in pkgutil.iter_modules([str(Path(__file__).parent / "nodes")]) if not m.name.startswith("_"))
)
TOO_OLD = _compat.too_old_message(_compat.host_version(), has_v3_api=_compat._io is not None)

if TOO_OLD:
    _log.error(TOO_OLD)
    NODE_CLASS_MAPPINGS: dict[str, type] = {}  # ComfyUI loads nothing from us and logs no import failure
else:
    from comfy_api.latest import ComfyExtension, io

    from .nodes import model_folders
    from .nodes._guard import guard

    WEB_DIRECTORY = "./js"
    model_folders.register()

    def _load_node_classes() -> list[type[io.ComfyNode]]:
        classes: list[type[io.ComfyNode]] = []
        for name in NODE_MODULES:
            try:
                module = importlib.import_module(f".nodes.{name}", __name__)
            except Exception:
                _log.exception("ComfyUI-LLMGA: node module '%s' failed to import; its nodes are unavailable", name)
                continue
            for node in getattr(module, "NODES", ()):
                try:  # ComfyUI builds every schema in one loop: one that fails must not hide the others
                    node.define_schema()
                except Exception:
                    _log.exception("ComfyUI-LLMGA: node %s failed to build on this ComfyUI; it is unavailable", node)
                    continue
                # one guard for every node: finite numbers, clean messages naming the node (nodes/_guard.py)
                classes.append(guard(node))
        return classes

    class LLMGAExtension(ComfyExtension):
        async def get_node_list(self) -> list[type[io.ComfyNode]]:
            return _load_node_classes()

    async def comfy_entrypoint() -> LLMGAExtension:
        return LLMGAExtension()
