"""Every shipped workflow has a thumbnail that the host serves to the frontend's template browser."""

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
    assert image.size == (512, 320)
    assert body == path.with_suffix(".jpg").read_bytes()
