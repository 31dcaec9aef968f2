"""LLMGALongPromptEncode on a real SDXL CLIP (tiny SDXL-family checkpoint that ComfyUI detects)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.harness.client import ComfyClient
from tests.harness.host import tiny_sdxl_models
from tests.harness.inprocess import run_in_comfy
from tests.host.test_lpw_conditioning import prompt_of

COMPARE_SDXL = """
import importlib
import comfy.sd
model, clip, _, _ = comfy.sd.load_checkpoint_guess_config(MODELS["ckpt"], output_vae=False, output_clipvision=False)
RESULT["model_config"] = type(model.model.model_config).__name__
node = importlib.import_module("llmga_pack.nodes.lpw").LLMGALongPromptEncode
def lpw(pos, neg=""):
    out = node.execute(clip=clip, positive=pos, negative=neg, layout="auto", max_chunks=4, width=1024,
                       height=1024, crop_w=0, crop_h=0, target_width=1024, target_height=1024)
    return out.args if hasattr(out, "args") else out.result
for name, text in CASES.items():
    p, n = lpw(text)
    native = comfy_nodes.CLIPTextEncode().encode(clip, text)[0]
    ours, theirs = p[0][0], native[0][0]
    n_text = len(clip.tokenizer.clip_l.tokenizer(text)["input_ids"]) - 1  # BOS + content tokens
    same = min(ours.shape[1], theirs.shape[1])
    RESULT[name] = {
        "shape": list(ours.shape), "native_shape": list(theirs.shape), "neg_abs_max": n[0][0].abs().max().item(),
        "neg_pooled_abs_max": n[0][1]["pooled_output"].abs().max().item(),
        "l_diff_all": (ours[..., :768][:, :same] - theirs[..., :768][:, :same]).abs().max().item(),
        "g_diff_text": (ours[:, :n_text, 768:] - theirs[:, :n_text, 768:]).abs().max().item(),
        "g_diff_after": (ours[:, n_text + 1:77, 768:] - theirs[:, n_text + 1:77, 768:]).abs().max().item()
        if n_text + 1 < 77 else None,
        "pooled_diff": (p[0][1]["pooled_output"] - native[0][1]["pooled_output"]).abs().max().item(),
        "size_keys": sorted(k for k in p[0][1] if k != "pooled_output"),
    }
"""


@pytest.fixture(scope="module")
def sdxl_models() -> Path:
    return tiny_sdxl_models()


@pytest.fixture(scope="module")
def sdxl_comparison(sdxl_models: Path) -> dict:
    snippet = f"CASES = {{'short': {prompt_of(10)!r}, 'long': {prompt_of(150)!r}}}\n" + COMPARE_SDXL
    return run_in_comfy(snippet, {"ckpt": sdxl_models / "checkpoints" / "tiny_sdxl.safetensors"})


def test_the_fixture_is_detected_as_sdxl(sdxl_comparison: dict) -> None:
    assert sdxl_comparison["model_config"] == "Segmind_Vega"


def test_short_prompt_matches_native_where_the_spec_says_and_differs_where_it_says(sdxl_comparison: dict) -> None:
    case = sdxl_comparison["short"]
    assert case["shape"] == case["native_shape"] == [1, 77, 2048]
    assert case["l_diff_all"] == 0.0  # CLIP-L pads with EOS in both layouts
    assert case["g_diff_text"] == 0.0  # causal attention: text positions see the same ids
    assert case["g_diff_after"] > 1e-3  # LPW pads CLIP-G with "!" and puts EOS last; ComfyUI puts EOS first
    assert case["pooled_diff"] > 1e-3  # pooled at the final EOS after the padding


def test_long_prompt_uses_75m_plus_2_and_the_last_chunks_pooled(sdxl_comparison: dict) -> None:
    case = sdxl_comparison["long"]
    chunks = case["native_shape"][1] // 77
    assert case["shape"] == [1, 75 * chunks + 2, 2048]
    assert case["pooled_diff"] > 1e-3


def test_empty_negative_is_all_zero_with_size_conditioning(sdxl_comparison: dict) -> None:
    case = sdxl_comparison["short"]
    assert case["neg_abs_max"] == 0.0 and case["neg_pooled_abs_max"] == 0.0
    assert case["size_keys"] == ["crop_h", "crop_w", "height", "target_height", "target_width", "width"]


def test_sdxl_sampling_through_the_server(comfy: ComfyClient) -> None:
    sizes = {"width": 1024, "height": 1024, "crop_w": 0, "crop_h": 0, "target_width": 1024, "target_height": 1024}
    graph = {
        "1": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "tiny_sdxl.safetensors"}},
        "2": {
            "class_type": "LLMGALongPromptEncode",
            "inputs": {"clip": ["1", 1], "positive": prompt_of(90), "negative": "", "layout": "auto", "max_chunks": 4}
            | sizes,
        },
        "3": {"class_type": "EmptyLatentImage", "inputs": {"width": 64, "height": 64, "batch_size": 1}},
        "4": {
            "class_type": "KSampler",
            "inputs": {
                "model": ["1", 0],
                "positive": ["2", 0],
                "negative": ["2", 1],
                "latent_image": ["3", 0],
                "seed": 1,
                "steps": 1,
                "cfg": 5.0,
                "sampler_name": "euler",
                "scheduler": "normal",
                "denoise": 1.0,
            },
        },
        "5": {"class_type": "VAEDecode", "inputs": {"samples": ["4", 0], "vae": ["1", 2]}},
        "6": {"class_type": "SaveImage", "inputs": {"images": ["5", 0], "filename_prefix": "lpw_sdxl"}},
    }
    run = comfy.run(graph, timeout=600)
    assert comfy.view_image(run.outputs["6"]["images"][0]).size == (64, 64)
