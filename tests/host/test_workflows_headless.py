"""Every shipped workflow runs headless in the real host, converted from its UI format."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import png_bytes
from tests.harness.client import ComfyClient
from tests.harness.ui_to_api import convert

WORKFLOWS = sorted((Path(__file__).resolve().parents[2] / "workflows").glob("*.json"))


def prepare_inputs(comfy: ComfyClient, prompt: dict) -> None:
    """Upload a small picture under every file name a LoadImage node asks for."""
    for node in prompt.values():
        if node["class_type"] == "LoadImage":
            comfy.upload_image(node["inputs"]["image"], png_bytes(64, 64, seed=3))


@pytest.mark.parametrize("path", WORKFLOWS, ids=[p.stem for p in WORKFLOWS])
def test_shipped_workflow_runs(comfy: ComfyClient, path: Path) -> None:
    prompt = convert(json.loads(path.read_text()), comfy.object_info())
    prepare_inputs(comfy, prompt)
    run = comfy.run(prompt)
    images = [img for out in run.outputs.values() for img in out.get("images", [])]
    assert images, f"{path.name} produced no image"
    for image in images:
        assert comfy.view_image(image).size[0] > 0
