"""Each shipped workflow loads in the real frontend with every node known, and queues what we run headless."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import ARTIFACTS, png_bytes
from tests.e2e.browser import frontend_prompt, load_workflow, open_frontend
from tests.harness.client import ComfyClient
from tests.harness.server import ComfyServer
from tests.harness.ui_to_api import convert

pytestmark = pytest.mark.e2e
WORKFLOWS = sorted((Path(__file__).resolve().parents[2] / "workflows").glob("*.json"))
SHOTS = ARTIFACTS / "e2e"


@pytest.fixture(scope="module")
def page(comfy_server: ComfyServer, comfy: ComfyClient) -> Iterator[Any]:
    comfy.upload_image("example.png", png_bytes(64, 64, seed=5))  # the picture the workflows' Load Image names
    with open_frontend(comfy_server.url) as page:
        yield page


def test_pack_extension_is_loaded_by_the_frontend(page: Any) -> None:
    names = page.evaluate("() => window.app.extensions.map((e) => e.name)")
    assert "llmga.core" in names
    assert not [e for e in page.errors if "llmga" in e.lower()], page.errors


@pytest.mark.parametrize("path", WORKFLOWS, ids=[p.stem for p in WORKFLOWS])
def test_workflow_loads_with_no_missing_node(page: Any, comfy: ComfyClient, path: Path) -> None:
    workflow = json.loads(path.read_text())
    missing = load_workflow(page, workflow)
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{path.stem}.png"))
    assert missing == [], f"{path.name}: the frontend does not know {missing}"
    # The headless converter used by the host tests must agree with the frontend's own conversion.
    ours = convert(workflow, comfy.object_info())
    theirs = frontend_prompt(page)
    assert {k: v["class_type"] for k, v in theirs.items()} == {k: v["class_type"] for k, v in ours.items()}
    for node_id, node in ours.items():
        assert theirs[node_id]["inputs"] == node["inputs"], f"{path.name} node {node_id}"
