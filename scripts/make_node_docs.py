"""Write js/docs/<NodeId>.md (the help ComfyUI's node-info panel shows) from the nodes' own schemas.

    .venv/bin/python scripts/make_node_docs.py

Starts the test host with the pack, reads GET /object_info, and renders each LLMGA node's description,
inputs (type and tooltip) and outputs, so the help can never drift from the tooltips users see.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.harness.client import ComfyClient  # noqa: E402
from tests.harness.server import ComfyServer  # noqa: E402

DOCS = REPO / "js" / "docs"


def kind(spec: list) -> str:
    return "choice" if isinstance(spec[0], list) or spec[0] == "COMBO" else str(spec[0])


def render(node_id: str, info: dict) -> str:
    lines = [f"# {info['display_name']}", "", info["description"], "", "## Inputs", "", "| name | type | meaning |"]
    lines.append("|---|---|---|")
    for section in ("required", "optional"):
        specs = info["input"].get(section, {})
        for name in info.get("input_order", {}).get(section, list(specs)):
            spec = specs[name]
            options = spec[1] if len(spec) > 1 and isinstance(spec[1], dict) else {}
            extra = " (optional)" if section == "optional" else ""
            tooltip = options.get("tooltip", "").replace("|", "\\|").replace("\n", " ")
            lines.append(f"| {name}{extra} | {kind(spec)} | {tooltip} |")
    lines += ["", "## Outputs", "", "| name | type | meaning |", "|---|---|---|"]
    for name, out_type, tip in zip(info["output_name"], info["output"], info["output_tooltips"], strict=False):
        lines.append(f"| {name} | {out_type} | {(tip or '').replace('|', '/')} |")
    lines += ["", f"Node id: `{node_id}` (category {info['category']}).", ""]
    return "\n".join(lines)


def main() -> None:
    with tempfile.TemporaryDirectory() as root:
        server = ComfyServer(root=Path(root))
        server.start()
        try:
            info = ComfyClient(server.url).object_info()
        finally:
            server.stop()
    DOCS.mkdir(parents=True, exist_ok=True)
    for node_id, node in sorted(info.items()):
        if node_id.startswith("LLMGA"):
            (DOCS / f"{node_id}.md").write_text(render(node_id, node))
            print(f"wrote {DOCS / f'{node_id}.md'}")


if __name__ == "__main__":
    main()
