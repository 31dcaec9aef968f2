"""The pack's templates as a user meets them: the frontend's Templates browser shows a card with a picture for
every workflow, and clicking a card opens the workflow at a zoom where its nodes can be read."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import ARTIFACTS
from tests.e2e.browser import open_frontend
from tests.harness.server import PACK_FOLDER, ComfyServer

pytestmark = pytest.mark.e2e
WORKFLOWS = sorted((Path(__file__).resolve().parents[2] / "workflows").glob("*.json"))
SHOTS = ARTIFACTS / "e2e" / "templates"
READABLE_SCALE = 0.8


@pytest.fixture(scope="module")
def page(comfy_server: ComfyServer) -> Iterator[Any]:
    with open_frontend(comfy_server.url) as page:
        yield page


def open_our_templates(page: Any) -> None:
    page.keyboard.press("Escape")
    page.evaluate("() => window.app.extensionManager.command.execute('Comfy.BrowseTemplates')")
    page.get_by_text(PACK_FOLDER).first.wait_for(timeout=30_000)
    page.screenshot(path=str(ARTIFACTS / "e2e" / "templates-dialog.png"))
    page.get_by_text(PACK_FOLDER).first.dispatch_event("click")  # the entry's own handler, whatever overlaps it
    page.get_by_text(WORKFLOWS[0].stem, exact=True).first.wait_for(timeout=30_000)


def test_every_card_shows_its_thumbnail(page: Any) -> None:
    open_our_templates(page)
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / "browser.png"))
    for path in WORKFLOWS:
        # The grid re-renders while thumbnails arrive, so find the card afresh on every try.
        card_image = """(stem) => {
            const title = [...document.querySelectorAll('*')].find(
                (e) => e.children.length === 0 && e.textContent.trim() === stem);
            let box = title;
            while (box && !box.querySelector('img')) box = box.parentElement;
            const img = box?.querySelector('img');
            if (!img) return null;
            img.scrollIntoView({ block: 'center' });
            const width = img.getBoundingClientRect().width;
            return img.complete && img.naturalWidth > 0 && width > 0
                ? { natural: [img.naturalWidth, img.naturalHeight], width } : null;
        }"""
        page.wait_for_function(card_image, arg=path.stem, timeout=30_000)
        found = page.evaluate(card_image, path.stem)
        assert found["natural"] == [512, 512], f"{path.stem}: the card's picture is {found['natural']}"
        assert found["width"] >= 200, f"{path.stem}: the card's picture is drawn {found['width']:.0f} px wide"


@pytest.mark.parametrize("path", WORKFLOWS, ids=[p.stem for p in WORKFLOWS])
def test_template_opens_at_a_readable_zoom(page: Any, path: Path) -> None:
    open_our_templates(page)
    page.get_by_text(path.stem, exact=True).first.dispatch_event("click")
    page.wait_for_function(
        "(n) => (window.app.rootGraph ?? window.app.graph)._nodes.length === n",
        arg=len(json.loads(path.read_text())["nodes"]),
        timeout=30_000,
    )
    page.wait_for_timeout(500)
    page.keyboard.press("Escape")  # a missing-model dialog may be open; the view is what is checked here
    view = page.evaluate(
        """() => {
            const c = window.app.canvas, g = window.app.rootGraph ?? window.app.graph;
            const [w, h] = [c.canvas.clientWidth, c.canvas.clientHeight], s = c.ds.scale, o = c.ds.offset;
            const shown = g._nodes.filter((n) => {
                const x0 = (n.pos[0] + o[0]) * s, y0 = (n.pos[1] - 30 + o[1]) * s;
                const x1 = (n.pos[0] + n.size[0] + o[0]) * s, y1 = (n.pos[1] + n.size[1] + o[1]) * s;
                return x0 >= 0 && y0 >= 0 && x1 <= w && y1 <= h;
            });
            return { scale: s, nodes: g._nodes.length, whole: shown.length, types: shown.map((n) => n.type) };
        }"""
    )
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{path.stem}.png"))
    assert view["scale"] >= READABLE_SCALE, f"{path.stem} opens at {view['scale']:.2f}"
    assert view["whole"] >= min(3, view["nodes"]), f"{path.stem}: only {view['types']} are wholly on screen"
