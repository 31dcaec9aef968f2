"""Make tests/golden/editing/edit_node_parity.* : the original LLMGA SD1.5 edit on the tiny diffusers folder.

The numbers that tests/host/test_edit_node_parity.py compares the shipped graph (LLMGA Checkpoint Loader →
LLMGA Long Prompt Encode (sd15) → LLMGA Instruction Edit) with. The original code is NOT part of this
repository: give this script a folder that holds the original's two editing files as a package, e.g.

    git clone https://github.com/dvlab-research/LLMGA /work/ref-llmga-src   # commit 7e32eb6
    mkdir -p /work/ref-llmga/llmga/diffusers && touch /work/ref-llmga/llmga/__init__.py \\
        /work/ref-llmga/llmga/diffusers/__init__.py
    cp /work/ref-llmga-src/llmga/diffusers/{pipeline_semantic_stable_diffusion_img2img_solver_lpw_mask,\\
    scheduling_dpmsolver_multistep_inject}.py /work/ref-llmga/llmga/diffusers/

and apply the two patches tests/golden/editing/PROVENANCE.md lists (the moved SemanticStableDiffusion
output class; ``int(...)`` around ``clipped_idx``). Then, from the repository root:

    .venv/bin/python scripts/make_edit_node_goldens.py --original /work/ref-llmga

What the run does, per case (CASES below; also written to the JSON):

1. Builds the original pipeline class from the parts of the tiny ``llmga-sd15-t2i`` folder
   (tests/fixtures/build_tiny_diffusers.py): the full-precision UNet loaded with ``sample_size=4`` (the
   original sizes its inversion noise from ``unet.sample_size``: 4 latents = the 32 px test image; the
   weights do not depend on it), the VAE and CLIP-L text encoder in float32, ComfyUI's bundled SD1
   tokenizer (``comfy/sd1_tokenizer``), the folder's scheduler config turned into the original's
   ``DPMSolverMultistepSchedulerInject`` (sde-dpmsolver++, order 2) as its CLI does; no safety checker.
2. One ``torch.Generator().manual_seed(seed)`` is handed to ``generate_mask`` and then to ``invert``: the
   original then draws, in order, the 10 VAE posterior samples, the t=500 map noise and the per-step
   inversion noises, which is the order in which the node draws them from its ``seed``.
3. ``generate_mask(image=PIL image, source_prompt, target_prompt)`` with its defaults (10 maps, ratio 3.0,
   guidance 7.5), ``invert(image_path=uint8 array, source_prompt, source_guidance_scale=3.5,
   num_inversion_steps=steps, skip=skip, eta=1.0)``, then ``pipe(prompt=target, init_latents=xts[-1],
   guidance_scale=7.5, mask_image=mask, zs=zs, output_type="latent")``, as the original CLI chains them.
   A forward hook on the UNet keeps the mask call's output, from which the original's guidance map is
   recomputed with its own formula and divided by |1 − 7.5| (the node's map: llmga_core/editing/mask.py).
4. The tiny random UNet's DiffEdit maps are flat (every mask comes out empty, so the target would not
   matter), so each case also edits inside ``given_mask`` (the node's optional mask input): the original's
   ``invert`` from a fresh ``Generator().manual_seed(seed)`` (with a given mask the node draws no mask-stage
   noise) and ``pipe(..., mask_image=given_mask)``.
5. Writes, per case: ``mask`` [4, 4], ``map`` [4, 4], ``zs`` [steps, 4, 4, 4] (descending t, the original's
   order), ``edited`` [4, 4, 4] (the latent before the VAE decode, ×0.18215 space), ``edited_in_given_mask``
   [4, 4, 4], and the shared ``image`` [32, 32, 3] uint8, ``given_mask`` [4, 4] and the scheduler's
   ``alphas_cumprod`` [1000], with the library versions and the float32 error growth of the three
   networks (tests/tolerances.py) in the JSON.
"""

from __future__ import annotations

import argparse
import importlib
import json
import platform
import sys
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import save_file

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.fixtures.tiny_diffusers import SD15_EDIT, tiny_edit_models  # noqa: E402
from tests.harness.host import comfyui_dir  # noqa: E402
from tests.tolerances import network_growth  # noqa: E402

OUT = ROOT / "tests" / "golden" / "editing" / "edit_node_parity"
STEPS, SKIP = 4, 25
SIZE = 32  # px: 4x4 latents, the cheapest picture SD's VAE (three 2x downsamplings) encodes
GIVEN_MASK = torch.zeros(SIZE // 8, SIZE // 8, dtype=torch.uint8)
GIVEN_MASK[1:3, 0:2] = 1  # latent pixels; the node gets it as a MASK of the image's size (8x8 blocks)

_SCENE = "a small wooden cabin beside a frozen lake under tall pine trees at dusk, smoke rising from the chimney"
_CITY = "a busy street market in an old town with colorful awnings, fruit stalls, bicycles and people walking"


def _long(base: str, extra: str, tokens: int, tokenizer) -> str:
    """``base`` followed by repetitions of ``extra`` until it has about ``tokens`` tokens (BOS/EOS excluded)."""
    text = base
    while len(tokenizer(text)["input_ids"]) - 2 < tokens:
        text += ", " + extra
    return text


def cases(tokenizer) -> list[dict]:
    """Source/target captions of about 10, 90 and 300 tokens, plain and weighted."""
    out = [
        dict(
            name="t10",
            source="a photo of a red square on a blue table",
            target="a photo of a green circle on a blue table",
        ),
        dict(
            name="t10_weighted",
            source="a photo of a (red:1.3) square on a [blue] table",
            target="a photo of a (green circle:1.4) on a blue table",
        ),
    ]
    src90 = _long("a photo of a red square on a blue table", _SCENE, 88, tokenizer)
    tgt90 = _long("a photo of a green circle on a blue table", _SCENE, 88, tokenizer)
    out.append(dict(name="t90", source=src90, target=tgt90))
    out.append(
        dict(
            name="t90_weighted",
            source=src90.replace("red square", "(red square:1.3)").replace("frozen lake", "(frozen lake:0.8)", 1),
            target=tgt90.replace("green circle", "(green circle:1.3)").replace("pine trees", "[pine trees]", 1),
        )
    )
    src300 = _long("a photo of a red square on a blue table", _SCENE + ", " + _CITY, 295, tokenizer)
    tgt300 = _long("a photo of a green circle on a blue table", _CITY + ", " + _SCENE, 290, tokenizer)
    out.append(dict(name="t300", source=src300, target=tgt300))
    out.append(
        dict(
            name="t300_weighted",
            source=src300.replace("red square", "(red square:1.3)").replace(
                "colorful awnings", "(colorful awnings:1.2)"
            ),
            target=tgt300.replace("green circle", "(green circle:1.3)").replace("fruit stalls", "[fruit stalls]"),
        )
    )
    for i, case in enumerate(out):
        case["seed"] = 40 + i
        case["source_tokens"] = len(tokenizer(case["source"])["input_ids"]) - 2
        case["target_tokens"] = len(tokenizer(case["target"])["input_ids"]) - 2
    return out


def test_image() -> np.ndarray:
    """SIZE² RGB: gradients, a bright disc and seeded noise (numpy's generator is the same on every machine)."""
    rng = np.random.default_rng(5)
    y, x = np.mgrid[0:SIZE, 0:SIZE].astype(np.float64) * 63 / (SIZE - 1)
    img = np.stack([x * 255 / 63, y * 255 / 63, (x + y) * 127 / 126], axis=-1)
    img += 110.0 * (((x - 40) ** 2 + (y - 24) ** 2) < 13**2)[..., None]
    img += rng.normal(0.0, 8.0, img.shape)
    return np.clip(np.rint(img), 0, 255).astype(np.uint8)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--original", required=True, type=Path, help="folder holding the original as llmga/diffusers")
    args = parser.parse_args()
    torch.set_num_threads(1)
    sys.path.insert(0, str(args.original))
    original = importlib.import_module("llmga.diffusers.pipeline_semantic_stable_diffusion_img2img_solver_lpw_mask")
    inject = importlib.import_module("llmga.diffusers.scheduling_dpmsolver_multistep_inject")
    import diffusers
    import transformers
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from PIL import Image
    from transformers import CLIPTextModel, CLIPTokenizer

    folder = tiny_edit_models() / "diffusers" / SD15_EDIT
    unet = UNet2DConditionModel.from_pretrained(folder / "unet", sample_size=SIZE // 8, torch_dtype=torch.float32)
    vae = AutoencoderKL.from_pretrained(folder / "vae", torch_dtype=torch.float32)
    text_encoder = CLIPTextModel.from_pretrained(folder / "text_encoder", torch_dtype=torch.float32)
    tokenizer = CLIPTokenizer.from_pretrained(comfyui_dir() / "comfy" / "sd1_tokenizer", model_max_length=77)
    config = json.loads((folder / "scheduler" / "scheduler_config.json").read_text())
    config = {k: v for k, v in config.items() if not k.startswith("_")}
    scheduler = inject.DPMSolverMultistepSchedulerInject.from_config(
        config, algorithm_type="sde-dpmsolver++", solver_order=2
    )
    pipe = original.SemanticStableDiffusionImg2ImgPipeline_DPMSolver(
        vae=vae,
        text_encoder=text_encoder,
        tokenizer=tokenizer,
        unet=unet,
        scheduler=scheduler,
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )
    pipe.set_progress_bar_config(disable=True)

    calls: list[torch.Tensor] = []
    unet.register_forward_hook(lambda _m, _a, out: calls.append(out.sample.detach().clone()))
    image = test_image()
    tensors: dict[str, torch.Tensor] = {"image": torch.from_numpy(image), "given_mask": GIVEN_MASK}
    tensors["alphas_cumprod"] = pipe.scheduler.alphas_cumprod.float().contiguous()  # the original's ᾱ table
    all_cases = cases(tokenizer)

    def invert(case: dict, generator: torch.Generator) -> tuple:
        """The original's edit-friendly inversion of the test image under the case's source caption."""
        return pipe.invert(
            image_path=image,
            source_prompt=case["source"],
            source_guidance_scale=3.5,
            num_inversion_steps=STEPS,
            skip=SKIP,
            eta=1.0,
            generator=generator,
        )

    for case in all_cases:
        name, generator = case["name"], torch.Generator().manual_seed(case["seed"])
        calls.clear()
        mask = pipe.generate_mask(
            image=Image.fromarray(image),
            source_prompt=case["source"],
            target_prompt=case["target"],
            generator=generator,
        )
        # the mask call's batch is [neg_src, src, uncond, tgt] x 10 maps; the original's map and guidance
        neg_src, src, uncond, tgt = calls[0].chunk(4)
        guided_src, guided_tgt = neg_src + 7.5 * (src - neg_src), uncond + 7.5 * (tgt - uncond)
        original_map = (guided_tgt - guided_src).abs().reshape(1, 10, 4, SIZE // 8, SIZE // 8).mean([1, 2])[0]
        zs, xts = invert(case, generator)
        edited = pipe(
            prompt=case["target"],
            init_latents=xts[-1].expand(1, -1, -1, -1),
            guidance_scale=7.5,
            mask_image=mask,
            zs=zs,
            output_type="latent",
        )[0].images
        # The tiny random UNet's maps are too flat for the 1.5x-mean threshold (every mask comes out empty, so
        # the target prompt would not matter); a second run edits inside a given mask as the node's mask
        # input does: the original's __call__ with that mask, inverted from a fresh generator(seed) (the node
        # then draws no mask-stage noise).
        zs_given, xts_given = invert(case, torch.Generator().manual_seed(case["seed"]))
        given = pipe(
            prompt=case["target"],
            init_latents=xts_given[-1].expand(1, -1, -1, -1),
            guidance_scale=7.5,
            mask_image=GIVEN_MASK[None].numpy().astype(np.int64),
            zs=zs_given,
            output_type="latent",
        )[0].images
        tensors[f"{name}.edited_in_given_mask"] = torch.as_tensor(given)[0].float().contiguous()
        tensors[f"{name}.mask"] = torch.from_numpy(np.asarray(mask[0])).to(torch.uint8)
        tensors[f"{name}.map"] = (original_map / 6.5).float().contiguous()
        tensors[f"{name}.zs"] = zs[:, 0].float().contiguous()
        tensors[f"{name}.edited"] = torch.as_tensor(edited)[0].float().contiguous()
        relative = original_map / original_map.mean()
        case["mask_fraction"] = float(tensors[f"{name}.mask"].float().mean())
        case["threshold_margin"] = float((relative - 1.5).abs().min())  # |map/mean - 1.5|, nearest pixel
        print(name, case["source_tokens"], case["target_tokens"], case["mask_fraction"], case["threshold_margin"])

    meta = {
        "original": "dvlab-research/LLMGA 7e32eb6858c2fda168e921c12fa9622d9af9ce42",
        "fixture": f"tests/fixtures/tiny_diffusers.py {SD15_EDIT}",
        "steps": STEPS,
        "skip": SKIP,
        "source_cfg": 3.5,
        "target_cfg": 7.5,
        "growth": {
            "unet": network_growth(unet),
            "text_encoder": network_growth(text_encoder),
            "vae_encoder": network_growth(vae.encoder),
        },
        "libraries": {
            "python": platform.python_version(),
            "torch": torch.__version__,
            "diffusers": diffusers.__version__,
            "transformers": transformers.__version__,
            "numpy": np.__version__,
        },
        "cases": all_cases,
    }
    save_file(tensors, str(OUT.with_suffix(".safetensors")))
    OUT.with_suffix(".json").write_text(json.dumps(meta, indent=2) + "\n")


if __name__ == "__main__":
    main()
