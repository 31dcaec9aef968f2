"""LLMGALongPromptEncode on ComfyUI's real SD1 CLIP: where it equals native encoding, where it must differ."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.harness.inprocess import run_in_comfy

WORDS = "a small red fox sleeping under a birch tree in soft morning light with mist over the meadow".split()


def prompt_of(n_words: int) -> str:
    return " ".join(WORDS[i % len(WORDS)] for i in range(n_words))


COMPARE_SD1 = """
import comfy.sd
ckpt = MODELS["ckpt"]
_, clip, _, _ = comfy.sd.load_checkpoint_guess_config(ckpt, output_vae=False, output_clipvision=False)
import importlib
node = importlib.import_module("llmga_pack.nodes.lpw").LLMGALongPromptEncode
def lpw(pos, neg="", layout="sd15", chunks=4):
    out = node.execute(clip=clip, positive=pos, negative=neg, layout=layout, max_chunks=chunks,
                       width=1024, height=1024, crop_w=0, crop_h=0, target_width=1024, target_height=1024)
    return out.args if hasattr(out, "args") else out.result
def native(text):
    return comfy_nodes.CLIPTextEncode().encode(clip, text)[0]
for name, text in CASES.items():
    (p, n) = lpw(text)
    c = native(text)
    RESULT[name] = {
        "lpw_shape": list(p[0][0].shape), "neg_shape": list(n[0][0].shape), "native_shape": list(c[0][0].shape),
        "max_diff": (p[0][0] - c[0][0]).abs().max().item() if p[0][0].shape == c[0][0].shape else None,
        "pooled_diff": (p[0][1]["pooled_output"] - c[0][1]["pooled_output"]).abs().max().item(),
    }
"""


@pytest.fixture(scope="module")
def sd1_comparison(tiny_models: Path) -> dict:
    cases = {
        "short": prompt_of(12),
        "long_200": prompt_of(150),
        "weighted": "a (red:1.5) fox, [misty] meadow, ((birch tree))",
        "over_cap": prompt_of(330),
    }
    snippet = f"CASES = {cases!r}\n" + COMPARE_SD1
    return run_in_comfy(snippet, {"ckpt": tiny_models / "checkpoints" / "tiny_sd15.safetensors"})


def test_short_unweighted_prompt_equals_native_clip_text_encode(sd1_comparison: dict) -> None:
    case = sd1_comparison["short"]
    assert case["lpw_shape"] == case["native_shape"] == [1, 77, 768]
    assert case["max_diff"] == 0.0
    assert case["pooled_diff"] == 0.0


def test_long_unweighted_prompt_has_the_same_77m_layout_as_native(sd1_comparison: dict) -> None:
    case = sd1_comparison["long_200"]
    assert case["lpw_shape"][1] == case["native_shape"][1] == case["neg_shape"][1]
    assert case["lpw_shape"][1] % 77 == 0 and case["lpw_shape"][1] > 77
    assert case["max_diff"] == 0.0


def test_weighted_prompt_differs_as_the_spec_describes(sd1_comparison: dict) -> None:
    case = sd1_comparison["weighted"]
    # LPW parses [x] and nested (( )) and renormalises to the mean; ComfyUI keeps [ ] as text, so even the
    # token count can differ. Either way the conditioning is not the native one.
    assert case["max_diff"] is None or case["max_diff"] > 1e-3


def test_over_cap_prompt_is_cut_at_four_chunks_where_native_keeps_going(sd1_comparison: dict) -> None:
    case = sd1_comparison["over_cap"]
    assert case["lpw_shape"] == [1, 4 * 77, 768]
    assert case["native_shape"][1] > 4 * 77


def test_long_prompt_conditioning_feeds_core_nodes_through_the_server(comfy) -> None:
    """KSampler, ControlNetApplyAdvanced (tiny ControlNet), ConditioningCombine and ConditioningSetArea."""
    graph = {
        "1": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "tiny_sd15.safetensors"}},
        "2": {
            "class_type": "LLMGALongPromptEncode",
            "inputs": {
                "clip": ["1", 1],
                "positive": prompt_of(160),
                "negative": "blurry, (low quality:1.3)",
                "layout": "auto",
                "max_chunks": 4,
                **{k: 1024 for k in ("width", "height", "target_width", "target_height")},
                "crop_w": 0,
                "crop_h": 0,
            },
        },
        "3": {
            "class_type": "ConditioningSetArea",
            "inputs": {"conditioning": ["2", 0], "width": 64, "height": 64, "x": 0, "y": 0, "strength": 1.0},
        },
        "4": {"class_type": "ConditioningCombine", "inputs": {"conditioning_1": ["2", 0], "conditioning_2": ["3", 0]}},
        "5": {"class_type": "ControlNetLoader", "inputs": {"control_net_name": "tiny_controlnet.safetensors"}},
        "6": {"class_type": "EmptyImage", "inputs": {"width": 64, "height": 64, "batch_size": 1, "color": 0}},
        "7": {
            "class_type": "ControlNetApplyAdvanced",
            "inputs": {
                "positive": ["4", 0],
                "negative": ["2", 1],
                "control_net": ["5", 0],
                "image": ["6", 0],
                "strength": 0.8,
                "start_percent": 0.0,
                "end_percent": 1.0,
                "vae": ["1", 2],
            },
        },
        "8": {"class_type": "EmptyLatentImage", "inputs": {"width": 64, "height": 64, "batch_size": 1}},
        "9": {
            "class_type": "KSampler",
            "inputs": {
                "model": ["1", 0],
                "positive": ["7", 0],
                "negative": ["7", 1],
                "latent_image": ["8", 0],
                "seed": 4,
                "steps": 2,
                "cfg": 6.0,
                "sampler_name": "euler",
                "scheduler": "normal",
                "denoise": 1.0,
            },
        },
        "10": {"class_type": "VAEDecode", "inputs": {"samples": ["9", 0], "vae": ["1", 2]}},
        "11": {"class_type": "SaveImage", "inputs": {"images": ["10", 0], "filename_prefix": "lpw_cn"}},
    }
    run = comfy.run(graph)
    assert comfy.view_image(run.outputs["11"]["images"][0]).size == (64, 64)


def test_empty_positive_is_allowed_and_wrong_layout_is_explained(comfy) -> None:
    base = {
        "1": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "tiny_sd15.safetensors"}},
        "2": {
            "class_type": "LLMGALongPromptEncode",
            "inputs": {
                "clip": ["1", 1],
                "positive": "",
                "negative": "",
                "layout": "auto",
                "max_chunks": 4,
                **{k: 1024 for k in ("width", "height", "target_width", "target_height")},
                "crop_w": 0,
                "crop_h": 0,
            },
        },
        "3": {"class_type": "ConditioningZeroOut", "inputs": {"conditioning": ["2", 0]}},
        "4": {"class_type": "PreviewAny", "inputs": {"source": ["3", 0]}},
    }
    comfy.run(base)
    base["2"]["inputs"]["layout"] = "sdxl"
    err = comfy.run(base, expect_error=True).error()
    assert err is not None and "needs an SDXL CLIP" in err["exception_message"]
