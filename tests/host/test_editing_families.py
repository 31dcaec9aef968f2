"""LLMGA Instruction Edit beyond SD1.5-ε: SDXL and v-prediction models, shown by the edit's invariants.

In-process on ComfyUI's own model objects (tiny random-weight checkpoints in the released layouts), fp32, on
three families: SDXL (ε), SD1.5 patched to v-prediction with ModelSamplingDiscrete, and an SD2 768-v layout
that ComfyUI itself detects as SD2.x v-prediction (tests/fixtures/build_tiny_sd2v.py):

* reconstruction: with an all-zero edit mask and source_cfg 0 the sampler replays the inversion's chain
  (ε_u on both sides), so the output is the input latent;
* source = target (and equal cfgs): the DiffEdit mask is all ones and the edit returns the input;
* the mask follows the prompts' disagreement: a target that equals the source except on a latent block
  (ComfyUI's conditioning mask) gives a DiffEdit mask inside that block only;
* the same seed gives the same edit, another seed another one.

15 steps: below that the sampler ends with a first-order step the inversion does not take.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tests.conftest import png_bytes
from tests.harness.client import ComfyClient
from tests.harness.host import tiny_sd2v_models, tiny_sd_models, tiny_sdxl_models
from tests.harness.inprocess import run_in_comfy
from tests.host.test_editing_node import as_building_blocks, with_mask

INVARIANTS = """
import importlib
torch.set_num_threads(1)
import comfy.sd
ed = importlib.import_module("llmga_pack.nodes.editing")
core = importlib.import_module("llmga_pack.llmga_core.editing")
model, clip, vae, _ = comfy.sd.load_checkpoint_guess_config(MODELS["ckpt"], output_vae=True, output_clipvision=False)
if PATCH:
    from comfy_extras.nodes_model_advanced import ModelSamplingDiscrete
    model = ModelSamplingDiscrete().patch(model, PATCH, False)[0]
RESULT["prediction"] = [c.__name__ for c in type(model.get_model_object("model_sampling")).__mro__
                        if c.__name__ in ("EPS", "V_PREDICTION")][0]
family = ed.check_edit_model(model)
RESULT["family"] = family.family
cat, dog = ENCODE(clip, "a cat sitting on a red sofa"), ENCODE(clip, "a dog sitting on a red sofa")
empty = NEGATIVE(clip)
image = torch.rand(1, 64, 64, 3, generator=torch.Generator().manual_seed(0))
latent = vae.encode(image)
RESULT["latent_scale"] = latent.abs().max().item()

def run(source, target, seed=3, steps=15, source_cfg=3.5, target_cfg=7.5, mask=None):
    conds = core.stage_conditionings(source, target, empty, family)
    settings = ed.EditSettings(seed=seed, steps=steps, skip=25, source_cfg=source_cfg, target_cfg=target_cfg, mask=mask)
    return ed.edit_latent(model, latent, conds, settings)

zero = torch.zeros(1, 1, 8, 8)
out, _ = run(cat, dog, source_cfg=0.0, mask=zero)
RESULT["zero_mask_reconstruction"] = (out - latent).abs().max().item()
out, mask = run(cat, cat, source_cfg=3.5, target_cfg=3.5)
RESULT["same_prompt_change"] = (out - latent).abs().max().item()
RESULT["same_prompt_mask_mean"] = mask.mean().item()
out, mask = run(cat, dog)
RESULT["edit_change"] = (out - latent).abs().max().item()

# the target differs from the source only on the latent block rows 0-3, cols 2-5 (ComfyUI conditioning masks)
block = torch.zeros(1, 8, 8)
block[:, 0:4, 2:6] = 1.0
def masked(cond, m):
    return [[t, {**e, "mask": m, "set_area_to_bounds": False, "mask_strength": 1.0}] for t, e in cond]
target = masked(cat, 1.0 - block) + masked(dog, block)
_, mask = run(cat, target, steps=2)
RESULT["block_mask_outside"] = (mask[0, 0] * (1 - block[0])).sum().item()
RESULT["block_mask_inside"] = (mask[0, 0] * block[0]).sum().item()

a, ma = run(cat, dog, seed=5, steps=2)
b, mb = run(cat, dog, seed=5, steps=2)
c, _ = run(cat, dog, seed=6, steps=2)
RESULT["same_seed"] = max((a - b).abs().max().item(), (ma - mb).abs().max().item())
RESULT["other_seed"] = (a - c).abs().max().item()
"""

SD15_ENCODE = """
ENCODE = lambda clip, text: comfy_nodes.CLIPTextEncode().encode(clip, text)[0]
NEGATIVE = lambda clip: ENCODE(clip, "")
"""

SDXL_LPW_ENCODE = """
def _lpw(clip, text):
    node = importlib.import_module("llmga_pack.nodes.lpw").LLMGALongPromptEncode
    out = node.execute(clip=clip, positive=text, negative="", layout="sdxl", max_chunks=4, width=1024, height=1024,
                       crop_w=0, crop_h=0, target_width=1024, target_height=1024)
    return (out.args if hasattr(out, "args") else out.result)
ENCODE = lambda clip, text: _lpw(clip, text)[0]
NEGATIVE = lambda clip: _lpw(clip, "x")[1]
"""

# Hand-built SD2 conditionings (the tiny SD2-v checkpoint has no text encoder): one seeded 1024-wide row per
# word after a BOS row, padding rows after, so "a cat ..." and "a dog ..." differ in exactly one token row.
HAND_BUILT_ENCODE = """
import zlib
def _row(word):
    return torch.randn(1024, generator=torch.Generator().manual_seed(zlib.crc32(word.encode())))
def ENCODE(clip, text):
    words = ["<bos>"] + text.split()
    rows = [_row(w) for w in words] + [_row("<pad>")] * (77 - len(words))
    return [[torch.stack(rows)[None], {}]]
NEGATIVE = lambda clip: ENCODE(clip, "")
"""


def invariants(ckpt: Path, encode: str, patch: str | None = None) -> dict:
    snippet = "import importlib\n" + encode + f"PATCH = {patch!r}\n" + INVARIANTS
    return run_in_comfy(snippet, {"ckpt": ckpt}, fp32_text_encoder=False)


@pytest.fixture(scope="module")
def sdxl() -> dict:
    return invariants(tiny_sdxl_models() / "checkpoints" / "tiny_sdxl.safetensors", SDXL_LPW_ENCODE)


@pytest.fixture(scope="module")
def sd15_v() -> dict:
    return invariants(tiny_sd_models() / "checkpoints" / "tiny_sd15.safetensors", SD15_ENCODE, "v_prediction")


@pytest.fixture(scope="module")
def sd2_v() -> dict:
    """SD2 768-v layout: ComfyUI detects SD2.x and v-prediction from the checkpoint itself, no patch."""
    return invariants(tiny_sd2v_models() / "checkpoints" / "tiny_sd2v.safetensors", HAND_BUILT_ENCODE)


@pytest.fixture(scope="module", params=["sdxl", "sd15_v", "sd2_v"])
def family(request: pytest.FixtureRequest) -> dict:
    return request.getfixturevalue(request.param)


def test_the_models_are_what_the_test_says(sdxl: dict, sd15_v: dict, sd2_v: dict) -> None:
    assert sdxl["family"] == "SDXL" and sdxl["prediction"] == "EPS"
    assert sd15_v["family"] == "SD1.5" and sd15_v["prediction"] == "V_PREDICTION"
    assert sd2_v["family"] == "SD2.x" and sd2_v["prediction"] == "V_PREDICTION"


def test_all_zero_mask_gives_the_reconstruction_of_the_input(family: dict) -> None:
    assert family["zero_mask_reconstruction"] <= 1e-4, family
    assert family["edit_change"] > 1e-2, family  # the same chain with the DiffEdit mask does edit


def test_source_equal_target_returns_the_input(family: dict) -> None:
    assert family["same_prompt_mask_mean"] == 1.0, family  # no disagreement anywhere: 0/0 → all ones, as LLMGA
    assert family["same_prompt_change"] <= 1e-4, family


def test_the_mask_follows_where_the_prompts_disagree(family: dict) -> None:
    assert family["block_mask_outside"] == 0.0, family
    assert family["block_mask_inside"] >= 4, family  # of the 16 latent pixels where the target differs


def test_the_edit_is_deterministic_in_the_seed(family: dict) -> None:
    assert family["same_seed"] == 0.0, family
    assert family["other_seed"] > 0.0, family


# --- bad input on the real server -----------------------------------------------------------------------------


def sdxl_edit_graph(image: str, prefix: str, clip_from: str = "tiny_sdxl.safetensors") -> dict:
    """Tiny SDXL checkpoint, prompts from CLIP Text Encode (SDXL) (or, from another checkpoint's CLIP, CLIP Text
    Encode), 2 edit steps.

    The SDXL encodes (nodes 3-5) stay in every graph so that ComfyUI's cache keeps them between prompts:
    encoding with SDXL's full-size CLIPs is the slow part here. Another checkpoint's encodes are nodes 13-15.
    """
    size = {"width": 1024, "height": 1024, "crop_w": 0, "crop_h": 0, "target_width": 1024, "target_height": 1024}
    texts = ("a cat sitting on a red sofa", "a dog sitting on a red sofa", "")
    graph: dict = {
        "1": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "tiny_sdxl.safetensors"}},
        "2": {"class_type": "LoadImage", "inputs": {"image": image}},
    }
    for node, text in zip(("3", "4", "5"), texts, strict=True):
        inputs = {"clip": ["1", 1], "text_g": text, "text_l": text, **size}
        graph[node] = {"class_type": "CLIPTextEncodeSDXL", "inputs": inputs}
    used = ("3", "4", "5")
    if clip_from != "tiny_sdxl.safetensors":
        graph["10"] = {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": clip_from}}
        used = ("13", "14", "15")
        for node, text in zip(used, texts, strict=True):
            graph[node] = {"class_type": "CLIPTextEncode", "inputs": {"clip": ["10", 1], "text": text}}
    graph["6"] = {
        "class_type": "LLMGAInstructionEdit",
        "inputs": {
            "model": ["1", 0],
            "vae": ["1", 2],
            "image": ["2", 0],
            "source": [used[0], 0],
            "target": [used[1], 0],
            "negative": [used[2], 0],
            "seed": 7,
            "steps": 2,
            "skip": 25,
            "source_cfg": 3.5,
            "target_cfg": 7.5,
        },
    }
    graph["7"] = {"class_type": "SaveImage", "inputs": {"images": ["6", 0], "filename_prefix": prefix}}
    return graph


def with_model_patch(graph: dict, node: dict) -> dict:
    graph = {**graph, "6": {**graph["6"], "inputs": dict(graph["6"]["inputs"])}, "20": node}
    graph["6"]["inputs"]["model"] = ["20", 0]
    return graph


def test_sdxl_edit_on_the_server_and_bad_inputs_name_the_fix(comfy: ComfyClient) -> None:
    picture = comfy.upload_image("edit_sdxl_src.png", png_bytes(64, 64, seed=3))
    # core CLIP Text Encode (SDXL) conditionings; the first run loads SDXL's full-size CLIPs (slow on a busy CPU)
    run = comfy.run(sdxl_edit_graph(picture, "edit_sdxl_core"), timeout=900)
    image = np.asarray(comfy.view_image(run.outputs["7"]["images"][0]).convert("RGB"))
    assert image.shape == (64, 64, 3) and image.std() > 0

    def error_of(graph: dict) -> str:
        err = comfy.run(graph, timeout=900, expect_error=True).error()
        assert err is not None and err["node_type"] == "LLMGAInstructionEdit", err
        assert "Traceback" not in err["exception_message"]
        return err["exception_message"]

    message = error_of(sdxl_edit_graph(picture, "bad_family", clip_from="tiny_sd15.safetensors"))
    assert "768-wide tokens (SD1.5)" in message and "SDXL model" in message and "CLIP of the same checkpoint" in message

    flow = {"class_type": "ModelSamplingSD3", "inputs": {"model": ["1", 0], "shift": 3.0}}
    message = error_of(with_model_patch(sdxl_edit_graph(picture, "bad_flow"), flow))
    assert "flow-matching model" in message and "SDXL text-to-image checkpoint" in message

    edm = {
        "class_type": "ModelSamplingContinuousEDM",
        "inputs": {"model": ["1", 0], "sampling": "edm", "sigma_max": 120.0, "sigma_min": 0.002},
    }
    assert "EDM" in error_of(with_model_patch(sdxl_edit_graph(picture, "bad_edm"), edm))

    odd = comfy.upload_image("edit_sdxl_odd.png", png_bytes(64, 60, seed=4))
    assert "height is 60 px" in error_of(sdxl_edit_graph(odd, "bad_side"))

    comfy.run(sdxl_edit_graph(picture, "edit_sdxl_after_errors"), timeout=900)  # the server keeps serving


def test_sdxl_building_blocks_equal_the_edit_node(comfy: ComfyClient) -> None:
    """LLMGA Edit Inversion → SamplerCustomAdvanced(LLMGA Masked CFG Guider, LLMGA Injected-Noise Sampler) on
    SDXL conditionings (pooled vectors, size embeddings) gives the node's picture for a given mask."""
    picture = comfy.upload_image("edit_sdxl_blocks.png", png_bytes(64, 64, seed=5))

    def image_of(graph: dict, node: str) -> np.ndarray:
        run = comfy.run(graph, timeout=900)
        return np.asarray(comfy.view_image(run.outputs[node]["images"][0]).convert("RGB")).astype(np.int16)

    def with_seed(graph: dict, seed: int) -> dict:
        graph["6"]["inputs"]["seed"] = seed
        return graph

    node = image_of(with_seed(with_mask(sdxl_edit_graph(picture, "sdxl_blocks_node")), 21), "7")
    blocks = as_building_blocks(with_seed(with_mask(sdxl_edit_graph(picture, "sdxl_blocks")), 21), "sdxl_blocks")
    assert np.abs(image_of(blocks, "47") - node).max() <= 1
    other = as_building_blocks(with_seed(with_mask(sdxl_edit_graph(picture, "sdxl_blocks_22")), 22), "sdxl_blocks_22")
    assert np.abs(image_of(other, "47") - node).max() > 1
