"""LLMGA instruction edit: the node's path through ComfyUI vs the library called directly, same tiny weights.

    .venv/bin/python bench/edit.py [--steps 50] [--repeats 3] [--threads 1]

Three sides edit the same 64x64 picture's latent (tiny SD1.5 test checkpoint, DiffEdit mask, 50 steps, skip 25):

- ``node``: ``nodes.editing.edit_latent``, i.e. CFGGuider preparation plus every UNet call through
  ``comfy.samplers.calc_cond_batch`` on ComfyUI's model (what LLMGAInstructionEdit runs, minus the VAE);
- ``library+diffusers``: ``llmga_core.editing.edit`` on a diffusers ``UNet2DConditionModel`` holding the same
  weights (converted from the checkpoint), conditionings concatenated into one UNet call per step as the
  original pipeline batches them: the stand-in for the original pipeline, which cannot be imported here;
- ``library+comfy-unet``: the same library call on ComfyUI's raw UNet module (no sampler machinery), which
  isolates the overhead of ComfyUI's sampling path from UNet implementation differences.

Timings are interleaved medians in one process; memory is the peak RSS while one edit runs (polled every 2 ms)
minus the RSS just before it, in a fresh subprocess per side after a short warm-up edit. Writes bench/results/edit.json.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.common import interleaved, report, write_result  # noqa: E402
from bench.lpw_encode import load_host_and_pack  # noqa: E402
from tests.harness.host import tiny_sd_models  # noqa: E402

SIDES = ("node", "library+diffusers", "library+comfy-unet")
SOURCE, TARGET = "a cat sitting on a red sofa", "a dog sitting on a red sofa"


def diffusers_unet(checkpoint: Path):
    """The checkpoint's UNet as diffusers' UNet2DConditionModel (the tiny fixture's one-level SD1 layout)."""
    from diffusers import UNet2DConditionModel
    from diffusers.loaders.single_file_utils import convert_ldm_unet_checkpoint
    from safetensors.torch import load_file

    unet = UNet2DConditionModel(
        sample_size=8,
        in_channels=4,
        out_channels=4,
        down_block_types=("CrossAttnDownBlock2D",),
        up_block_types=("CrossAttnUpBlock2D",),
        block_out_channels=(320,),
        layers_per_block=1,
        cross_attention_dim=768,
        attention_head_dim=8,
    )
    unet.load_state_dict(convert_ldm_unet_checkpoint(load_file(str(checkpoint)), dict(unet.config)), strict=True)
    return unet.eval()


def setup(threads: int) -> dict:
    import torch

    torch.set_num_threads(threads)
    comfy_nodes, _ = load_host_and_pack()
    import importlib

    import comfy.sd

    checkpoint = tiny_sd_models() / "checkpoints" / "tiny_sd15.safetensors"
    model, clip, vae, _ = comfy.sd.load_checkpoint_guess_config(
        str(checkpoint), output_vae=True, output_clipvision=False
    )
    editing = importlib.import_module("llmga_pack.nodes.editing")
    core = importlib.import_module("llmga_pack.llmga_core.editing")

    def encode(text: str):
        return comfy_nodes.CLIPTextEncode().encode(clip, text)[0]

    conds = editing.stage_conditionings(encode(SOURCE), encode(TARGET), encode(""))
    image = torch.rand(1, 64, 64, 3, generator=torch.Generator().manual_seed(0))
    latent = vae.encode(image)
    return {
        "torch": torch,
        "model": model,
        "editing": editing,
        "core": core,
        "conds": conds,
        "latent": latent,
        "diffusers_unet": diffusers_unet(checkpoint),
    }


def library_edit(env: dict, unet_eps: Callable, steps: int) -> Callable[[], object]:
    """``edit`` on a plain UNet: one UNet call per step, the conditionings concatenated along the batch."""
    torch, core, conds = env["torch"], env["core"], env["conds"]
    tensors = {name: cond[0][0] for name, cond in conds.items()}
    alphas = core.sd15_alphas_cumprod()

    def eps_batch(x, t, names):
        with torch.no_grad():
            context = torch.cat([tensors[n].expand(x.shape[0], -1, -1) for n in names])
            out = unet_eps(x.repeat(len(names), 1, 1, 1), t, context)
        return list(out.chunk(len(names)))

    denoiser = core.Denoiser(eps=lambda x, t, n: eps_batch(x, t, [n])[0], eps_batch=eps_batch)
    x0 = env["model"].model.process_latent_in(env["latent"])

    def run() -> object:
        return core.edit(
            denoiser,
            x0,
            env["editing"].STAGE_CONDS,
            alphas,
            torch.Generator("cpu").manual_seed(3),
            steps=steps,
            skip=25,
        )

    return run


def sides(env: dict, steps: int) -> dict[str, Callable[[], object]]:
    torch, editing = env["torch"], env["editing"]
    comfy_unet = env["model"].model.diffusion_model
    diff_unet = env["diffusers_unet"]

    def node() -> object:
        settings = editing.EditSettings(seed=3, steps=steps, skip=25)
        with torch.no_grad():
            return editing.edit_latent(env["model"], env["latent"], env["conds"], settings)

    return {
        "node": node,
        "library+diffusers": library_edit(env, lambda x, t, c: diff_unet(x, t, encoder_hidden_states=c).sample, steps),
        "library+comfy-unet": library_edit(
            env, lambda x, t, c: comfy_unet(x, torch.full((x.shape[0],), float(t)), context=c), steps
        ),
    }


def agreement(env: dict) -> dict:
    """How far apart the sides' results are (same weights, same seed): a sanity check, not a parity claim."""
    runs = sides(env, 15)
    node_latent = env["model"].model.process_latent_in(runs["node"]()[0])
    out = {}
    for name in SIDES[1:]:
        result = runs[name]()
        out[name] = (node_latent - result.latent).abs().max().item()
    return out


def rss_mb() -> float:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * resource.getpagesize() / 2**20


def peak_rss_during(fn: Callable[[], object]) -> tuple[float, float, float]:
    """(RSS before, peak RSS while ``fn`` runs, seconds), RSS polled every 2 ms from a thread."""
    import threading

    before, peak, done = rss_mb(), [0.0], threading.Event()

    def poll() -> None:
        while not done.is_set():
            peak[0] = max(peak[0], rss_mb())
            time.sleep(0.002)

    watcher = threading.Thread(target=poll, daemon=True)
    watcher.start()
    start = time.perf_counter()
    fn()
    seconds = time.perf_counter() - start
    done.set()
    watcher.join()
    return before, max(peak[0], rss_mb()), seconds


def memory_one(side: str, steps: int, threads: int) -> None:
    env = setup(threads)
    run = sides(env, steps)[side]
    sides(env, 2)[side]()  # lazy initialisation (model load to device, kernels) outside the measurement
    before, peak, seconds = peak_rss_during(run)
    print(
        json.dumps(
            {
                "side": side,
                "rss_before_MB": round(before),
                "rss_peak_MB": round(peak),
                "edit_working_set_MB": round(peak - before, 1),
                "seconds": round(seconds, 2),
            }
        )
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--memory-side", choices=SIDES, help=argparse.SUPPRESS)
    opts = parser.parse_args()
    if opts.memory_side:
        memory_one(opts.memory_side, opts.steps, opts.threads)
        return

    env = setup(opts.threads)
    close = agreement(env)
    print(f"max |node - library| on the edited latent at 15 steps: {close}")
    runs = sides(env, opts.steps)
    for fn in sides(env, 2).values():
        fn()  # warm-up outside the timed runs
    results: dict = {"steps": opts.steps, "threads": opts.threads, "agreement_15_steps": close, "timing": {}}
    for name in SIDES[1:]:
        stats = interleaved(runs["node"], runs[name], opts.repeats, warmup=0)
        report("edit", f"node vs {name}, {opts.steps} steps", stats, "<= 1.0")
        results["timing"][name] = stats

    memory = {}
    for side in SIDES:
        cmd = [
            sys.executable,
            __file__,
            "--memory-side",
            side,
            "--steps",
            str(opts.steps),
            "--threads",
            str(opts.threads),
        ]
        done = subprocess.run(cmd, capture_output=True, text=True, check=False)
        lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
        memory[side] = json.loads(lines[-1]) if lines else {"error": done.stderr[-2000:]}
        print(f"peak memory {side}: {memory[side]}")
    results["memory"] = memory
    print(f"wrote {write_result('edit', results)}")


if __name__ == "__main__":
    main()
