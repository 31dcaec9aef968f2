"""LLMGAOutpaintCanvas executed by the real host through POST /prompt."""

from __future__ import annotations

import numpy as np
import pytest

from tests.conftest import png_bytes
from tests.harness.client import ComfyClient, PromptRejected


def outpaint_graph(image: str, prefix: str, **widgets: object) -> dict:
    params = {"left": 16, "top": 8, "right": 0, "bottom": 24, "fill": "edge", "feather": 0} | widgets
    return {
        "1": {"class_type": "LoadImage", "inputs": {"image": image}},
        "2": {"class_type": "LLMGAOutpaintCanvas", "inputs": {"image": ["1", 0], **params}},
        "3": {"class_type": "SaveImage", "inputs": {"images": ["2", 0], "filename_prefix": f"{prefix}_image"}},
        "4": {"class_type": "MaskToImage", "inputs": {"mask": ["2", 1]}},
        "5": {"class_type": "SaveImage", "inputs": {"images": ["4", 0], "filename_prefix": f"{prefix}_mask"}},
    }


@pytest.fixture(scope="module")
def source(comfy: ComfyClient) -> tuple[str, np.ndarray]:
    import io

    from PIL import Image

    data = png_bytes(64, 48, seed=1)
    return comfy.upload_image("outpaint_src.png", data), np.asarray(Image.open(io.BytesIO(data)))


def saved(comfy: ComfyClient, run, node: str) -> np.ndarray:
    return np.asarray(comfy.view_image(run.outputs[node]["images"][0]).convert("RGB"))


def test_canvas_and_mask_through_the_host(comfy: ComfyClient, source: tuple[str, np.ndarray]) -> None:
    name, pixels = source
    run = comfy.run(outpaint_graph(name, "op"))
    canvas, mask = saved(comfy, run, "3"), saved(comfy, run, "5")
    assert canvas.shape == (48 + 8 + 24, 64 + 16, 3)
    assert np.array_equal(canvas[8:56, 16:80], pixels)  # original pixels untouched (lossless PNG round trip)
    assert np.array_equal(canvas[:8, 16:80], np.repeat(pixels[:1], 8, axis=0))  # edge fill
    assert mask[8:56, 16:80].max() == 0
    assert mask[:8].min() == 255 and mask[56:].min() == 255 and mask[:, :16].min() == 255


def test_feather_and_black_fill_through_the_host(comfy: ComfyClient, source: tuple[str, np.ndarray]) -> None:
    name, _ = source
    run = comfy.run(outpaint_graph(name, "opf", left=0, top=0, bottom=0, right=16, fill="black", feather=3))
    canvas, mask = saved(comfy, run, "3"), saved(comfy, run, "5")
    assert canvas[:, 64:].max() == 0
    assert mask[0, 60:68, 0].tolist() == [0, 0, 0, 0, 63, 127, 191, 255]  # SaveImage truncates 255·v


def test_negative_border_is_rejected_by_validation(comfy: ComfyClient, source: tuple[str, np.ndarray]) -> None:
    with pytest.raises(PromptRejected) as rejected:
        comfy.queue(outpaint_graph(source[0], "neg", left=-8))
    errors = rejected.value.body["node_errors"]["2"]["errors"]
    assert errors[0]["type"] == "value_smaller_than_min"


def test_oversized_canvas_fails_with_a_clear_message_and_server_keeps_serving(
    comfy: ComfyClient, source: tuple[str, np.ndarray]
) -> None:
    run = comfy.run(outpaint_graph(source[0], "big", left=16384), expect_error=True)
    err = run.error()
    assert err is not None and err["node_type"] == "LLMGAOutpaintCanvas"
    assert "16448x80 px" in err["exception_message"] and "at most 16384 px" in err["exception_message"]
    assert "Traceback" not in err["exception_message"]
    comfy.run(outpaint_graph(source[0], "after", left=8))  # the next prompt runs normally


def test_non_image_input_is_rejected(comfy: ComfyClient, source: tuple[str, np.ndarray]) -> None:
    graph = outpaint_graph(source[0], "nonimage")
    graph["2"]["inputs"]["image"] = ["1", 1]  # LoadImage's MASK output into the IMAGE socket
    with pytest.raises(PromptRejected) as rejected:
        comfy.queue(graph)
    assert rejected.value.body["node_errors"]["2"]["errors"][0]["type"] == "return_type_mismatch"


def test_tiny_inpaint_checkpoint_samples_the_outpainted_canvas(
    comfy: ComfyClient, source: tuple[str, np.ndarray]
) -> None:
    """The fixture checkpoints are real: the 9-channel tiny SD1.5 inpaints the grown canvas."""
    graph = outpaint_graph(source[0], "inp", left=16, top=0, right=0, bottom=16)
    graph.update(
        {
            "10": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "tiny_sd15_inpaint.safetensors"}},
            "11": {"class_type": "CLIPTextEncode", "inputs": {"clip": ["10", 1], "text": "a meadow"}},
            "12": {"class_type": "CLIPTextEncode", "inputs": {"clip": ["10", 1], "text": ""}},
            "13": {
                "class_type": "InpaintModelConditioning",
                "inputs": {
                    "positive": ["11", 0],
                    "negative": ["12", 0],
                    "vae": ["10", 2],
                    "pixels": ["2", 0],
                    "mask": ["2", 1],
                    "noise_mask": True,
                },
            },
            "14": {
                "class_type": "KSampler",
                "inputs": {
                    "model": ["10", 0],
                    "positive": ["13", 0],
                    "negative": ["13", 1],
                    "latent_image": ["13", 2],
                    "seed": 1,
                    "steps": 2,
                    "cfg": 5.0,
                    "sampler_name": "euler",
                    "scheduler": "normal",
                    "denoise": 1.0,
                },
            },
            "15": {"class_type": "VAEDecode", "inputs": {"samples": ["14", 0], "vae": ["10", 2]}},
            "16": {"class_type": "SaveImage", "inputs": {"images": ["15", 0], "filename_prefix": "inp_out"}},
        }
    )
    run = comfy.run(graph)
    assert saved(comfy, run, "16").shape == (64, 80, 3)
