"""Opening a workflow in a ComfyUI that has none of its models: every LLMGA loader's missing model is reported
at once, in the real frontend, with what to get and where to put it. Single files (checkpoints, ControlNets,
the DiffRIR weights) through the frontend's own missing-model list, from the workflow's `models` entries;
model folders (LLMGA MLLM, diffusers) through js/llmga.js."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import ARTIFACTS
from tests.e2e.browser import open_frontend
from tests.harness.server import ComfyServer

pytestmark = pytest.mark.e2e
WORKFLOWS = sorted((Path(__file__).resolve().parents[2] / "workflows").glob("*.json"))
FOLDER_PATHS = {"llmga_mllm": "ComfyUI/models/llmga/mllm/", "diffusers": "ComfyUI/models/diffusers/"}
SHOTS = ARTIFACTS / "e2e" / "missing-models"


@pytest.fixture(scope="module")
def page(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    server = ComfyServer(root=tmp_path_factory.mktemp("comfy-no-models"))  # no model folder holds anything
    server.start()
    try:
        with open_frontend(server.url) as page:
            yield page
    finally:
        server.stop()


def expected(workflow: dict[str, Any]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(model folders, single files) the workflow's loaders name, from the entries scripts/workflow_models.py wrote."""
    folders, files = [], []
    for node in workflow["nodes"]:
        for model in node.get("properties", {}).get("models", []):
            (folders if model["directory"] in FOLDER_PATHS else files).append({**model, "node": node["id"]})
    return folders, files


@pytest.mark.parametrize("path", WORKFLOWS, ids=[p.stem for p in WORKFLOWS])
def test_missing_models_are_reported_when_the_workflow_opens(page: Any, path: Path) -> None:
    workflow = json.loads(path.read_text())
    folders, files = expected(workflow)
    page.evaluate("() => document.querySelectorAll('.p-toast-close-button').forEach((b) => b.click())")
    page.evaluate("async (wf) => { await window.app.loadGraphData(wf); }", workflow)
    page.wait_for_timeout(1500)
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{path.stem}.png"))

    toasts = page.evaluate("() => [...document.querySelectorAll('.p-toast-message')].map((t) => t.innerText)")
    flagged = page.evaluate(
        "() => (window.app.rootGraph ?? window.app.graph)._nodes.filter((n) => n.llmgaMissing).map((n) => n.id)"
    )
    assert sorted(map(str, flagged)) == sorted(str(f["node"]) for f in folders), f"{path.stem}: flagged {flagged}"
    for folder in folders:
        where = FOLDER_PATHS[folder["directory"]] + folder["name"]
        said = [t for t in toasts if f'"{folder["name"]}"' in t]
        assert said, f"{path.stem}: nothing says that {folder['name']} is missing: {toasts}"
        assert folder["url"] in said[0] and where in said[0], said[0]
    if not files:
        return
    # The frontend's own error overlay lists the missing files with their folder.
    page.get_by_text("View details").first.wait_for(timeout=15_000)
    page.get_by_text("View details").first.dispatch_event("click")
    page.get_by_text("Missing Models").first.wait_for(timeout=15_000)
    panel = page.evaluate("() => document.body.innerText")
    page.screenshot(path=str(SHOTS / f"{path.stem}-errors.png"))
    for file in files:
        assert file["name"] in panel and file["directory"] in panel, f"{path.stem}: {file['name']} not listed"
    page.keyboard.press("Escape")
