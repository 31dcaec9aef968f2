"""Give every workflow in workflows/ a saved view (`extra.ds`) that opens it at a readable zoom.

Fitting a whole LLMGA graph into a browser window shrinks its nodes to about half size, where widgets are
grey boxes. The saved view instead shows the graph at READABLE_SCALE or more: the whole graph, centred, where
it fits a REFERENCE_VIEW window at that zoom; otherwise its start (top left, where the inputs are), and the user
scrolls on. The frontend applies `extra.ds` when a file is opened; for the template browser, which fits the
whole graph instead, js/llmga.js applies it.

    .venv/bin/python scripts/frame_workflows.py            # every workflow (new ones included)
    .venv/bin/python scripts/frame_workflows.py --check    # exit 1 if any saved view is not what this computes
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
WORKFLOWS = REPO / "workflows"
READABLE_SCALE = 0.8
REFERENCE_VIEW = (1280, 720)  # a laptop browser window's canvas
MARGIN = (80, 100)  # screen pixels left free at the left (side toolbar) and at the top (menu bar)
TITLE_HEIGHT = 30  # LiteGraph draws a node's title above its pos


def graph_bounds(workflow: dict[str, Any]) -> tuple[float, float, float, float]:
    boxes = [(n["pos"][0], n["pos"][1] - TITLE_HEIGHT, n["pos"][0] + n["size"][0], n["pos"][1] + n["size"][1])
             for n in workflow["nodes"]]  # fmt: skip
    for group in workflow.get("groups") or []:
        x, y, w, h = group["bounding"]
        boxes.append((x, y, x + w, y + h))
    return min(b[0] for b in boxes), min(b[1] for b in boxes), max(b[2] for b in boxes), max(b[3] for b in boxes)


def saved_view(workflow: dict[str, Any]) -> dict[str, Any]:
    """LiteGraph draws canvas point p at screen (p + offset) * scale."""
    x0, y0, x1, y1 = graph_bounds(workflow)
    width, height = REFERENCE_VIEW
    fit = min((width - 2 * MARGIN[0]) / (x1 - x0), (height - MARGIN[1] - 40) / (y1 - y0))
    scale = round(min(1.0, max(READABLE_SCALE, fit)), 3)
    if fit >= READABLE_SCALE:  # it all fits: centre it below the menu bar
        left = (width - (x1 - x0) * scale) / 2
        top = MARGIN[1] + (height - MARGIN[1] - (y1 - y0) * scale) / 2
    else:
        left, top = MARGIN
    return {"scale": scale, "offset": [round(left / scale - x0, 1), round(top / scale - y0, 1)]}


def main(argv: list[str]) -> int:
    check = "--check" in argv
    stale = []
    for path in sorted(WORKFLOWS.glob("*.json")):
        workflow = json.loads(path.read_text())
        view = saved_view(workflow)
        if workflow.get("extra", {}).get("ds") == view:
            continue
        stale.append(path.name)
        if not check:
            workflow.setdefault("extra", {})["ds"] = view
            path.write_text(json.dumps(workflow, indent=2, ensure_ascii=False) + "\n")
            print(f"{path.relative_to(REPO)}: scale {view['scale']}, offset {view['offset']}")
    if check and stale:
        print(f"saved views to update (run scripts/frame_workflows.py): {', '.join(stale)}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
