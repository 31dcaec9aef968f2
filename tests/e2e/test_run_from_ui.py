"""Workflows queued from the UI's Run button on the tiny-model host; the assistant's text on the node."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import ARTIFACTS, png_bytes
from tests.e2e.browser import load_workflow, open_frontend
from tests.harness.client import ComfyClient
from tests.harness.server import ComfyServer
from tests.harness.ui_to_api import set_widgets
from tests.host.test_workflows_headless import MODEL_STANDINS, TINY_RUN

pytestmark = pytest.mark.e2e
WORKFLOWS = Path(__file__).resolve().parents[2] / "workflows"
SHOTS = ARTIFACTS / "e2e"


@pytest.fixture(scope="module")
def page(comfy_server: ComfyServer, comfy: ComfyClient) -> Iterator[Any]:
    comfy.upload_image("example.png", png_bytes(64, 64, seed=5))
    with open_frontend(comfy_server.url) as page:
        yield page


def run_from_ui(page: Any, comfy: ComfyClient, workflow: dict) -> dict:
    """Load, press Run, wait for the prompt to finish; return its history entry."""
    set_widgets(workflow, comfy.object_info(), {**MODEL_STANDINS, **TINY_RUN})
    assert load_workflow(page, workflow) == []
    before = set(comfy.get_json("/history"))
    page.locator("button", has_text="Run").first.click()
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:
        new = {k: v for k, v in comfy.get_json("/history").items() if k not in before}
        done = [v for v in new.values() if v.get("status", {}).get("completed") is not None]
        if done:
            return done[0]
        time.sleep(0.25)
    raise AssertionError("the workflow queued from the Run button did not finish in time")


def panel_texts(page: Any) -> list[str]:
    return page.evaluate("() => [...document.querySelectorAll('[data-llmga=output]')].map((e) => e.textContent)")


@pytest.mark.parametrize("name", ["t2i_prompt", "multi_turn_refinement", "similar_image"])
def test_workflow_runs_from_the_run_button_and_text_appears(page: Any, comfy: ComfyClient, name: str) -> None:
    entry = run_from_ui(page, comfy, json.loads((WORKFLOWS / f"{name}.json").read_text()))
    assert entry["status"]["status_str"] == "success", entry["status"]
    page.wait_for_timeout(500)
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}-after-run.png"))
    texts = [t for t in panel_texts(page) if t.strip()]
    assert texts, "no LLMGA text on the prompt node"
    assert any("prompt" in t and "LLMGA" in t for t in texts), texts


def test_model_and_user_text_is_shown_literally_never_as_html(page: Any, comfy: ComfyClient) -> None:
    hostile = '<img src=x onerror="window.__llmgaXss=1"><script>window.__llmgaXss=2</script> a fox'
    workflow = json.loads((WORKFLOWS / "t2i_prompt.json").read_text())
    for node in workflow["nodes"]:
        if node["type"] == "LLMGAGeneratePrompt":
            node["widgets_values"][1] = hostile
            node["widgets_values"][2] = 99  # a new seed: run, not cached
    entry = run_from_ui(page, comfy, workflow)
    assert entry["status"]["status_str"] == "success"
    page.wait_for_timeout(500)
    assert any(hostile in t for t in panel_texts(page)), panel_texts(page)
    assert page.evaluate("() => window.__llmgaXss") is None
    injected = page.evaluate(
        "() => document.querySelectorAll('[data-llmga=output] img, [data-llmga=output] script').length"
    )
    assert injected == 0
