"""A real browser (Debian's chromium, driven by Playwright) on the real ComfyUI frontend."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

CHROMIUM_FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]


def chromium_path() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


@contextmanager
def open_frontend(url: str) -> Iterator[Any]:
    """A page with the ComfyUI app loaded and every extension's node types registered."""
    from playwright.sync_api import sync_playwright

    _skip_first_run_dialogs(url)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium_path(), args=CHROMIUM_FLAGS, headless=True)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 900})
            page.errors = []  # type: ignore[attr-defined]
            page.on("pageerror", lambda err: page.errors.append(str(err)))  # type: ignore[attr-defined]
            page.console_errors = []  # type: ignore[attr-defined]
            page.on(  # console.error lines, with where they came from
                "console",
                lambda msg: msg.type == "error"
                and page.console_errors.append(f"{msg.text} @ {msg.location.get('url', '')}"),  # type: ignore[attr-defined]
            )
            page.goto(url, wait_until="domcontentloaded")
            page.wait_for_function(
                "() => window.app && window.app.graph && window.LiteGraph"
                " && Object.keys(window.LiteGraph.registered_node_types).length > 100",
                timeout=90_000,
            )
            yield page
        finally:
            browser.close()


def _skip_first_run_dialogs(url: str) -> None:
    """Tell the server's user settings that the tour was seen, so no template browser covers the graph."""
    import urllib.request

    request = urllib.request.Request(
        f"{url}/settings/Comfy.TutorialCompleted", data=b"true", headers={"Content-Type": "application/json"}
    )
    urllib.request.urlopen(request, timeout=10).close()


def load_workflow(page: Any, workflow: dict[str, Any]) -> list[str]:
    """Load a UI workflow through the app; return the node types the frontend does not know."""
    missing = page.evaluate(
        """async (wf) => {
            await window.app.loadGraphData(wf);
            const known = window.LiteGraph.registered_node_types;
            return wf.nodes.map((n) => n.type).filter((t) => !(t in known));
        }""",
        json.loads(json.dumps(workflow)),
    )
    page.keyboard.press("Escape")  # close toasts/dialogs (for example "missing input file") before screenshots
    page.evaluate(
        "() => { try { window.app.canvas.ds.reset(); window.app.graph.setDirtyCanvas(true, true); } catch (e) {} }"
    )
    page.wait_for_timeout(300)
    return missing


def frontend_prompt(page: Any) -> dict[str, Any]:
    """The API-format prompt the frontend would queue for the loaded graph."""
    return page.evaluate("async () => (await window.app.graphToPrompt()).output")
