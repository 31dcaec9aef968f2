"""Every shipped workflow runs headless in the real host, converted from its UI format."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import png_bytes
from tests.fixtures.gguf_exports import exported_gguf
from tests.fixtures.llama_server import LlamaServer, llama_server
from tests.fixtures.tiny_mllm import FAMILIES
from tests.harness.client import ComfyClient
from tests.harness.ui_to_api import convert

WORKFLOWS = sorted((Path(__file__).resolve().parents[2] / "workflows").glob("*.json"))


# Shipped workflows name the real models and real sizes; the test host has tiny stand-ins.
MODEL_STANDINS = {
    ("CheckpointLoaderSimple", "ckpt_name"): "tiny_sd15.safetensors",
    ("ControlNetLoader", "control_net_name"): "tiny_controlnet.safetensors",
    ("LLMGADiffRIRLoader", "weights"): "DiffRIR_x1_S2GAN.pth",
    ("LLMGAMLLMLoader", "model"): "llmga-Qwen2-0.5B-full-finetune",
    ("LLMGAGGUFLoader", "model"): "llmga-Qwen2-0.5B-full-finetune-f32.gguf",
    # by the released folder a workflow names: text-to-image (also editing) or inpainting
    ("LLMGACheckpointLoader", "folder"): {
        "llmga-sd15-t2i-v2": "llmga-sd15-t2i",
        "llmga-sd15-inpainting-v2": "llmga-sd15-inpainting",
        "llmga-sdxl-t2i": "llmga-sdxl-t2i",
        "llmga-sdxl-inpainting-v2": "llmga-sdxl-inpainting",
    },
}
TINY_RUN = {
    ("EmptyLatentImage", "width"): 64,
    ("EmptyLatentImage", "height"): 64,
    ("KSampler", "steps"): 2,
    ("LLMGAGeneratePrompt", "max_new_tokens"): 8,
    ("LLMGAEditPrompts", "max_new_tokens"): 8,
    ("LLMGAInpaintSampler", "steps"): 2,
    ("LLMGAInpaintSampler", "size"): 64,
    ("ImageScale", "width"): 64,
    ("ImageScale", "height"): 64,
    ("LLMGAInstructionEdit", "steps"): 10,
}


def picture_with_hole() -> bytes:
    """64x64 RGBA: LoadImage's MASK (1 - alpha) is a 24x20 hole, so inpainting workflows have work to do."""
    from PIL import Image

    image = Image.open(io.BytesIO(png_bytes(64, 64, seed=3))).convert("RGBA")
    alpha = Image.new("L", (64, 64), 255)
    alpha.paste(0, (20, 16, 44, 36))
    image.putalpha(alpha)
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()


def prepare_inputs(comfy: ComfyClient, prompt: dict) -> None:
    """Upload a small picture for every Load Image; swap in tiny models and tiny sizes."""
    for node in prompt.values():
        kind, inputs = node["class_type"], node["inputs"]
        if kind in ("LoadImage", "LoadImageMask"):
            comfy.upload_image(inputs["image"], picture_with_hole())
        for (node_type, name), value in {**MODEL_STANDINS, **TINY_RUN}.items():
            if kind == node_type and name in inputs and not isinstance(inputs[name], list):
                inputs[name] = value[inputs[name]] if isinstance(value, dict) else value


@pytest.fixture(scope="module")
def llama_engine() -> Iterator[LlamaServer]:
    """llama.cpp's server with the tiny LLMGA-Qwen2 export, for workflows using LLMGA Remote MLLM."""
    export = exported_gguf("qwen2")
    with llama_server(export.model, export.mmproj, alias=FAMILIES["qwen2"].folder) as server:
        yield server


@pytest.mark.parametrize("path", WORKFLOWS, ids=[p.stem for p in WORKFLOWS])
def test_shipped_workflow_runs(comfy: ComfyClient, path: Path, request: pytest.FixtureRequest) -> None:
    prompt = convert(json.loads(path.read_text()), comfy.object_info())
    prepare_inputs(comfy, prompt)
    for node in prompt.values():
        if node["class_type"] == "LLMGARemoteMLLM":  # the engine the workflow's note says to start
            engine: LlamaServer = request.getfixturevalue("llama_engine")
            node["inputs"]["endpoint"] = engine.url
            assert node["inputs"]["model"] == engine.alias
    run = comfy.run(prompt)
    images = [img for out in run.outputs.values() for img in out.get("images", [])]
    assert images, f"{path.name} produced no image"
    for image in images:
        assert comfy.view_image(image).size[0] > 0
