"""Every shipped workflow queued from the UI's Run button on the tiny-model host; the assistant's text on the node."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import ARTIFACTS
from tests.e2e.browser import load_workflow, open_frontend
from tests.harness.client import ComfyClient
from tests.harness.server import ComfyServer
from tests.harness.ui_to_api import set_widgets
from tests.host.test_workflows_headless import (  # noqa: F401 (llama_engine is a fixture)
    MODEL_STANDINS,
    TINY_RUN,
    llama_engine,
    picture_with_hole,
)

pytestmark = pytest.mark.e2e
WORKFLOWS = Path(__file__).resolve().parents[2] / "workflows"
ALL_WORKFLOWS = sorted(p.stem for p in WORKFLOWS.glob("*.json"))
SHOTS = ARTIFACTS / "e2e"
# The nodes whose text the pack's extension shows (the loader's note is not the assistant's text).
PROMPT_NODES = ("LLMGAGeneratePrompt", "LLMGAEditPrompts")


@pytest.fixture(scope="module")
def page(comfy_server: ComfyServer, comfy: ComfyClient) -> Iterator[Any]:
    # RGBA with a transparent hole: Load Image's MASK gives the inpainting workflows an area to fill.
    comfy.upload_image("example.png", picture_with_hole())
    with open_frontend(comfy_server.url) as page:
        yield page


def run_from_ui(
    page: Any, comfy: ComfyClient, workflow: dict, seed: int | None = None, endpoint: str | None = None
) -> dict:
    """Load, press Run, wait for the prompt to finish; return its history entry.

    A seed of its own makes every prompt node run rather than come from the cache (workflows share the
    same first prompt), so its output is in this history entry.
    """
    values = {**MODEL_STANDINS, **TINY_RUN}
    if seed is not None:
        values.update({(node_type, "seed"): seed for node_type in PROMPT_NODES})
    if endpoint is not None:
        values[("LLMGARemoteMLLM", "endpoint")] = endpoint
    set_widgets(workflow, comfy.object_info(), values)
    assert load_workflow(page, workflow) == []
    before = set(comfy.get_json("/history"))
    page.locator("button", has_text="Run").first.click()
    deadline = time.monotonic() + 600  # the SDXL edit runs its full-size CLIPs on 2 cores
    while time.monotonic() < deadline:
        new = {k: v for k, v in comfy.get_json("/history").items() if k not in before}
        done = [v for v in new.values() if v.get("status", {}).get("completed") is not None]
        if done:
            return done[0]
        time.sleep(0.25)
    raise AssertionError("the workflow queued from the Run button did not finish in time")


def panel_texts(page: Any) -> list[str]:
    return page.evaluate("() => [...document.querySelectorAll('[data-llmga=output]')].map((e) => e.textContent)")


def node_panel_text(page: Any, node_id: int) -> str | None:
    """The text the pack's extension shows on one node (None when the node has no panel)."""
    return page.evaluate("(id) => window.app.graph.getNodeById(id)?.llmgaPanel?.textContent ?? null", node_id)


@pytest.mark.parametrize("name", ALL_WORKFLOWS)
def test_workflow_runs_from_the_run_button(
    page: Any, comfy: ComfyClient, name: str, request: pytest.FixtureRequest
) -> None:
    workflow = json.loads((WORKFLOWS / f"{name}.json").read_text())
    endpoint = None
    if any(n["type"] == "LLMGARemoteMLLM" for n in workflow["nodes"]):
        endpoint = request.getfixturevalue("llama_engine").url
    entry = run_from_ui(page, comfy, workflow, seed=1000 + ALL_WORKFLOWS.index(name), endpoint=endpoint)
    assert entry["status"]["status_str"] == "success", entry["status"]
    page.wait_for_timeout(500)
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}-after-run.png"))
    images = [img for out in entry["outputs"].values() for img in out.get("images", [])]
    assert images, f"{name} produced no image"
    for node in (n for n in workflow["nodes"] if n["type"] in PROMPT_NODES):
        final = entry["outputs"][str(node["id"])]["text"][0]
        shown = node_panel_text(page, node["id"])
        assert shown is not None, f"{name}: no LLMGA panel on node {node['id']}"
        # the final prompt (or reply) the node returned, and the turn it came from, are on the node
        assert final.strip() and final in shown, (final, shown)
        assert "LLMGA" in shown and "prompt" in shown, shown


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
