"""LLMGA Instruction Edit on SDXL vs a plain SDXL img2img KSampler graph at the same steps.

    .venv/bin/python bench/edit_sdxl.py [--steps 10] [--repeats 3] [--threads 2]   # tiny SDXL fixture, CPU

Both sides start from the same picture and the same LLMGA Long Prompt Encode (sdxl layout) conditionings:

- ``edit``: ``LLMGAInstructionEdit.execute`` (VAE encode, DiffEdit mask, inversion, masked sampling, decode);
- ``img2img``: core VAEEncode → KSampler (dpmpp_2m_sde, karras, the same steps, denoise 0.75 = the edit's
  skip 25) → VAEDecode, i.e. what an SDXL user would otherwise run.

The edit does ``steps`` guided UNet calls to sample (as img2img), ``steps`` more to invert and one call on
2 x 10 noise maps for the mask, so about 2x is expected. Timings are interleaved medians in one process; peak
memory is the peak RSS while one run goes, above the RSS before it (models resident). Writes
bench/results/edit_sdxl.json.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.common import interleaved, report, write_result  # noqa: E402
from bench.edit import peak_rss_during  # noqa: E402
from bench.lpw_encode import load_host_and_pack  # noqa: E402
from tests.harness.host import tiny_sdxl_models  # noqa: E402

SOURCE = "a photo of a cat sitting on a red sofa in a bright living room"
TARGET = "a photo of a dog sitting on a red sofa in a bright living room"


def load():
    import comfy.sd

    ckpt = tiny_sdxl_models() / "checkpoints" / "tiny_sdxl.safetensors"
    model, clip, vae, _ = comfy.sd.load_checkpoint_guess_config(str(ckpt), output_vae=True, output_clipvision=False)
    return model, clip, vae


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--size", type=int, default=64)
    opts = parser.parse_args()

    import torch

    torch.set_num_threads(opts.threads)
    comfy_nodes, lpw = load_host_and_pack()
    editing = importlib.import_module("llmga_pack.nodes.editing")
    model, clip, vae = load()

    def encode(text: str):
        out = lpw.execute(
            clip=clip,
            positive=text,
            negative="",
            layout="sdxl",
            max_chunks=4,
            width=1024,
            height=1024,
            crop_w=0,
            crop_h=0,
            target_width=1024,
            target_height=1024,
        )
        return out.args if hasattr(out, "args") else out.result

    with torch.inference_mode():
        source, _ = encode(SOURCE)
        target, negative = encode(TARGET)
    image = torch.rand(1, opts.size, opts.size, 3, generator=torch.Generator().manual_seed(0))

    def edit() -> object:
        with torch.inference_mode():
            out = editing.LLMGAInstructionEdit.execute(
                model, vae, image, source, target, negative, 3, opts.steps, 25, 3.5, 7.5
            )
        return out

    def img2img() -> object:
        with torch.inference_mode():
            latent = comfy_nodes.VAEEncode().encode(vae, image)[0]
            sampled = comfy_nodes.KSampler().sample(
                model, 3, opts.steps, 7.5, "dpmpp_2m_sde", "karras", target, negative, latent, denoise=0.75
            )[0]
            out = comfy_nodes.VAEDecode().decode(vae, sampled)[0]
        return out

    stats = interleaved(edit, img2img, opts.repeats)
    report("edit_sdxl", f"SDXL edit vs img2img KSampler ({opts.size}², {opts.steps} steps)", stats, "about 2")

    memory = {}
    for name, fn in (("img2img", img2img), ("edit", edit)):
        before, peak, seconds = peak_rss_during(fn)
        memory[name] = {"peak_MB_above_start": round(peak - before, 1), "seconds": round(seconds, 2)}
    print(f"peak memory above the resident models: {memory}")
    path = write_result(
        "edit_sdxl",
        {
            "model": "tiny SDXL fixture (Segmind-Vega layout), CPU",
            "size": opts.size,
            "steps": opts.steps,
            "threads": opts.threads,
            "timing": stats,
            "memory": memory,
        },
    )
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
