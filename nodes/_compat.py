"""What this ComfyUI's node API offers, detected once, so every node registers on every supported host.

The pack supports ComfyUI from :data:`OLDEST_COMFYUI` on. Newer hosts add optional schema features
(``advanced=`` inputs, ``search_aliases``, ``io.DynamicCombo``…); nodes ask this module instead of
passing them directly, and on an older host the feature is simply left out (the node still works):

    io.Int.Input("image_size", ..., **compat.ADVANCED)
    compat.schema(node_id=..., inputs=[...], search_aliases=["llava"])

Detection is by signature/attribute, never by version number, so a patched or back-ported host gets
whatever it really has. The version number only decides the one "too old" log line.
"""

from __future__ import annotations

import dataclasses
import inspect
import logging
import re
from typing import Any

OLDEST_COMFYUI = "0.3.64"
_log = logging.getLogger("ComfyUI-LLMGA")


def parse_version(text: str | None) -> tuple[int, ...] | None:
    """``"0.3.64"`` -> ``(0, 3, 64)``; anything without a leading dotted number -> None."""
    match = re.match(r"\s*v?(\d+(?:\.\d+)*)", text or "")
    return tuple(int(part) for part in match.group(1).split(".")) if match else None


def host_version() -> str | None:
    """The running ComfyUI's version string (its ``comfyui_version`` module), or None if it has none."""
    try:
        import comfyui_version
    except ImportError:
        return None
    return getattr(comfyui_version, "__version__", None)


def too_old_message(version: str | None, has_v3_api: bool) -> str | None:
    """The one log line for a host the pack cannot run on, or None when it can."""
    parsed = parse_version(version)
    if has_v3_api and (parsed is None or parsed >= parse_version(OLDEST_COMFYUI)):
        return None
    found = f"ComfyUI {version}" if version else "a ComfyUI without a version number"
    if not has_v3_api:
        found += " (no comfy_api.latest node API)"
    return (
        f"ComfyUI-LLMGA needs ComfyUI >= {OLDEST_COMFYUI}, this is {found}: update ComfyUI "
        "(git pull, or the portable's update script) to use the LLMGA nodes. None were loaded."
    )


def _accepts(function: Any, name: str) -> bool:
    try:
        return name in inspect.signature(function).parameters
    except (TypeError, ValueError):
        return False


try:
    from comfy_api.latest import io as _io
except ImportError:  # a host older than the V3 node API; __init__ reports it and loads nothing
    _io = None

# --- the features, detected once -------------------------------------------------------------
#: inputs accept ``advanced=True`` (shown under the node's "advanced" fold); ComfyUI 0.4+.
INPUT_ADVANCED: bool = _io is not None and _accepts(_io.Int.Input.__init__, "advanced")
#: ``io.DynamicCombo`` (a combo whose choice adds its own inputs).
DYNAMIC_COMBO: bool = _io is not None and hasattr(_io, "DynamicCombo")
#: the schema fields this host's ``io.Schema`` knows (``search_aliases`` and friends are newer).
SCHEMA_FIELDS: frozenset[str] = (
    frozenset(f.name for f in dataclasses.fields(_io.Schema)) if _io is not None else frozenset()
)
SEARCH_ALIASES: bool = "search_aliases" in SCHEMA_FIELDS

#: ``**ADVANCED`` on an input: advanced where the host has the fold, a plain input elsewhere.
ADVANCED: dict[str, bool] = {"advanced": True} if INPUT_ADVANCED else {}


def schema(**fields: Any) -> Any:
    """``io.Schema(**fields)`` without the optional fields this host does not know (logged once at debug)."""
    unknown = sorted(set(fields) - SCHEMA_FIELDS)
    if unknown:
        _log.debug("ComfyUI-LLMGA: %s: no schema field(s) %s on this ComfyUI", fields.get("node_id"), unknown)
    return _io.Schema(**{k: v for k, v in fields.items() if k in SCHEMA_FIELDS})


def send_progress_text(text: str, node_id: str) -> bool:
    """Show ``text`` on the running node (the frontend's progress_text event) if the server can; True if sent."""
    from server import PromptServer

    instance = getattr(PromptServer, "instance", None)
    sender = getattr(instance, "send_progress_text", None)
    if sender is None:
        return False
    sender(text, node_id)
    return True


def describe() -> dict[str, Any]:
    """What was detected, for the log and the tests."""
    return {
        "comfyui": host_version(),
        "input_advanced": INPUT_ADVANCED,
        "dynamic_combo": DYNAMIC_COMBO,
        "search_aliases": SEARCH_ALIASES,
    }
