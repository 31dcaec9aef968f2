"""Whole graphs on the real host (tiny random-weight models, CPU, cache off):

1. the LLMGA text-to-image graph (LLMGA Long Prompt Encode → KSampler) against the same graph built with
   core nodes only (CLIP Text Encode ×2 → KSampler), same prompt, interleaved; goal ratio ≤ 1.02;
2. end-to-end wall time of every shipped workflow (models swapped for the tiny test models).

    .venv/bin/python bench/graphs.py [--repeats 7] [--size 64] [--steps 4]

Writes bench/results/graphs.json.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.common import interleaved, report, write_result  # noqa: E402
from tests.conftest import png_bytes  # noqa: E402
from tests.fixtures.gguf_exports import exported_gguf  # noqa: E402
from tests.fixtures.host_models import host_models  # noqa: E402
from tests.fixtures.llama_server import llama_server  # noqa: E402
from tests.fixtures.tiny_mllm import FAMILIES  # noqa: E402
from tests.harness.client import ComfyClient  # noqa: E402
from tests.harness.server import ComfyServer  # noqa: E402
from tests.harness.ui_to_api import convert  # noqa: E402
from tests.host.test_workflows_headless import prepare_inputs  # noqa: E402

PROMPT = (
    "A majestic red fox with a thick winter coat stands on a moss-covered boulder at the edge of an ancient birch "
    "forest at dawn, soft golden light filtering through the mist between the white trunks, frost on the ferns, "
    "a frozen lake reflecting the pale pink sky and distant snowy mountains, highly detailed fur, cinematic."
)


def t2i_graph(encode: str, size: int, steps: int, seed: int) -> dict:
    graph: dict = {
        "1": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "tiny_sd15.safetensors"}},
        "4": {"class_type": "EmptyLatentImage", "inputs": {"width": size, "height": size, "batch_size": 1}},
        "5": {
            "class_type": "KSampler",
            "inputs": {
                "model": ["1", 0],
                "positive": ["2", 0],
                "negative": ["3", 0] if encode == "core" else ["2", 1],
                "latent_image": ["4", 0],
                "seed": seed,
                "steps": steps,
                "cfg": 7.5,
                "sampler_name": "euler",
                "scheduler": "normal",
                "denoise": 1.0,
            },
        },
        "6": {"class_type": "VAEDecode", "inputs": {"samples": ["5", 0], "vae": ["1", 2]}},
        "7": {"class_type": "PreviewImage", "inputs": {"images": ["6", 0]}},
    }
    if encode == "core":
        graph["2"] = {"class_type": "CLIPTextEncode", "inputs": {"clip": ["1", 1], "text": PROMPT}}
        graph["3"] = {"class_type": "CLIPTextEncode", "inputs": {"clip": ["1", 1], "text": ""}}
    else:
        sizes = {"width": 1024, "height": 1024, "crop_w": 0, "crop_h": 0, "target_width": 1024, "target_height": 1024}
        graph["2"] = {
            "class_type": "LLMGALongPromptEncode",
            "inputs": {"clip": ["1", 1], "positive": PROMPT, "negative": "", "layout": "auto", "max_chunks": 4} | sizes,
        }
    return graph


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--steps", type=int, default=4)
    opts = parser.parse_args()
    with tempfile.TemporaryDirectory() as root:
        server = ComfyServer(
            root=Path(root),
            models=host_models(),
            extra_args=["--cache-none"],
        )
        server.start()
        try:
            comfy = ComfyClient(server.url)
            counter = iter(range(10**6))

            def run(kind: str) -> None:
                comfy.run(t2i_graph(kind, opts.size, opts.steps, next(counter)))

            stats = interleaved(lambda: run("llmga"), lambda: run("core"), opts.repeats)
            report("graphs", f"t2i graph {opts.size}² {opts.steps} steps, LLMGA encode vs core", stats, "<= 1.02")

            walls: dict[str, float] = {}
            info = comfy.object_info()
            engines = contextlib.ExitStack()
            engine = None
            for path in sorted((REPO / "workflows").glob("*.json")):
                prompt = convert(json.loads(path.read_text()), info)
                prepare_inputs(comfy, prompt)
                for node in prompt.values():
                    if node["class_type"] == "LLMGARemoteMLLM":  # llama.cpp's server with the tiny export
                        if engine is None:
                            export = exported_gguf("qwen2")
                            engine = engines.enter_context(
                                llama_server(export.model, export.mmproj, alias=FAMILIES["qwen2"].folder)
                            )
                        node["inputs"]["endpoint"] = engine.url
                comfy.upload_image("example.png", png_bytes(64, 64, seed=5))
                times = []
                for _ in range(3):
                    start = time.perf_counter()
                    comfy.run(prompt)
                    times.append(time.perf_counter() - start)
                walls[path.stem] = statistics.median(times)
                print(f"workflow {path.stem}: {walls[path.stem]:.2f} s (median of 3, tiny models, cache off)")
            engines.close()
        finally:
            server.stop()
    print(f"wrote {write_result('graphs', {'t2i_graph': stats, 'workflow_wall_s': walls})}")


if __name__ == "__main__":
    main()
