"""bench/gpu_bench.py without a GPU: the full-size configs it builds, its --smoke mode, and its budget rules.

The GPU run itself cannot happen here; these tests pin what can be checked on a CPU: that the full-size
configs are the released models (ComfyUI's own detection, exact parameter counts), that the smoke mode
runs the same code and reports self-consistent figures, and that a failing or overrunning section is
reported while its partial figures are kept.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time

import pytest
import torch

from tests.fixtures.cache import REPO_ROOT
from tests.harness.host import comfyui_dir

BENCH = REPO_ROOT / "bench" / "gpu_bench.py"
RESULTS = REPO_ROOT / "bench" / "results"


def run_bench(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(BENCH), *args],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, **(env or {})},
        cwd=REPO_ROOT,
        check=False,
    )


def test_full_size_unets_are_sd15_and_sdxl_for_comfyui() -> None:
    """The GPU run's UNets, built on the meta device: ComfyUI detects SD15 / SDXL, with the real sizes."""
    snippet = textwrap.dedent(
        f"""
        import json, sys, torch
        sys.path[:0] = [{str(REPO_ROOT)!r}, {str(comfyui_dir())!r}]
        from comfy.cli_args import args
        args.cpu = True
        import utils.extra_config
        import comfy.model_detection, comfy.ops
        from comfy.ldm.models.autoencoder import AutoencoderKL
        from comfy.ldm.modules.diffusionmodules.openaimodel import UNetModel
        from bench.gpu_models import VAE_DDCONFIG, unet_kwargs
        out = {{}}
        for kind in ("sd15", "sdxl"):
            with torch.device("meta"):
                unet = UNetModel(operations=comfy.ops.disable_weight_init, device="meta", **unet_kwargs(kind, False))
            sd = {{"model.diffusion_model." + k: v for k, v in unet.state_dict().items()}}
            config = comfy.model_detection.model_config_from_unet(sd, "model.diffusion_model.")
            out[kind] = [type(config).__name__, sum(v.numel() for v in sd.values())]
        with torch.device("meta"):
            out["vae"] = sum(p.numel() for p in AutoencoderKL(ddconfig=VAE_DDCONFIG, embed_dim=4).parameters())
        print(json.dumps(out))
        """
    )
    done = subprocess.run([sys.executable, "-c", snippet], capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    found = json.loads(done.stdout.strip().splitlines()[-1])
    # parameter counts of runwayml/stable-diffusion-v1-5 and stabilityai/stable-diffusion-xl-base-1.0
    assert found["sd15"] == ["SD15", 859_520_964]
    assert found["sdxl"] == ["SDXL", 2_567_463_684]
    assert found["vae"] == 83_653_863  # the SD / SDXL KL VAE


def test_full_size_mllm_is_the_qwen2_7b_llava_layout() -> None:
    """The 7B MLLM on the meta device: Qwen2-7B shapes, CLIP ViT-L/14-336, and the bytes a decode step reads."""
    from bench.gpu_models import build_mllm

    bench = build_mllm(comfyui_dir(), smoke=False, device="meta", dtype=torch.float16)
    vocab = len(bench.tokenizer)
    hidden, layers, inter, kv = 3584, 28, 18944, 512
    per_layer = (hidden * hidden + hidden) + 2 * (hidden * kv + kv) + hidden * hidden + 3 * hidden * inter + 2 * hidden
    assert bench.llm_parameters == 2 * vocab * hidden + layers * per_layer + hidden
    assert bench.decode_bytes_per_token == 2 * (bench.llm_parameters - vocab * hidden + hidden)
    assert sum(p.numel() for p in bench.model.vision_tower.parameters()) == 303_507_456
    projector = sum(p.numel() for p in bench.model.mm_projector.parameters())
    assert projector == (1024 + 1) * hidden + (hidden + 1) * hidden  # Linear(1024, h), GELU, Linear(h, h)
    assert bench.model.settings.image_size == 336


def test_smoke_mllm_reports_decode_against_its_bound() -> None:
    start = time.monotonic()
    done = run_bench("--smoke", "--sections", "mllm", "--name", "gpu-smoke-test")
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "[mllm] decode batch 1 through llmga_core.mllm.generate" in done.stdout
    data = json.loads((RESULTS / "gpu-smoke-test.json").read_text())
    assert data["smoke"] is True and data["env"]["cuda_available"] is False
    assert data["command"].endswith("--smoke --sections mllm --name gpu-smoke-test")
    mllm = data["sections"]["mllm"]
    assert mllm["status"] == "ok"
    assert mllm["new_tokens"] == 8 and mllm["prompt_positions"] > 576  # 576 image rows spliced into the turn
    bound = mllm["copy_bandwidth_GBps"] * 1e9 / mllm["decode_weight_bytes_per_token"]
    assert mllm["bound_tok_s"] == pytest.approx(bound)
    assert mllm["ratio_to_bound"] == pytest.approx(mllm["decode_tok_s"] / mllm["bound_tok_s"])
    assert 0 < mllm["decode_tok_s"]
    assert time.monotonic() - start < 120


def test_failing_section_is_reported_and_keeps_its_partial_figures() -> None:
    """No ComfyUI tree: mllm measures the bandwidth, then fails building (no tokenizer); diffrir fails; exit 1."""
    done = run_bench(
        "--smoke", "--sections", "mllm,diffrir", "--name", "gpu-smoke-fail", env={"COMFYUI_PATH": "/nonexistent"}
    )
    assert done.returncode == 1
    data = json.loads((RESULTS / "gpu-smoke-fail.json").read_text())
    mllm, diffrir = data["sections"]["mllm"], data["sections"]["diffrir"]
    assert mllm["status"].startswith("failed") and mllm["copy_bandwidth_GBps"] > 0 and "decode_tok_s" not in mllm
    assert diffrir["status"].startswith("failed")
    assert "[diffrir] failed" in done.stdout and "what it measured before is kept" in done.stdout


def test_overrunning_section_is_stopped_at_its_budget() -> None:
    sys.path.insert(0, str(REPO_ROOT))
    from bench.gpu_bench import run_child

    start = time.monotonic()
    measured, status = run_child("edit", smoke=True, seconds=2.0)
    assert status == "stopped at its budget of 2 s"
    assert measured is None
    assert time.monotonic() - start < 15
