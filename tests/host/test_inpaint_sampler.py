"""LLMGAInpaintSampler: parity with diffusers' own pipelines on the same tiny weights, and the node in the host.

Parity (in one ComfyUI process): the tiny SD1.5 diffusers folders are loaded by LLMGACheckpointLoader and by
diffusers ``from_pretrained``; both sample 64x64 for 4 steps with the same prompt embeddings (ComfyUI's
CLIP output, which is itself compared with transformers' CLIPTextModel), the same initial noise (the noise
ComfyUI's seed gives) and the same deterministic schedule: ComfyUI "euler" + "simple" takes the training
timesteps 999, 749, 499, 249, exactly diffusers' EulerDiscreteScheduler with ``timestep_spacing="trailing"``.
The two hosts scale the starting noise differently at full strength (ComfyUI: sqrt(1 + σ_max²), diffusers'
trailing Euler: σ_max), so the noise handed to diffusers is rescaled by that ratio.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import png_bytes
from tests.fixtures.tiny_diffusers import SD15_INPAINT, SD15_T2I, SDXL_INPAINT, tiny_diffusers_models
from tests.harness.client import ComfyClient
from tests.harness.inprocess import run_in_comfy

TOLERANCE = 1e-3  # max abs difference of the final latents (diffusers' scaled latent space), fp32

PARITY = """
import importlib, math
from pathlib import Path
import comfy.sample
from diffusers import (AutoencoderKL, EulerDiscreteScheduler, StableDiffusionInpaintPipeline,
                       StableDiffusionPipeline, UNet2DConditionModel)
from transformers import CLIPTextModel

loader = importlib.import_module("llmga_pack.nodes.sd_models")
sampler = importlib.import_module("llmga_pack.nodes.inpaint_sampler")
import folder_paths
root = Path(MODELS["root"])
# the folders lie in a diffusers model folder, as a user's would (the inpainting folder shares parts by link)
folder_paths.add_model_folder_path("diffusers", str(root), is_default=True)
STEPS, CFG, SEED = 4, 7.5, 11
torch.manual_seed(0)
y, x = torch.meshgrid(torch.linspace(0, 1, 64), torch.linspace(0, 1, 64), indexing="ij")
image = torch.stack([x, y, (x + y) / 2], dim=-1)[None]
mask = torch.zeros(1, 64, 64)
mask[:, 16:48, 24:56] = 1.0  # whole 8x8 latent cells, so nearest and bilinear mask downscaling agree


def scheduler():
    return EulerDiscreteScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
                                  timestep_spacing="trailing")


def diffusers_parts(folder):
    unet = UNet2DConditionModel.from_pretrained(folder / "unet", torch_dtype=torch.float32)
    vae = AutoencoderKL.from_pretrained(folder / "vae", torch_dtype=torch.float32)
    te = CLIPTextModel.from_pretrained(folder / "text_encoder", torch_dtype=torch.float32)
    return dict(unet=unet, vae=vae, text_encoder=te, tokenizer=None, scheduler=scheduler(), safety_checker=None,
                feature_extractor=None, requires_safety_checker=False)


def start_noise(noise):
    s = scheduler()
    s.set_timesteps(STEPS)
    sigma = float(s.init_noise_sigma)
    return noise * math.sqrt(1 + sigma ** 2) / sigma


def embeds(clip, text):
    tokens = clip.tokenize(text)
    return clip.encode_from_tokens(tokens), torch.tensor([[t[0] for t in tokens["l"][0]]])


# --- inpainting: LLMGACheckpointLoader + LLMGAInpaintSampler vs StableDiffusionInpaintPipeline
folder = root / MODELS["inpaint"]
model, clip, vae = loader.load_folder(folder)
cond, ids = embeds(clip, "a red fox sitting in fresh snow, golden light")
uncond, _ = embeds(clip, "")
parts = diffusers_parts(folder)
RESULT["clip_diff"] = (parts["text_encoder"](ids)[0] - cond).abs().max().item()
positive, negative = [[cond, {}]], [[uncond, {}]]

prepared = sampler.prepare(model, positive, negative, vae, image, mask, STEPS, 1.0, "llmga", 64, 0.5)
ours = sampler.sample_latents(model, prepared, SEED, STEPS, CFG, "euler", "simple")
scale = model.model.latent_format.scale_factor
noise = comfy.sample.prepare_noise(torch.zeros(1, 4, 8, 8), SEED)
pipe = StableDiffusionInpaintPipeline(**parts)
pipe.set_progress_bar_config(disable=True)
common = dict(image=image.movedim(-1, 1), mask_image=mask[:, None], height=64, width=64, num_inference_steps=STEPS,
              guidance_scale=CFG, prompt_embeds=cond, negative_prompt_embeds=uncond, strength=1.0,
              generator=torch.Generator().manual_seed(0), output_type="latent")
theirs = pipe(latents=start_noise(noise), **common).images
RESULT["inpaint_latent_diff"] = (ours * scale - theirs).abs().max().item()
RESULT["inpaint_latent_absmax"] = theirs.abs().max().item()
other = pipe(latents=start_noise(noise), **{**common, "prompt_embeds": uncond}).images
RESULT["inpaint_prompt_effect"] = (other - theirs).abs().max().item()

out = sampler.LLMGAInpaintSampler.execute(model=model, positive=positive, negative=negative, vae=vae, image=image,
                                          mask=mask, seed=SEED, steps=STEPS, cfg=CFG, sampler_name="euler",
                                          scheduler="simple", strength=1.0, resolution="llmga", size=64,
                                          crop_context=0.5)
node_image, node_mask = out.args if hasattr(out, "args") else out.result
decoded = (pipe.vae.decode(theirs / scale).sample / 2 + 0.5).clamp(0, 1).movedim(1, -1)
RESULT["inpaint_image_diff"] = (node_image - decoded).abs().max().item()
RESULT["node_shapes"] = [list(node_image.shape), list(node_mask.shape)]
RESULT["vae_encode_diff"] = (vae.encode(image) - pipe.vae.encode(image.movedim(-1, 1) * 2 - 1).latent_dist.mean
                             ).abs().max().item()

# --- strength 0.8 (LLMGA's SDXL setting) on the same model: 3 of 4 steps from the noised picture. diffusers
# draws from its generator first the image latent's sample (std e^-15 here) and then the noise.
prepared = sampler.prepare(model, positive, negative, vae, image, mask, STEPS, 0.8, "llmga", 64, 0.5)
generator = torch.Generator().manual_seed(5)
torch.randn(1, 4, 8, 8, generator=generator)
noise_08 = torch.randn(1, 4, 8, 8, generator=generator)
ours = sampler.sample_latents(model, prepared, SEED, STEPS, CFG, "euler", "simple", noise=noise_08)
theirs = pipe(**{**common, "strength": 0.8, "generator": torch.Generator().manual_seed(5)}).images
RESULT["strength_start_step"] = prepared.start_step
RESULT["strength_latent_diff"] = (ours * scale - theirs).abs().max().item()
RESULT["strength_latent_absmax"] = theirs.abs().max().item()

# --- text-to-image: our MODEL through core KSampler vs StableDiffusionPipeline
folder = root / MODELS["t2i"]
model, clip, vae = loader.load_folder(folder)
cond, _ = embeds(clip, "a lighthouse on a cliff at dusk")
uncond, _ = embeds(clip, "")
latent = {"samples": torch.zeros(1, 4, 8, 8)}
ours = comfy_nodes.common_ksampler(model, SEED, STEPS, CFG, "euler", "simple", [[cond, {}]], [[uncond, {}]],
                                   latent)[0]["samples"]
t2i = StableDiffusionPipeline(**diffusers_parts(folder))
t2i.set_progress_bar_config(disable=True)
theirs = t2i(latents=start_noise(noise), height=64, width=64, num_inference_steps=STEPS, guidance_scale=CFG,
             prompt_embeds=cond, negative_prompt_embeds=uncond, output_type="latent").images
RESULT["t2i_latent_diff"] = (ours * scale - theirs).abs().max().item()
RESULT["t2i_latent_absmax"] = theirs.abs().max().item()
"""


@pytest.fixture(scope="module")
def diffusers_root() -> Path:
    return tiny_diffusers_models() / "diffusers"


@pytest.fixture(scope="module")
def parity(diffusers_root: Path) -> dict:
    return run_in_comfy(PARITY, {"root": diffusers_root, "inpaint": SD15_INPAINT, "t2i": SD15_T2I})


def test_clip_conversion_matches_transformers(parity: dict) -> None:
    assert parity["clip_diff"] < 1e-4


def test_inpainting_matches_diffusers_inpaint_pipeline(parity: dict) -> None:
    assert parity["inpaint_latent_diff"] < TOLERANCE
    assert parity["inpaint_prompt_effect"] > 100 * TOLERANCE  # the comparison can tell prompts apart


def test_node_output_is_the_decoded_latent(parity: dict) -> None:
    assert parity["inpaint_image_diff"] < 1e-4
    assert parity["vae_encode_diff"] < 1e-5
    assert parity["node_shapes"] == [[1, 64, 64, 3], [1, 64, 64]]


def test_strength_runs_diffusers_steps_from_the_noised_picture(parity: dict) -> None:
    assert parity["strength_start_step"] == 1  # int(4 * 0.8) = 3 of 4 steps
    assert parity["strength_latent_diff"] < TOLERANCE


def test_text_to_image_with_core_ksampler_matches_diffusers(parity: dict) -> None:
    assert parity["t2i_latent_diff"] < TOLERANCE


# --- the node in the real host ---------------------------------------------------------------------------------


def inpaint_graph(folder: str, image: str, **sampler: object) -> dict:
    widgets = dict(
        seed=3,
        steps=2,
        cfg=7.5,
        sampler_name="euler",
        scheduler="normal",
        strength=1.0,
        resolution="llmga",
        size=64,
        crop_context=0.5,
    )
    widgets.update(sampler)
    return {
        "1": {"class_type": "LLMGACheckpointLoader", "inputs": {"folder": folder, "weights": "full precision first"}},
        "2": {"class_type": "CLIPTextEncode", "inputs": {"clip": ["1", 1], "text": "a red fox"}},
        "3": {"class_type": "CLIPTextEncode", "inputs": {"clip": ["1", 1], "text": ""}},
        "4": {"class_type": "LoadImage", "inputs": {"image": image}},
        "5": {
            "class_type": "LLMGAInpaintSampler",
            "inputs": {
                "model": ["1", 0],
                "positive": ["2", 0],
                "negative": ["3", 0],
                "vae": ["1", 2],
                "image": ["4", 0],
                "mask": ["4", 1],
                **widgets,
            },
        },
        "6": {"class_type": "SaveImage", "inputs": {"images": ["5", 0], "filename_prefix": "llmga_inpaint"}},
        "7": {"class_type": "MaskToImage", "inputs": {"mask": ["5", 1]}},
        "8": {"class_type": "PreviewImage", "inputs": {"images": ["7", 0]}},
    }


def _rgba_with_hole(width: int, height: int) -> bytes:
    """A picture whose alpha is 0 on a box: LoadImage's mask is 1 there."""
    import io

    from PIL import Image

    image = Image.open(io.BytesIO(png_bytes(width, height, seed=5))).convert("RGBA")
    alpha = Image.new("L", (width, height), 255)
    alpha.paste(0, (width // 4, height // 4, width // 2, height // 2))
    image.putalpha(alpha)
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()


@pytest.fixture(scope="module")
def hole_image(comfy: ComfyClient) -> str:
    comfy.upload_image("llmga_hole_80x48.png", _rgba_with_hole(80, 48))
    return "llmga_hole_80x48.png"


def _images(comfy: ComfyClient, run: object, node: str) -> list:
    return [comfy.view_image(img) for img in run.outputs[node]["images"]]  # type: ignore[attr-defined]


@pytest.mark.parametrize("resolution", ["llmga", "fit", "crop"])
def test_inpaint_node_returns_the_input_size_and_binary_mask(
    comfy: ComfyClient, hole_image: str, resolution: str
) -> None:
    run = comfy.run(inpaint_graph(SD15_INPAINT, hole_image, resolution=resolution, seed=len(resolution)))
    [picture] = _images(comfy, run, "6")
    [mask] = _images(comfy, run, "8")
    assert picture.size == (80, 48) and mask.size == (80, 48)
    import numpy as np

    assert sorted(np.unique(np.asarray(mask.convert("L"))).tolist()) == [0, 255]
    assert mask.convert("L").getpixel((25, 15)) == 255 and mask.convert("L").getpixel((5, 40)) == 0


def test_crop_mode_leaves_the_picture_outside_the_box_untouched(comfy: ComfyClient, hole_image: str) -> None:
    import io

    import numpy as np
    from PIL import Image

    run = comfy.run(inpaint_graph(SD15_INPAINT, hole_image, resolution="crop", crop_context=0.25, seed=9))
    [picture] = _images(comfy, run, "6")
    original = np.asarray(Image.open(io.BytesIO(_rgba_with_hole(80, 48))).convert("RGB")).astype(int)
    result = np.asarray(picture.convert("RGB")).astype(int)
    # hole x 20..40, y 12..24 grows by ceil(0.25 * 20) = 5: the box is x 15..45, y 7..29
    assert np.array_equal(result[:, :15], original[:, :15]) and np.array_equal(result[30:], original[30:])
    assert np.abs(result[12:24, 20:40] - original[12:24, 20:40]).max() > 0


def test_four_channel_model_samples_and_controlnet_conditioning_applies(comfy: ComfyClient, hole_image: str) -> None:
    graph = inpaint_graph(SD15_T2I, hole_image, seed=4)
    graph["9"] = {"class_type": "ControlNetLoader", "inputs": {"control_net_name": "tiny_controlnet.safetensors"}}
    graph["10"] = {
        "class_type": "ControlNetApplyAdvanced",
        "inputs": {
            "positive": ["2", 0],
            "negative": ["3", 0],
            "control_net": ["9", 0],
            "image": ["4", 0],
            "strength": 1.0,
            "start_percent": 0.0,
            "end_percent": 1.0,
            "vae": ["1", 2],
        },
    }
    plain = _images(comfy, comfy.run(graph), "6")[0]
    graph["5"]["inputs"].update(positive=["10", 0], negative=["10", 1])
    controlled = _images(comfy, comfy.run(graph), "6")[0]
    assert plain.size == controlled.size == (80, 48)
    assert plain.tobytes() != controlled.tobytes()  # the ControlNet changed the sampling


def test_sdxl_inpainting_model_at_llmga_strength(comfy: ComfyClient, hole_image: str) -> None:
    run = comfy.run(inpaint_graph(SDXL_INPAINT, hole_image, strength=0.8, steps=2, seed=1))
    [picture] = _images(comfy, run, "6")
    assert picture.size == (80, 48)


def test_mask_of_another_size_is_a_clear_error(comfy: ComfyClient, hole_image: str) -> None:
    graph = inpaint_graph(SD15_INPAINT, hole_image, seed=21)
    graph["11"] = {"class_type": "SolidMask", "inputs": {"value": 1.0, "width": 64, "height": 64}}
    graph["5"]["inputs"]["mask"] = ["11", 0]
    error = comfy.run(graph, expect_error=True).error()
    assert "mask is 64x64 but the image is 80x48" in error["exception_message"]


def test_strength_that_runs_no_step_is_a_clear_error(comfy: ComfyClient, hole_image: str) -> None:
    error = comfy.run(inpaint_graph(SD15_INPAINT, hole_image, strength=0.2, steps=2), expect_error=True).error()
    assert "runs no step" in error["exception_message"]
