"""The LLMGA MLLM in process vs on llama.cpp's server (LLMGA Remote MLLM's path), same model, same prompt.

    python bench/remote_mllm.py                   # the tiny LLMGA-Qwen2 test folder
    python bench/remote_mllm.py --model qwen2-0.5b --new-tokens 32   # Qwen2-0.5B layout, random weights

The folder is exported with ``llmga_core.export.export_gguf`` (f32) and served by xllamacpp (llama.cpp's
C++ server) on 127.0.0.1 with as many threads as torch uses here, f32 KV cache and flash attention off
(the settings the parity tests use). Local = ``run_turn`` (transformers); remote = ``RemoteMLLM.generate``
(HTTP, streamed). Turns alternate, greedy, repetition penalty 1. Printed per task (text-to-image, similar
image): wall time and decode tokens/s on each side, and the remote round-trip overhead = client wall time
minus the server's own prompt + decode time (the /v1/models and /props checks, HTTP, JSON, SSE).
Writes bench/results/remote_mllm.json.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from bench.common import write_result  # noqa: E402
from llmga_core.export.gguf import export_gguf  # noqa: E402
from llmga_core.llamacpp import MMProjVision  # noqa: E402
from llmga_core.mllm import Conversation, ImageRef, add_task_turn, clip_resize_crop, prepare_mllm_image  # noqa: E402
from llmga_core.mllm.generate import SamplingSettings, run_turn  # noqa: E402
from llmga_core.mllm.model import LoadedMLLM, load_mllm  # noqa: E402
from llmga_core.remote import RemoteMLLM, parse_endpoint, png_bytes  # noqa: E402
from tests.fixtures.llama_server import llama_server  # noqa: E402


def bench_folder(model: str, workdir: Path) -> Path:
    """The LLMGA folder a bench runs: the tiny test fixture, or the Qwen2-0.5B layout (random weights)."""
    if model == "tiny":
        from tests.fixtures.tiny_mllm import tiny_mllm_dir

        return tiny_mllm_dir("qwen2")
    from bench.mllm_decode import build_folder

    return build_folder(workdir)


def bench_turns(
    mllm: LoadedMLLM | MMProjVision, template: str
) -> dict[str, tuple[str, torch.Tensor | None, bytes | None]]:
    """task -> (rendered prompt, local pixel values, the PNG the remote node sends) for the two turns
    (``mllm``: anything with the model's ``clip_preprocess``)."""
    picture = np.random.default_rng(0).integers(0, 256, (240, 320, 3), dtype=np.uint8)
    prepared = prepare_mllm_image("similar image", picture, None, mllm.clip_preprocess)
    png = png_bytes(clip_resize_crop(prepared.square, mllm.clip_preprocess))
    ref = ImageRef("bench", 320, 240, pixels=prepared.pixel_values)
    text = add_task_turn(Conversation(template), "text-to-image", "A level 1 mouse monster", None).prompt()
    image = add_task_turn(Conversation(template), "similar image", "", ref).prompt()
    return {"text-to-image": (text, None, None), "similar image": (image, prepared.pixel_values, png)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", choices=["tiny", "qwen2-0.5b"], default="tiny")
    parser.add_argument("--new-tokens", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--workdir", type=Path, default=None)
    args = parser.parse_args()

    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="llmga-remote-bench-"))
    folder = bench_folder(args.model, workdir)
    exported = export_gguf(folder, workdir / "gguf", dtype="f32")
    mllm = load_mllm(folder, dtype=torch.float32)
    threads = torch.get_num_threads()
    settings = SamplingSettings(temperature=0.0, max_new_tokens=args.new_tokens, repetition_penalty=1.0)

    tasks = bench_turns(mllm, exported.template)
    name = folder.name
    results: dict[str, dict] = {}
    with llama_server(exported.model, exported.mmproj, alias=name, threads=threads) as server:
        client = RemoteMLLM(parse_endpoint(server.url, "llama.cpp", name, timeout_s=600))
        for task, (prompt, pixels, image_png) in tasks.items():
            run_turn(mllm, prompt, pixels, settings)  # warm-up both sides
            client.generate(prompt, settings, image_png=image_png)
            local_wall, local_tps, remote_wall, remote_tps, overhead, probe = [], [], [], [], [], []
            for i in range(args.repeats):
                for side in ("local", "remote") if i % 2 == 0 else ("remote", "local"):
                    start = time.perf_counter()
                    if side == "local":
                        mine = run_turn(mllm, prompt, pixels, settings)
                        local_wall.append(time.perf_counter() - start)
                        local_tps.append(mine.tokens_per_s)
                    else:
                        theirs = client.generate(prompt, settings, image_png=image_png)
                        wall = time.perf_counter() - start
                        timings = theirs.extra.get("timings", {})
                        server_s = (timings.get("prompt_ms", 0.0) + timings.get("predicted_ms", 0.0)) / 1000
                        remote_wall.append(wall)
                        remote_tps.append(float(timings.get("predicted_per_second", 0.0)))
                        overhead.append(wall - server_s)
                        probe.append(theirs.extra["probe_s"])
            same = 0  # leading tokens that agree (random tiny models have near-ties in their logits)
            while same < min(len(mine.token_ids), len(theirs.token_ids)) and (
                mine.token_ids[same] == theirs.token_ids[same]
            ):
                same += 1
            row = {
                "local_wall_s": statistics.median(local_wall),
                "remote_wall_s": statistics.median(remote_wall),
                "wall_ratio_remote_over_local": statistics.median(remote_wall) / statistics.median(local_wall),
                "local_decode_tokens_per_s": statistics.median(local_tps),
                "remote_decode_tokens_per_s": statistics.median(remote_tps),
                "remote_overhead_ms": statistics.median(overhead) * 1000,
                "remote_overhead_ms_range": [min(overhead) * 1000, max(overhead) * 1000],
                "remote_checks_ms": statistics.median(probe) * 1000,
                "tokens": len(mine.token_ids),
                "same_leading_tokens": same,
            }
            results[task] = row
            print(
                f"{task}: local {row['local_wall_s'] * 1000:.0f} ms ({row['local_decode_tokens_per_s']:.0f} tok/s) vs "
                f"remote {row['remote_wall_s'] * 1000:.0f} ms ({row['remote_decode_tokens_per_s']:.0f} tok/s), "
                f"wall ratio remote/local {row['wall_ratio_remote_over_local']:.2f}; round-trip overhead "
                f"{row['remote_overhead_ms']:.1f} ms (of which model/props checks {row['remote_checks_ms']:.1f} ms); "
                f"first {same} of {row['tokens']} tokens identical"
            )
    path = write_result(
        "remote_mllm",
        {
            "model": args.model,
            "new_tokens": args.new_tokens,
            "repeats": args.repeats,
            "threads": threads,
            "results": results,
        },
    )
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
