"""The shipped MLLM workflows run with each quantization choice swapped into their loader: a prompt
written by the quantised MLLM and rendered by an SD model in one run, a similar image, an editing
caption (real host, tiny models)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.harness.client import ComfyClient
from tests.harness.ui_to_api import convert
from tests.host.test_workflows_headless import WORKFLOWS, prepare_inputs

pytest.importorskip("bitsandbytes")
pytest.importorskip("accelerate")

CHOICES = ("fp8 (weights)", "8-bit", "4-bit")
SHIPPED = {p.stem: p for p in WORKFLOWS}
MLLM_WORKFLOWS = ("t2i_llmga", "similar_image", "edit_llmga")


def test_loader_offers_every_choice(comfy: ComfyClient) -> None:
    spec = comfy.object_info("LLMGAMLLMLoader")["input"]["required"]["quantization"]
    assert spec[1]["options"] == ["none", *CHOICES]


@pytest.mark.parametrize("choice", CHOICES)
@pytest.mark.parametrize("workflow", MLLM_WORKFLOWS)
def test_shipped_mllm_workflow_runs_quantised(comfy: ComfyClient, workflow: str, choice: str) -> None:
    prompt = convert(json.loads(Path(SHIPPED[workflow]).read_text()), comfy.object_info())
    prepare_inputs(comfy, prompt)
    loaders = [n for n in prompt.values() if n["class_type"] == "LLMGAMLLMLoader"]
    assert loaders, workflow
    for node in loaders:
        node["inputs"]["quantization"] = choice
    run = comfy.run(prompt, timeout=900)  # the editing workflow inverts and samples too: slow on a busy CPU
    loader_ui = next(out for out in run.outputs.values() if any("quantization" in t for t in out.get("text", [])))
    assert f"quantization {choice}" in loader_ui["text"][0]
    images = [img for out in run.outputs.values() for img in out.get("images", [])]
    assert images, f"{workflow} with {choice} produced no image"
