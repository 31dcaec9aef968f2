"""Convert a UI-format workflow (what users save and share) into the API format POST /prompt runs.

This mirrors what the frontend does on Queue, using the node definitions from GET /object_info:
widget values are positional in input order, with the frontend-only extras (``control_after_generate``
after seeds, the upload button after image pickers) skipped; links are followed through Reroute and
bypassed nodes; Note-like nodes are dropped; muted nodes are left out. Shipped workflows are executed
through it headless, and the browser test checks it against the frontend's own conversion.
"""

from __future__ import annotations

from typing import Any

VIRTUAL_NODES = {"Note", "MarkdownNote", "Reroute", "PrimitiveNode"}
WIDGET_TYPES = {"INT", "FLOAT", "STRING", "BOOLEAN", "COMBO"}
MODE_MUTED, MODE_BYPASS = 2, 4


class WorkflowError(ValueError):
    pass


def _is_widget(spec: list[Any]) -> bool:
    kind = spec[0]
    options = spec[1] if len(spec) > 1 and isinstance(spec[1], dict) else {}
    if options.get("forceInput"):
        return False
    return isinstance(kind, list) or kind in WIDGET_TYPES


def widget_names(definition: dict[str, Any]) -> list[str | None]:
    """Names of the node's widgets in widgets_values order; None marks a frontend-only extra value."""
    names: list[str | None] = []
    uploads: list[None] = []  # the frontend adds upload buttons after all other widgets
    order = definition.get("input_order", {})
    for section in ("required", "optional"):
        specs = definition.get("input", {}).get(section, {})
        for name in order.get(section, list(specs)):
            spec = specs[name]
            if not _is_widget(spec):
                continue
            names.append(name)
            options = spec[1] if len(spec) > 1 and isinstance(spec[1], dict) else {}
            if options.get("control_after_generate"):
                names.append(None)
            if options.get("image_upload") or options.get("video_upload") or options.get("audio_upload"):
                uploads.append(None)
    return names + uploads


def convert(workflow: dict[str, Any], object_info: dict[str, Any]) -> dict[str, Any]:
    if "nodes" not in workflow or "links" not in workflow:
        raise WorkflowError("not a UI-format workflow (no 'nodes'/'links')")
    nodes = {node["id"]: node for node in workflow["nodes"]}
    links = {link[0]: link for link in workflow["links"]}  # id -> [id, from, from_slot, to, to_slot, type]

    def source(link_id: int) -> tuple[int, int] | None:
        """Follow a link upstream through reroutes and bypassed nodes to a real output."""
        _, from_id, from_slot, _, _, link_type = links[link_id]
        node = nodes[from_id]
        if node["type"] == "Reroute":
            upstream = node["inputs"][0].get("link")
            return None if upstream is None else source(upstream)
        if node.get("mode") == MODE_BYPASS:
            for slot in node.get("inputs", []):
                if slot.get("link") is not None and slot.get("type") == link_type:
                    return source(slot["link"])
            return None
        if node.get("mode") == MODE_MUTED:
            return None
        return from_id, from_slot

    prompt: dict[str, Any] = {}
    for node in workflow["nodes"]:
        kind = node["type"]
        if kind in VIRTUAL_NODES or node.get("mode") in (MODE_MUTED, MODE_BYPASS):
            continue
        if kind not in object_info:
            raise WorkflowError(f"node {node['id']} has type {kind!r}, which this ComfyUI does not know")
        definition = object_info[kind]
        inputs: dict[str, Any] = {}
        names = widget_names(definition)
        values = node.get("widgets_values", [])
        if isinstance(values, dict):  # some V3 nodes save widgets by name
            inputs.update({k: v for k, v in values.items() if k in {n for n in names if n}})
        else:
            if len(values) != len(names):
                raise WorkflowError(
                    f"node {node['id']} ({kind}): {len(values)} widget values for {len(names)} widgets {names}"
                )
            inputs.update({name: value for name, value in zip(names, values, strict=True) if name is not None})
        for slot in node.get("inputs", []):
            if slot.get("link") is None:
                continue
            origin = source(slot["link"])
            if origin is None:
                continue
            origin_node = nodes[origin[0]]
            if origin_node["type"] == "PrimitiveNode":
                inputs[slot["name"]] = origin_node["widgets_values"][0]
            else:
                inputs[slot["name"]] = [str(origin[0]), origin[1]]
        prompt[str(node["id"])] = {"class_type": kind, "inputs": inputs}
    return prompt


def set_widgets(workflow: dict[str, Any], object_info: dict[str, Any], values: dict[tuple[str, str], Any]) -> None:
    """Set widget values in a UI workflow by (node type, widget name), e.g. to swap in test models.

    A dict value maps the current value to the new one (for example released model name -> test model).
    """
    for node in workflow["nodes"]:
        if node["type"] in VIRTUAL_NODES or node["type"] not in object_info:
            continue
        names = widget_names(object_info[node["type"]])
        for (node_type, name), value in values.items():
            if node["type"] == node_type and name in names and isinstance(node.get("widgets_values"), list):
                index = names.index(name)
                old = node["widgets_values"][index]
                node["widgets_values"][index] = value[old] if isinstance(value, dict) else value
