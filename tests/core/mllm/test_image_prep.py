"""MLLM image preparation: bit parity with the original CLI path (transformers 4.37.2) and the rules."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.numpy import load_file

from llmga_core.errors import LLMGAInputError
from llmga_core.mllm import (
    CLIP_VIT_L14_336,
    ClipPreprocessConfig,
    binarize_mask,
    center_crop_resize,
    clip_preprocess,
    mask_out,
    pad_to_square,
    prepare_mllm_image,
    stretch_to_square,
    to_pil_rgb,
)
from tests.core.mllm.golden import GOLDEN, load_json

ARR = load_file(str(GOLDEN / "image_prep.safetensors"))
META = load_json("image_prep.json")["cases"]
LAND, PORT, MASK = ARR["input_landscape"], ARR["input_portrait"], ARR["input_mask"]
CASES = {
    "similar_landscape": lambda: prepare_mllm_image("similar image", LAND),
    "similar_portrait": lambda: prepare_mllm_image("similar image", PORT),
    "inpaint_landscape": lambda: prepare_mllm_image("inpainting", LAND, MASK),
    "edit_landscape": lambda: prepare_mllm_image("edit", LAND),
    "edit_portrait": lambda: prepare_mllm_image("edit", PORT),
    "pad_landscape": lambda: prepare_mllm_image("similar image", LAND, square="pad"),
}


def _sha(a: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(a).tobytes()).hexdigest()


@pytest.mark.parametrize("name", sorted(CASES))
def test_pixels_bit_identical_to_original_path(name):
    out = CASES[name]()
    meta = META[name]
    pv = out.pixel_values.numpy()
    assert list(pv.shape) == meta["pixel_values_shape"] and pv.dtype == np.float32
    np.testing.assert_array_equal(pv[..., ::16, ::16], ARR[f"{name}.pixel_values_sub16"])
    assert _sha(pv) == meta["pixel_values_sha256"]
    square = np.asarray(out.square)
    assert list(square.shape) == meta["square_shape"] and _sha(square) == meta["square_sha256"]
    if f"{name}.square" in ARR:
        np.testing.assert_array_equal(square, ARR[f"{name}.square"])


def test_comfy_float_tensor_input_gives_the_same_pixels():
    as_float = torch.from_numpy(LAND).float()[None] / 255.0  # ComfyUI IMAGE: B,H,W,C in [0, 1]
    mask_float = torch.from_numpy(MASK).float()[None] / 255.0  # ComfyUI MASK: B,H,W
    ours = prepare_mllm_image("outpainting", as_float, mask_float)
    assert _sha(ours.pixel_values.numpy()) == META["inpaint_landscape"]["pixel_values_sha256"]


def test_mask_threshold_is_125_of_255():
    m = np.array([[0, 124, 125, 126, 255]], np.uint8)
    assert binarize_mask(m).tolist() == [[0, 0, 1, 1, 1]]
    assert binarize_mask(m.astype(np.float32) / 255).tolist() == [[0, 0, 1, 1, 1]]
    assert binarize_mask(Image.fromarray(m, "L")).tolist() == [[0, 0, 1, 1, 1]]
    assert binarize_mask(np.array([[True, False]])).tolist() == [[1, 0]]


def test_mask_out_blacks_the_hole_only():
    img = Image.fromarray(LAND)
    out = np.asarray(mask_out(img, MASK))
    hole = MASK >= 125
    assert (out[hole] == 0).all() and (out[~hole] == LAND[~hole]).all()
    with pytest.raises(LLMGAInputError, match="mask"):
        mask_out(img, MASK[:, :20])


def test_geometry_helpers():
    img = Image.fromarray(LAND)  # 40 x 24
    assert stretch_to_square(img).size == (40, 40)
    sq = Image.fromarray(np.zeros((8, 8, 3), np.uint8))
    assert np.array_equal(np.asarray(stretch_to_square(sq)), np.asarray(sq))
    padded = np.asarray(pad_to_square(img, CLIP_VIT_L14_336.mean_fill))
    assert padded.shape == (40, 40, 3) and padded[0, 0].tolist() == [122, 116, 104]
    assert (padded[8:32] == LAND).all()
    crop = center_crop_resize(img, 16)
    assert crop.size == (16, 16)
    assert np.array_equal(np.asarray(center_crop_resize(img, 24)), LAND[:, 8:32])


def test_clip_config_from_both_json_formats():
    old = {"crop_size": 336, "size": 336, "resample": 3, "image_mean": [0.5, 0.5, 0.5]}
    new = {"crop_size": {"height": 224, "width": 224}, "size": {"shortest_edge": 224}}
    a, b = ClipPreprocessConfig.from_dict(old), ClipPreprocessConfig.from_dict(new)
    assert (a.shortest_edge, a.crop_height, a.image_mean) == (336, 336, (0.5, 0.5, 0.5))
    assert (b.shortest_edge, b.crop_height, b.crop_width) == (224, 224, 224)
    assert clip_preprocess(Image.fromarray(LAND), b).shape == (1, 3, 224, 224)


def test_crop_larger_than_image_pads_like_transformers():
    cfg = ClipPreprocessConfig(do_resize=False, crop_height=30, crop_width=30, do_normalize=False, do_rescale=False)
    out = clip_preprocess(Image.fromarray(LAND), cfg)[0].permute(1, 2, 0).numpy()
    # 24 x 40 -> 30 x 30: 3 zero rows on top, columns 5..35 of the image
    assert out.shape == (30, 30, 3) and (out[:3] == 0).all() and (out[-3:] == 0).all()
    assert np.array_equal(out[3:27], LAND[:, 5:35].astype(np.float32))


def test_inputs_and_errors():
    assert to_pil_rgb(LAND[:, :, 0]).mode == "RGB"
    assert to_pil_rgb(np.dstack([LAND, np.full((24, 40), 7, np.uint8)])).size == (40, 24)
    with pytest.raises(LLMGAInputError, match="batch"):
        to_pil_rgb(np.zeros((2, 4, 4, 3), np.float32))
    with pytest.raises(LLMGAInputError, match="takes no image"):
        prepare_mllm_image("text-to-image", LAND)
    with pytest.raises(LLMGAInputError, match="needs a mask"):
        prepare_mllm_image("inpainting", LAND)
    with pytest.raises(LLMGAInputError, match="square"):
        prepare_mllm_image("chat", LAND, square="crop")
    with pytest.raises(LLMGAInputError, match="Unknown task"):
        prepare_mllm_image("dance", LAND)
