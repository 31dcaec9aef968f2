"""LLMGACheckpointLoader: LLMGA's diffusers folders through ComfyUI's own loaders, in-process and in the host."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.fixtures.tiny_diffusers import (
    FLUX_LIKE,
    IP2P,
    SD15_INPAINT,
    SD15_T2I,
    SDXL_INPAINT,
    SDXL_T2I,
    tiny_diffusers_models,
)
from tests.harness.client import ComfyClient
from tests.harness.inprocess import run_in_comfy

LOAD_ALL = """
import importlib
from pathlib import Path
import folder_paths
from safetensors.torch import load_file
m = importlib.import_module("llmga_pack.nodes.sd_models")
root = Path(MODELS["root"])
folder_paths.add_model_folder_path("diffusers", str(root), is_default=True)
RESULT["listed"] = m.list_folders()
for name in MODELS["names"].split(","):
    model, clip, vae = m.LLMGACheckpointLoader.execute(folder=name, weights="full precision first").args
    unet = model.model.diffusion_model
    RESULT[name] = {
        "config": type(model.model.model_config).__name__,
        "in_channels": unet.input_blocks[0][0].weight.shape[1],
        "clip": type(clip.cond_stage_model).__name__,
        "vae": type(vae.first_stage_model).__name__,
        "vae_latent_channels": vae.latent_channels,
    }
# which file of a folder with both precisions is read
unet_dir = root / MODELS["both"] / "unet"
full = load_file(str(unet_dir / "diffusion_pytorch_model.safetensors"))["conv_in.weight"]
half = load_file(str(unet_dir / "diffusion_pytorch_model.fp16.safetensors"))["conv_in.weight"].float()
for choice in ("full precision first", "fp16 first"):
    model = m.LLMGACheckpointLoader.execute(folder=MODELS["both"], weights=choice).args[0]
    w = model.model.diffusion_model.input_blocks[0][0].weight.float()
    RESULT[choice] = [(w - full).abs().max().item(), (w - half).abs().max().item()]
errors = {}
for name in (MODELS["ip2p"], MODELS["flux"], "../" + MODELS["both"], "missing-folder"):
    try:
        m.LLMGACheckpointLoader.execute(folder=name, weights="full precision first")
        errors[name] = None
    except Exception as err:
        errors[name] = [type(err).__name__, str(err)]
RESULT["errors"] = errors
"""


@pytest.fixture(scope="module")
def diffusers_root() -> Path:
    return tiny_diffusers_models() / "diffusers"


@pytest.fixture(scope="module")
def loaded(diffusers_root: Path) -> dict:
    names = ",".join([SD15_T2I, SD15_INPAINT, SDXL_T2I, SDXL_INPAINT])
    return run_in_comfy(
        LOAD_ALL, {"root": diffusers_root, "names": names, "both": SD15_T2I, "ip2p": IP2P, "flux": FLUX_LIKE}
    )


def test_folders_with_a_pipeline_or_unet_config_are_listed(loaded: dict) -> None:
    assert {SD15_T2I, SD15_INPAINT, SDXL_T2I, SDXL_INPAINT, IP2P, FLUX_LIKE} <= set(loaded["listed"])


@pytest.mark.parametrize(
    ("name", "config", "in_channels", "clip"),
    [
        (SD15_T2I, "SD15", 4, "SD1ClipModel"),
        (SD15_INPAINT, "SD15", 9, "SD1ClipModel"),
        (SDXL_T2I, "Segmind_Vega", 4, "SDXLClipModel"),  # the tiny SDXL layout; the real one is "SDXL"
        (SDXL_INPAINT, "Segmind_Vega", 9, "SDXLClipModel"),
    ],
)
def test_each_variant_loads_as_comfyui_models(
    loaded: dict, name: str, config: str, in_channels: int, clip: str
) -> None:
    got = loaded[name]
    assert (got["config"], got["in_channels"], got["clip"]) == (config, in_channels, clip)
    assert got["vae"] == "AutoencoderKL" and got["vae_latent_channels"] == 4


def test_weights_choice_picks_the_file(loaded: dict) -> None:
    full_diff, half_diff = loaded["full precision first"]
    assert full_diff == 0.0 and half_diff > 1e-3
    full_diff, half_diff = loaded["fp16 first"]
    assert half_diff == 0.0 and full_diff > 1e-3


def test_other_models_get_a_message_naming_what_was_found(loaded: dict) -> None:
    errors = loaded["errors"]
    kind, message = errors[IP2P]
    assert kind == "LLMGANodeError" and "8 input channels" in message and "InstructPix2Pix" in message
    kind, message = errors[FLUX_LIKE]
    assert kind == "LLMGANodeError" and "FluxPipeline" in message and "transformer" in message


def test_paths_outside_the_registered_folders_are_refused(loaded: dict) -> None:
    kind, message = loaded["errors"]["../" + SD15_T2I]
    assert kind == "LLMGANodeError" and "not a folder name" in message
    kind, message = loaded["errors"]["missing-folder"]
    assert kind == "LLMGANodeError" and "models/diffusers" in message


def test_loader_in_the_host_feeds_core_text_to_image(comfy: ComfyClient) -> None:
    info = comfy.object_info()["LLMGACheckpointLoader"]
    assert SD15_T2I in info["input"]["required"]["folder"][0] or SD15_T2I in str(info["input"]["required"]["folder"])
    graph = {
        "1": {"class_type": "LLMGACheckpointLoader", "inputs": {"folder": SD15_T2I, "weights": "fp16 first"}},
        "2": {"class_type": "CLIPTextEncode", "inputs": {"clip": ["1", 1], "text": "a lighthouse at dusk"}},
        "3": {"class_type": "CLIPTextEncode", "inputs": {"clip": ["1", 1], "text": ""}},
        "4": {"class_type": "EmptyLatentImage", "inputs": {"width": 64, "height": 64, "batch_size": 1}},
        "5": {
            "class_type": "KSampler",
            "inputs": {
                "model": ["1", 0],
                "positive": ["2", 0],
                "negative": ["3", 0],
                "latent_image": ["4", 0],
                "seed": 1,
                "steps": 2,
                "cfg": 7.5,
                "sampler_name": "euler",
                "scheduler": "normal",
                "denoise": 1.0,
            },
        },
        "6": {"class_type": "VAEDecode", "inputs": {"samples": ["5", 0], "vae": ["1", 2]}},
        "7": {"class_type": "SaveImage", "inputs": {"images": ["6", 0], "filename_prefix": "llmga_loader"}},
    }
    run = comfy.run(graph)
    [image] = run.outputs["7"]["images"]
    assert comfy.view_image(image).size == (64, 64)


def test_wrong_folder_in_the_host_is_a_node_error(comfy: ComfyClient) -> None:
    graph = {
        "1": {"class_type": "LLMGACheckpointLoader", "inputs": {"folder": FLUX_LIKE, "weights": "fp16 first"}},
        "2": {"class_type": "CLIPTextEncode", "inputs": {"clip": ["1", 1], "text": "x"}},
        "3": {"class_type": "PreviewAny", "inputs": {"source": ["2", 0]}},
    }
    error = comfy.run(graph, expect_error=True).error()
    assert error["node_type"] == "LLMGACheckpointLoader"
    assert "FluxPipeline" in error["exception_message"]
