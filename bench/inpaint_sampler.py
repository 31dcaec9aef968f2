"""LLMGAInpaintSampler vs the same sampling built from core nodes, on the tiny SD1.5 inpainting folder.

    .venv/bin/python bench/inpaint_sampler.py [--repeats 9] [--size 64] [--steps 4]

Core side: InpaintModelConditioning (noise_mask off, as LLMGA) + KSampler + VAEDecode + ImageScale back to
the input size. Ours: LLMGAInpaintSampler (llmga resolution at --size). The input is 80x48, so both
resize to the model square and back. Same MODEL/CLIP/VAE (LLMGACheckpointLoader), one process,
interleaved. Writes bench/results/inpaint_sampler.json. Goal: ratio ≤ 1.05.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.common import interleaved, report, write_result  # noqa: E402
from bench.lpw_encode import load_host_and_pack  # noqa: E402
from tests.fixtures.tiny_diffusers import SD15_INPAINT, tiny_diffusers_models  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=9)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--steps", type=int, default=4)
    opts = parser.parse_args()

    nodes, _ = load_host_and_pack()
    import torch

    loader = importlib.import_module("llmga_pack.nodes.sd_models")
    sampler = importlib.import_module("llmga_pack.nodes.inpaint_sampler").LLMGAInpaintSampler
    model, clip, vae = loader.load_folder(tiny_diffusers_models() / "diffusers" / SD15_INPAINT)
    positive = nodes.CLIPTextEncode().encode(clip, "a red fox sitting in fresh snow")[0]
    negative = nodes.CLIPTextEncode().encode(clip, "")[0]
    torch.manual_seed(0)
    image = torch.rand(1, 48, 80, 3)
    mask = torch.zeros(1, 48, 80)
    mask[:, 12:36, 20:60] = 1.0
    settings = dict(seed=3, steps=opts.steps, cfg=7.5, sampler_name="euler", scheduler="normal")

    def ours() -> object:
        return sampler.execute(
            model=model,
            positive=positive,
            negative=negative,
            vae=vae,
            image=image,
            mask=mask,
            strength=1.0,
            resolution="llmga",
            size=opts.size,
            crop_context=0.5,
            **settings,
        )

    def core() -> object:
        small = nodes.ImageScale().upscale(image, "lanczos", opts.size, opts.size, "disabled")[0]
        small_mask = torch.nn.functional.interpolate(mask[:, None], size=(opts.size, opts.size), mode="bilinear")
        pos, neg, latent = nodes.InpaintModelConditioning().encode(
            positive, negative, small, vae, (small_mask[:, 0] >= 0.5).float(), False
        )
        samples = nodes.KSampler().sample(
            model, latent_image=latent, positive=pos, negative=neg, denoise=1.0, **settings
        )[0]
        decoded = nodes.VAEDecode().decode(vae, samples)[0]
        return nodes.ImageScale().upscale(decoded, "lanczos", 80, 48, "disabled")[0]

    with torch.inference_mode():  # as ComfyUI runs nodes
        stats = interleaved(ours, core, opts.repeats)
    label = f"LLMGAInpaintSampler vs core nodes, tiny SD1.5 inpaint, {opts.size}², {opts.steps} steps"
    report("inpaint_sampler", label, stats, "≤ 1.05")
    path = write_result("inpaint_sampler", {"size": opts.size, "steps": opts.steps, **stats})
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
