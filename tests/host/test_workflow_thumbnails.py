"""Every shipped workflow has a thumbnail that the host serves to the frontend's template browser, made by
scripts/make_thumbnails.py, and a saved view made by scripts/frame_workflows.py."""

from __future__ import annotations

import io
import urllib.request
from pathlib import Path

import pytest

from tests.harness.client import ComfyClient
from tests.harness.server import PACK_FOLDER

WORKFLOWS = sorted((Path(__file__).resolve().parents[2] / "workflows").glob("*.json"))


def test_template_browser_lists_every_workflow(comfy: ComfyClient) -> None:
    listed = comfy.get_json("/workflow_templates")
    assert sorted(listed[PACK_FOLDER]) == [p.stem for p in WORKFLOWS]


@pytest.mark.parametrize("path", WORKFLOWS, ids=[p.stem for p in WORKFLOWS])
def test_workflow_thumbnail_is_served_as_a_small_jpeg(comfy: ComfyClient, path: Path) -> None:
    from PIL import Image

    url = f"{comfy.url}/api/workflow_templates/{PACK_FOLDER}/{path.stem}.jpg"
    with urllib.request.urlopen(url, timeout=30) as response:
        assert response.status == 200
        body = response.read()
    assert body[:3] == b"\xff\xd8\xff", f"{path.stem}.jpg is not a JPEG"
    assert len(body) < 60_000
    image = Image.open(io.BytesIO(body))
    assert image.format == "JPEG"
    assert image.size == (512, 512)  # square: the browser's card draws it at its full width
    assert body == path.with_suffix(".jpg").read_bytes()


def _script(name: str) -> object:
    import importlib.util
    import sys

    if f"llmga_scripts.{name}" in sys.modules:
        return sys.modules[f"llmga_scripts.{name}"]
    path = Path(__file__).resolve().parents[2] / "scripts" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"llmga_scripts.{name}", path)
    module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    sys.modules[f"llmga_scripts.{name}"] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module


@pytest.mark.parametrize("path", WORKFLOWS, ids=[p.stem for p in WORKFLOWS])
def test_thumbnail_is_the_card_the_script_draws(path: Path) -> None:
    """A new or changed workflow fails here until `scripts/make_thumbnails.py NAME` is run for it."""
    import numpy as np
    from PIL import Image

    cards = _script("make_thumbnails")
    assert cards.MIN_TEXT_PX * 254 / cards.SIZE[0] >= 10.5  # the browser draws cards 254 px wide
    drawn = np.asarray(Image.open(io.BytesIO(cards.thumbnail(path))).convert("RGB"), dtype=np.float32)
    shipped = np.asarray(Image.open(path.with_suffix(".jpg")).convert("RGB"), dtype=np.float32)
    assert drawn.shape == shipped.shape
    assert np.abs(drawn - shipped).mean() < 2.0, f"{path.stem}.jpg is stale: run scripts/make_thumbnails.py"


def test_every_workflow_has_its_readable_saved_view() -> None:
    """`extra.ds` is what scripts/frame_workflows.py computes: zoom >= 0.8, the graph's start in view."""
    import json

    frame = _script("frame_workflows")
    for path in WORKFLOWS:
        workflow = json.loads(path.read_text())
        view = workflow["extra"]["ds"]
        assert view == frame.saved_view(workflow), f"{path.name}: run scripts/frame_workflows.py"
        assert view["scale"] >= 0.8
        x0, y0, _, _ = frame.graph_bounds(workflow)
        left, top = (x0 + view["offset"][0]) * view["scale"], (y0 + view["offset"][1]) * view["scale"]
        assert 0 <= left < 200 and 0 <= top < 300, f"{path.name}: the graph starts off screen at {left, top}"


def test_every_workflow_names_where_its_models_come_from() -> None:
    """Each loader's model has its link and folder in the workflow (scripts/workflow_models.py), which the
    frontend and js/llmga.js show when the model is missing."""
    import json

    models = _script("workflow_models")
    for path in WORKFLOWS:
        workflow = json.loads(path.read_text())
        assert json.loads(json.dumps(models.with_models(json.loads(path.read_text())))) == workflow, (
            f"{path.name}: run scripts/workflow_models.py"
        )
        for node in workflow["nodes"]:
            for entry in node.get("properties", {}).get("models", []):
                assert entry["url"].startswith("https://") and entry["directory"], (path.name, entry)
