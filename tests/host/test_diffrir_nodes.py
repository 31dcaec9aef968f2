"""DiffRIR loader and restore nodes in the real host (real x1 architecture, seeded random weights)."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from tests.conftest import png_bytes
from tests.fixtures.tiny_diffrir import TRUNCATED, WEIGHTS, WRONG_KIND
from tests.harness.client import ComfyClient


def mask_png(width: int = 64, height: int = 64, box: tuple[int, int, int, int] = (16, 16, 48, 40)) -> bytes:
    pixels = np.zeros((height, width), np.uint8)
    x0, y0, x1, y1 = box
    pixels[y0:y1, x0:x1] = 255
    out = io.BytesIO()
    Image.fromarray(pixels, "L").convert("RGB").save(out, format="PNG")
    return out.getvalue()


@pytest.fixture(scope="module")
def inputs(comfy: ComfyClient) -> dict[str, str]:
    return {
        "generated": comfy.upload_image("dr_generated.png", png_bytes(64, 64, seed=11)),
        "original": comfy.upload_image("dr_original.png", png_bytes(64, 64, seed=12)),
        "mask": comfy.upload_image("dr_mask.png", mask_png()),
        "empty": comfy.upload_image("dr_empty.png", mask_png(box=(0, 0, 0, 0))),
        "small_mask": comfy.upload_image("dr_small.png", mask_png(32, 32, (4, 4, 20, 20))),
        "wide": comfy.upload_image("dr_wide.png", png_bytes(96, 40, seed=13)),
    }


def restore_graph(
    inputs: dict[str, str], prefix: str, weights: str = WEIGHTS, mask: str = "mask", **extra: object
) -> dict:
    widgets = {"seed": 3, "tiling": "auto", "tile_size": 512, "precision": "auto"} | extra
    return {
        "1": {"class_type": "LoadImage", "inputs": {"image": inputs["generated"]}},
        "2": {"class_type": "LoadImage", "inputs": {"image": inputs["original"]}},
        "3": {"class_type": "LoadImageMask", "inputs": {"image": inputs[mask], "channel": "red"}},
        "4": {"class_type": "LLMGADiffRIRLoader", "inputs": {"weights": weights}},
        "5": {
            "class_type": "LLMGADiffRIRRestore",
            "inputs": {"diffrir": ["4", 0], "generated": ["1", 0], "original": ["2", 0], "mask": ["3", 0], **widgets},
        },
        "6": {"class_type": "SaveImage", "inputs": {"images": ["5", 0], "filename_prefix": prefix}},
    }


def output(comfy: ComfyClient, run, node: str = "6", index: int = 0) -> np.ndarray:
    return np.asarray(comfy.view_image(run.outputs[node]["images"][index]).convert("RGB")).astype(np.int16)


def original_pixels() -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(png_bytes(64, 64, seed=12))).convert("RGB")).astype(np.int16)


def test_restore_keeps_the_original_outside_the_mask(comfy: ComfyClient, inputs: dict[str, str]) -> None:
    out = output(comfy, comfy.run(restore_graph(inputs, "dr")))
    original = original_pixels()
    inside = np.zeros((64, 64), bool)
    inside[16:40, 16:48] = True
    assert np.array_equal(out[~inside], original[~inside])
    assert np.abs(out[inside] - original[inside]).mean() > 1  # the network did write the masked region


def test_seed_changes_the_result_and_fixed_seed_repeats(comfy: ComfyClient, inputs: dict[str, str]) -> None:
    a = output(comfy, comfy.run(restore_graph(inputs, "dra", seed=5)))
    b = output(comfy, comfy.run(restore_graph(inputs, "drb", seed=6)))
    c = output(comfy, comfy.run(restore_graph(inputs, "drc", seed=5, precision="fp32")))
    assert not np.array_equal(a, b)
    assert np.array_equal(a, c)


def test_tiled_mode_runs_and_stays_close(comfy: ComfyClient, inputs: dict[str, str]) -> None:
    whole = output(comfy, comfy.run(restore_graph(inputs, "drw", seed=9, tiling="off")))
    tiled = output(comfy, comfy.run(restore_graph(inputs, "drt", seed=9, tiling="on", tile_size=64)))
    assert np.array_equal(whole, tiled)  # one 64 px tile covers the image: tiling must then be exact


def test_empty_mask_returns_the_original(comfy: ComfyClient, inputs: dict[str, str]) -> None:
    out = output(comfy, comfy.run(restore_graph(inputs, "dre", mask="empty")))
    assert np.array_equal(out, original_pixels())


def test_generated_of_another_size_is_resized(comfy: ComfyClient, inputs: dict[str, str]) -> None:
    graph = restore_graph(inputs, "drs")
    graph["1"]["inputs"]["image"] = inputs["wide"]
    assert output(comfy, comfy.run(graph)).shape == (64, 64, 3)


@pytest.mark.parametrize(
    ("weights", "message"),
    [(WRONG_KIND, "DiffRIR"), (TRUNCATED, "")],
    ids=["wrong-kind", "truncated"],
)
def test_bad_weight_files_give_clear_errors(
    comfy: ComfyClient, inputs: dict[str, str], weights: str, message: str
) -> None:
    run = comfy.run(restore_graph(inputs, "drbad", weights=weights), expect_error=True)
    err = run.error()
    assert err is not None and err["node_type"] == "LLMGADiffRIRLoader"
    text = err["exception_message"]
    assert text.startswith("LLMGA DiffRIR Loader:"), text
    assert message in text and weights in text, text
    comfy.run(restore_graph(inputs, "drok", seed=21))  # the server keeps serving


def test_mask_of_another_size_is_refused(comfy: ComfyClient, inputs: dict[str, str]) -> None:
    run = comfy.run(restore_graph(inputs, "drm", mask="small_mask"), expect_error=True)
    err = run.error()
    assert err is not None and err["node_type"] == "LLMGADiffRIRRestore"
    assert "32x32" in err["exception_message"] or "32" in err["exception_message"], err["exception_message"]


def test_batch_mismatch_is_refused(comfy: ComfyClient, inputs: dict[str, str]) -> None:
    graph = restore_graph(inputs, "drbm")
    graph["7"] = {"class_type": "RepeatImageBatch", "inputs": {"image": ["1", 0], "amount": 2}}
    graph["8"] = {"class_type": "RepeatImageBatch", "inputs": {"image": ["2", 0], "amount": 3}}
    graph["5"]["inputs"]["generated"] = ["7", 0]
    graph["5"]["inputs"]["original"] = ["8", 0]
    err = comfy.run(graph, expect_error=True).error()
    assert err is not None and "batch" in err["exception_message"].lower(), err


def test_one_mask_for_a_batch(comfy: ComfyClient, inputs: dict[str, str]) -> None:
    graph = restore_graph(inputs, "drbatch")
    graph["7"] = {"class_type": "RepeatImageBatch", "inputs": {"image": ["1", 0], "amount": 2}}
    graph["5"]["inputs"]["generated"] = ["7", 0]
    run = comfy.run(graph)
    assert len(run.outputs["6"]["images"]) == 2
    outside = np.ones((64, 64), bool)
    outside[16:40, 16:48] = False
    for index in (0, 1):  # the single mask applied to both; each image draws its own prior noise row
        assert np.array_equal(output(comfy, run, index=index)[outside], original_pixels()[outside])
