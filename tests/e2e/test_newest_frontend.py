"""The newest frontend (comfyui-frontend-package 1.58.1, newer than 0.30.0's pin) with the pack.

scripts/setup_compat.sh installs it beside .venv; the 0.30.0 server serves it with --front-end-root.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import ARTIFACTS, png_bytes
from tests.e2e.browser import load_workflow, open_frontend
from tests.fixtures.host_models import host_models
from tests.harness.client import ComfyClient
from tests.harness.host import NEWEST_FRONTEND, newest_frontend_root
from tests.harness.server import PACK_FOLDER, ComfyServer

pytestmark = pytest.mark.e2e
WORKFLOWS = sorted((Path(__file__).resolve().parents[2] / "workflows").glob("*.json"))
SHOTS = ARTIFACTS / "e2e-frontend-newest"


@pytest.fixture(scope="module")
def newest_page(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    root = newest_frontend_root()
    assert (root / "index.html").is_file(), f"no {root}: scripts/setup_compat.sh (make test runs it) installs it"
    server = ComfyServer(
        root=tmp_path_factory.mktemp("comfy-newest-frontend"),
        models=host_models(),
        extra_args=["--front-end-root", str(root)],
    )
    server.start()
    try:
        ComfyClient(server.url).upload_image("example.png", png_bytes(64, 64, seed=5))  # what Load Image names
        with open_frontend(server.url) as page:
            yield page
    finally:
        server.stop()


def test_it_is_the_newest_frontend(newest_page: Any) -> None:
    assert newest_page.evaluate("() => window.__COMFYUI_FRONTEND_VERSION__") == NEWEST_FRONTEND


def test_the_extension_loads_without_console_errors(newest_page: Any) -> None:
    names = newest_page.evaluate("() => window.app.extensions.map((e) => e.name)")
    assert "llmga.core" in names
    ours = [e for e in [*newest_page.errors, *newest_page.console_errors] if "llmga" in e.lower()]
    assert not ours, ours


@pytest.mark.parametrize("path", WORKFLOWS, ids=[p.stem for p in WORKFLOWS])
def test_workflow_loads_with_no_missing_node_or_widget_error(newest_page: Any, path: Path) -> None:
    before = len(newest_page.errors) + len(newest_page.console_errors)
    missing = load_workflow(newest_page, json.loads(path.read_text()))
    SHOTS.mkdir(parents=True, exist_ok=True)
    newest_page.screenshot(path=str(SHOTS / f"{path.stem}.png"))
    assert missing == [], f"{path.name}: the frontend does not know {missing}"
    # The frontend's own model-metadata lookups on huggingface.co are blocked here (no network, CSP): not ours.
    offline = ("Content Security Policy", "Fetch API cannot load", "Failed to load resource")
    new_errors = [*newest_page.errors, *newest_page.console_errors][before:]
    new_errors = [e for e in new_errors if not any(o in e for o in offline)]
    assert not new_errors, f"{path.name}: {new_errors}"
    # every widget value the file holds is one the frontend accepted (no widget dropped or left undefined)
    undefined = newest_page.evaluate(
        """() => window.app.graph._nodes.flatMap((n) => (n.widgets || [])
              .filter((w) => w.value === undefined).map((w) => `${n.type}.${w.name}`))"""
    )
    assert not undefined, f"{path.name}: {undefined}"


def test_the_template_browser_lists_our_workflows(newest_page: Any) -> None:
    newest_page.evaluate("() => window.app.extensionManager.command.execute('Comfy.BrowseTemplates')")
    dialog = newest_page.locator("[role=dialog]").last
    dialog.wait_for(timeout=60_000)
    dialog.get_by_text(PACK_FOLDER, exact=True).first.click(timeout=30_000)  # the EXTENSIONS entry
    expected = f"Showing {len(WORKFLOWS)} of {len(WORKFLOWS)} templates"
    newest_page.wait_for_function(
        "(text) => [...document.querySelectorAll('[role=dialog]')].some((d) => d.innerText.includes(text))",
        arg=expected,
        timeout=30_000,
    )
    SHOTS.mkdir(parents=True, exist_ok=True)
    newest_page.screenshot(path=str(SHOTS / "template_browser.png"))
    listed = set(dialog.inner_text().splitlines())
    newest_page.keyboard.press("Escape")
    assert {p.stem for p in WORKFLOWS} <= listed, sorted({p.stem for p in WORKFLOWS} - listed)
