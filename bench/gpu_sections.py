"""The measurements of bench/gpu_bench.py; each runs in its own child process with its own time budget.

Every section builds its random-weight models in memory (bench/gpu_models.py), measures, prints its
human-readable lines and returns a JSON-able dict. It calls :func:`emit` after each finished piece, so
if its process is stopped at the budget the parent still has what was measured. On ``--smoke`` the same
code runs on the CPU with the models and images scaled down.
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import logging
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.common import interleaved  # noqa: E402

PARTIAL = "PARTIAL "  # prefix of the lines a child reports its results on (the parent keeps the last)

# LLMGA-style long prompt (about 90 CLIP tokens: two chunks), the same on both sides of every comparison.
PROMPT = (
    "A majestic red fox with a thick winter coat stands on a moss-covered boulder at the edge of an ancient birch "
    "forest at dawn, soft golden light filtering through the mist between the white trunks, frost on the ferns, "
    "a frozen lake reflecting the pale pink sky and distant snowy mountains, highly detailed fur, cinematic."
)
# --smoke on SDXL: CLIP-G cannot shrink (its config is fixed in ComfyUI) and costs seconds per chunk on a CPU.
SMOKE_SDXL_PROMPT = "a red fox on a mossy boulder at dawn"
EDIT_SOURCE = "a red fox standing on a mossy boulder in a birch forest at dawn"
EDIT_TARGET = "a grey wolf standing on a mossy boulder in a birch forest at dawn"


@dataclass
class Context:
    smoke: bool
    device: str  # "cuda" or "cpu"
    deadline: float  # time.monotonic() by which the section must have returned
    comfy_dir: Path

    def left(self) -> float:
        return self.deadline - time.monotonic()


def emit(result: dict) -> None:
    print(PARTIAL + json.dumps(result), flush=True)


def say(section: str, line: str) -> None:
    print(f"[{section}] {line}", flush=True)


def sync(device: str) -> None:
    import torch

    if device == "cuda":
        torch.cuda.synchronize()


def repeats_for(ctx: Context, seconds_per_pair: float, left: float, lo: int = 2, hi: int = 5) -> int:
    """How many timed pairs fit in ``left`` seconds, within [lo, hi] (lo even when it does not fit); on
    ``--smoke`` always ``lo``: the smoke run checks the code paths, its timings mean nothing."""
    if ctx.smoke:
        return lo
    if seconds_per_pair <= 0:
        return hi
    return max(lo, min(hi, int(left / seconds_per_pair)))


def comfy_host(ctx: Context) -> Any:
    """Import ComfyUI (on the GPU unless smoke) and the pack as ComfyUI loads it; return ComfyUI's nodes."""
    sys.path.insert(0, str(ctx.comfy_dir))
    from comfy.cli_args import args

    args.cpu = ctx.device == "cpu"
    import utils.extra_config  # noqa: F401  (ComfyUI's own import order)

    spec = importlib.util.spec_from_file_location(
        "llmga_pack", REPO / "__init__.py", submodule_search_locations=[str(REPO)]
    )
    pack = importlib.util.module_from_spec(spec)
    sys.modules["llmga_pack"] = pack
    spec.loader.exec_module(pack)
    import comfy.utils

    import nodes

    comfy.utils.set_progress_bar_enabled(False)  # tqdm bars would bury the figures
    logging.getLogger().setLevel(logging.WARNING)
    return nodes


def pack_node(module: str, name: str) -> Any:
    return getattr(importlib.import_module(f"llmga_pack.nodes.{module}"), name)


# --- 0. the machine -------------------------------------------------------------------------------------------


def section_env(ctx: Context) -> dict:
    import platform
    import subprocess

    import torch
    import transformers

    info: dict[str, Any] = {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torch_cuda": torch.version.cuda,
        "transformers": transformers.__version__,
        "comfyui": (ctx.comfy_dir / "comfyui_version.py").read_text().split('"')[-2],
        "cpu_threads": torch.get_num_threads(),
        "cuda_available": torch.cuda.is_available(),
    }
    if torch.cuda.is_available():
        props = torch.cuda.get_device_properties(0)
        info.update(
            gpu=props.name,
            gpu_memory_gib=round(props.total_memory / 2**30, 1),
            capability=f"{props.major}.{props.minor}",
            cudnn=torch.backends.cudnn.version(),
        )
    try:
        smi = subprocess.run(
            ["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            timeout=20,
            check=False,
        )
        info["driver"] = smi.stdout.strip().splitlines()[0] if smi.returncode == 0 and smi.stdout.strip() else None
    except (OSError, subprocess.SubprocessError):
        info["driver"] = None
    say("env", ", ".join(f"{k} {v}" for k, v in info.items()))
    return info


# --- 1. MLLM decode vs the memory-bandwidth bound -------------------------------------------------------------


def measure_copy_bandwidth(device: str, nbytes: int, repeats: int = 10) -> float:
    """Bytes/s of a device-to-device copy, counting read + write (2 x size per copy): the card's usable
    memory bandwidth, which is what one decode step (a read of every weight) is bound by."""
    import torch

    src = torch.empty(nbytes // 2, dtype=torch.float16, device=device).normal_()
    dst = torch.empty_like(src)
    for _ in range(3):
        dst.copy_(src)
    sync(device)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        dst.copy_(src)
        sync(device)
        times.append(time.perf_counter() - start)
    del src, dst
    return 2 * nbytes / statistics.median(times)


def section_mllm(ctx: Context) -> dict:
    import torch

    from bench.gpu_models import build_mllm
    from llmga_core.mllm.generate import SamplingSettings, generate_reply
    from llmga_core.mllm.tokenize import tokenizer_input_ids

    out: dict[str, Any] = {}
    dtype = torch.float16
    copy_bytes = (64 << 20) if ctx.smoke else (4 << 30)
    bandwidth = measure_copy_bandwidth(ctx.device, copy_bytes)
    out["copy_bandwidth_GBps"] = bandwidth / 1e9
    say(
        "mllm",
        f"memory bandwidth, measured: {bandwidth / 1e9:.0f} GB/s ({copy_bytes >> 20} MiB device-to-device copy)",
    )
    emit(out)  # kept even if the 7B build fails (out of memory, say)

    start = time.perf_counter()
    bench = build_mllm(ctx.comfy_dir, ctx.smoke, ctx.device, dtype)
    sync(ctx.device)
    out.update(
        build_s=time.perf_counter() - start,
        layout=bench.config,
        llm_parameters=bench.llm_parameters,
        decode_weight_bytes_per_token=bench.decode_bytes_per_token,
    )
    bound = bandwidth / bench.decode_bytes_per_token
    out["bound_tok_s"] = bound
    say(
        "mllm",
        f"{bench.config['layout']} ({'smoke widths' if ctx.smoke else 'Qwen2-7B'}), "
        f"{bench.llm_parameters / 1e9:.2f} B LLM parameters in fp16: "
        f"{bench.decode_bytes_per_token / 1e9:.2f} GB read per token -> bound {bound:.1f} tok/s",
    )
    emit(out)

    from bench.mllm_decode import PROMPT as IMAGE_TURN  # the qwen_2 template's similar-image turn

    ids = tokenizer_input_ids(IMAGE_TURN, bench.tokenizer)
    pixels = torch.randn(1, 3, 336, 336, generator=torch.Generator().manual_seed(0))
    new_tokens = 8 if ctx.smoke else 128
    greedy = SamplingSettings(temperature=0, max_new_tokens=new_tokens, repetition_penalty=1.0)
    no_eos = {"eos_token_id": None}  # random weights: always decode exactly new_tokens tokens

    def image_turn(settings: SamplingSettings) -> tuple[float, Any]:
        sync(ctx.device)
        t0 = time.perf_counter()
        embeds = bench.model.prepare_inputs(ids, pixels.to(ctx.device))  # tower + projector + splice
        sync(ctx.device)
        prep = time.perf_counter() - t0
        result = generate_reply(bench.model, bench.tokenizer, embeds, settings, overrides=no_eos)
        return prep, result

    t0 = time.perf_counter()
    if not ctx.smoke:  # warm-up: kernels, allocator
        image_turn(SamplingSettings(temperature=0, max_new_tokens=4, repetition_penalty=1.0))
    prep, first = image_turn(greedy)
    per_run = (time.perf_counter() - t0) * 0.75
    runs = [first] + [image_turn(greedy)[1] for _ in range(repeats_for(ctx, per_run, ctx.left() * 0.7, 0, 4))]
    tok_s = statistics.median(r.tokens_per_s for r in runs)
    ttft = statistics.median(r.first_token_s for r in runs)
    out.update(
        prompt_positions=runs[0].prompt_length,
        new_tokens=new_tokens,
        runs=len(runs),
        decode_tok_s=tok_s,
        decode_tok_s_all=[r.tokens_per_s for r in runs],
        image_encode_s=prep,
        prefill_first_token_s=ttft,
        ratio_to_bound=tok_s / bound,
    )
    say(
        "mllm",
        f"decode batch 1 through llmga_core.mllm.generate: {tok_s:.1f} tok/s (median of {len(runs)}, {new_tokens} "
        f"tokens after a {runs[0].prompt_length}-position image turn) = {tok_s / bound:.2f} x the bandwidth bound "
        f"{bound:.1f} tok/s",
    )
    say("mllm", f"image turn: tower + splice {prep * 1000:.0f} ms, prefill to first token {ttft * 1000:.0f} ms")
    emit(out)
    return out


# --- 2. UNet it/s: LLMGA nodes vs core -----------------------------------------------------------------------


def _lpw(clip: Any, positive: str, negative: str, size: int) -> tuple[Any, Any]:
    encode = pack_node("lpw", "LLMGALongPromptEncode")
    sizes = dict(width=size, height=size, crop_w=0, crop_h=0, target_width=size, target_height=size)
    result = encode.execute(clip=clip, positive=positive, negative=negative, layout="auto", max_chunks=4, **sizes)
    return result.result[0], result.result[1]


def section_unet(ctx: Context) -> dict:
    import torch

    from bench.gpu_models import load_sd

    nodes = comfy_host(ctx)
    out: dict[str, Any] = {}
    cases = [("sd15", 64 if ctx.smoke else 512), ("sdxl", 64 if ctx.smoke else 1024)]
    steps = 2 if ctx.smoke else 20
    for n, (kind, size) in enumerate(cases):
        share = ctx.left() / (len(cases) - n)
        case_deadline = time.monotonic() + share
        start = time.perf_counter()
        sd = load_sd(kind, ctx.smoke)
        build_s = time.perf_counter() - start
        latent = nodes.EmptyLatentImage().generate(size, size, 1)[0]
        sampler = nodes.KSampler()
        prompt = SMOKE_SDXL_PROMPT if ctx.smoke and kind == "sdxl" else PROMPT
        sample_times: dict[str, list[float]] = {"ours": [], "core": []}

        def run(side: str, sd=sd, latent=latent, sampler=sampler, size=size, times=sample_times, prompt=prompt) -> None:
            with torch.inference_mode():  # as ComfyUI's executor runs nodes
                if side == "ours":
                    positive, negative = _lpw(sd.clip, prompt, "", size)
                else:
                    encoder = nodes.CLIPTextEncode()
                    positive, negative = encoder.encode(sd.clip, prompt)[0], encoder.encode(sd.clip, "")[0]
                sync(ctx.device)
                t0 = time.perf_counter()
                sampler.sample(sd.model, 7, steps, 7.5, "euler", "normal", positive, negative, latent, denoise=1.0)
                sync(ctx.device)
                times[side].append(time.perf_counter() - t0)

        t0 = time.perf_counter()
        if not ctx.smoke:  # warm-up: moves the models to the device, picks kernels
            run("ours")
            run("core")
        pair = (time.perf_counter() - t0) * 0.8
        repeats = repeats_for(ctx, pair, case_deadline - time.monotonic() - 2, 1, 5)
        for side in sample_times:
            sample_times[side].clear()
        stats = interleaved(lambda run=run: run("ours"), lambda run=run: run("core"), repeats, warmup=0)
        ours_its = steps / statistics.median(sample_times["ours"])
        core_its = steps / statistics.median(sample_times["core"])
        out[kind] = {
            "size": size,
            "steps": steps,
            "detected": sd.detected,
            "unet_parameters": sd.parameters,
            "build_s": build_s,
            "ksampler_its_ours": ours_its,
            "ksampler_its_core": core_its,
            "graph_its_ours": steps / stats["ours_median_s"],
            "graph_its_core": steps / stats["theirs_median_s"],
            **stats,
        }
        say(
            "unet",
            f"{kind} {size}² {steps} steps euler cfg 7.5 ({sd.detected}, {sd.parameters / 1e6:.0f} M UNet params): "
            f"LLMGA Long Prompt Encode + KSampler {ours_its:.2f} it/s vs core CLIP Text Encode + KSampler "
            f"{core_its:.2f} it/s; encode+sample time ratio ours/core {stats['ratio_median']:.3f} "
            f"(p10 {stats['ratio_p10']:.3f}, p90 {stats['ratio_p90']:.3f}, n={repeats})",
        )
        emit(out)
        del sd, run
        import comfy.model_management as mm

        mm.unload_all_models()
        mm.soft_empty_cache()
    return out


# --- 3. DiffRIR latency at 1024² ------------------------------------------------------------------------------


def section_diffrir(ctx: Context) -> dict:
    import torch

    from bench.diffrir_tiling import hole, pattern
    from llmga_core.diffrir.synthetic import synthetic_network

    comfy_host(ctx)
    runtime = importlib.import_module("llmga_pack.nodes.runtime")
    diffrir_nodes = importlib.import_module("llmga_pack.nodes.diffrir")
    size = 64 if ctx.smoke else 1024
    model = diffrir_nodes.DiffRIRModel(runtime.managed(synthetic_network(20240115)), "synthetic")
    # ComfyUI IMAGE / MASK layouts: [B, H, W, C] and [B, H, W], on the CPU as the executor passes them
    generated = pattern(size, size, 1).movedim(1, -1)
    original = pattern(size, size, 2).movedim(1, -1)
    mask = hole(size, size)[:, 0]
    restore = diffrir_nodes.LLMGADiffRIRRestore

    def run(precision: str) -> Callable[[], object]:
        def go() -> object:
            with torch.inference_mode():
                image = restore.execute(
                    diffrir=model,
                    generated=generated,
                    original=original,
                    mask=mask,
                    seed=7,
                    tiling="auto",
                    tile_size=1024,
                    precision=precision,
                ).result[0]
            sync(ctx.device)
            return image

        return go

    t0 = time.perf_counter()
    if not ctx.smoke:  # warm-up: model to the device, kernels
        run("auto")()
        run("fp32")()
    pair = time.perf_counter() - t0
    repeats = repeats_for(ctx, pair, ctx.left() - 3, 1, 7)
    stats = interleaved(run("auto"), run("fp32"), repeats, warmup=0)
    auto_dtype = str(runtime.compute_dtype("auto", torch.device(ctx.device))).removeprefix("torch.")
    out = {
        "size": size,
        "auto_dtype": auto_dtype,
        "latency_auto_s": stats["ours_median_s"],
        "latency_fp32_s": stats["theirs_median_s"],
        **stats,
    }
    say(
        "diffrir",
        f"LLMGA DiffRIR Restore {size}² (one pass, x1 S2 network, synthetic weights): "
        f"{stats['ours_median_s'] * 1000:.0f} ms at precision auto ({auto_dtype}), "
        f"{stats['theirs_median_s'] * 1000:.0f} ms at fp32 (median of {repeats}, "
        "node call incl. host<->device copies)",
    )
    emit(out)
    return out


# --- 4. Instruction edit at 512² ------------------------------------------------------------------------------


def section_edit(ctx: Context) -> dict:
    import torch

    from bench.gpu_models import load_sd

    comfy_host(ctx)
    editing = importlib.import_module("llmga_pack.nodes.editing")
    size = 64 if ctx.smoke else 512
    steps = 2 if ctx.smoke else editing.STEPS
    start = time.perf_counter()
    sd = load_sd("sd15", ctx.smoke, seed=3)
    build_s = time.perf_counter() - start
    image = torch.rand(1, size, size, 3, generator=torch.Generator().manual_seed(0))
    with torch.inference_mode():
        source, _ = _lpw(sd.clip, EDIT_SOURCE, "", size)
        target, negative = _lpw(sd.clip, EDIT_TARGET, "", size)
    node = editing.LLMGAInstructionEdit

    def run(run_steps: int) -> float:
        sync(ctx.device)
        t0 = time.perf_counter()
        with torch.inference_mode():
            node.execute(
                model=sd.model,
                vae=sd.vae,
                image=image,
                source=source,
                target=target,
                negative=negative,
                seed=3,
                steps=run_steps,
                skip=int(editing.SKIP),
                source_cfg=editing.SOURCE_CFG,
                target_cfg=editing.TARGET_CFG,
            )
        sync(ctx.device)
        return time.perf_counter() - t0

    if not ctx.smoke:
        run(min(steps, 4))  # warm-up: models to the device, kernels, VAE
    first = run(steps)
    times = [first] + [run(steps) for _ in range(repeats_for(ctx, first, ctx.left() - 3, 0, 4))]
    out = {
        "size": size,
        "steps": steps,
        "skip": int(editing.SKIP),
        "build_s": build_s,
        "detected": sd.detected,
        "edit_s": statistics.median(times),
        "edit_s_all": times,
    }
    say(
        "edit",
        f"LLMGA Instruction Edit {size}², {steps} steps, skip {int(editing.SKIP)} (DiffEdit mask + inversion + edit, "
        f"VAE encode/decode included; {sd.detected}): {out['edit_s']:.2f} s (median of {len(times)})",
    )
    emit(out)
    return out


SECTIONS: dict[str, Callable[[Context], dict]] = {
    "env": section_env,
    "mllm": section_mllm,
    "unet": section_unet,
    "diffrir": section_diffrir,
    "edit": section_edit,
}
