"""LLMGA MLLM Loader (GGUF)'s path vs llama.cpp's server on the same file vs the transformers path.

    python bench/gguf_mllm.py                                  # the tiny LLMGA-Qwen2 test folder
    python bench/gguf_mllm.py --model qwen2-0.5b --dtype q8_0 --new-tokens 32   # Qwen2-0.5B layout

One folder is exported once (``export_gguf``, ``--dtype``). Side by side, interleaved, greedy, repetition
penalty 1, the same threads everywhere (f32 KV cache, flash attention off on both llama.cpp sides):

- decode tokens/s of ``run_gguf_turn`` (in process, ctypes) vs the xllamacpp server's own ``timings``
  on the same GGUF (goal >= 0.95) vs ``run_turn`` (transformers, fp32; goal >= 2x at q8_0);
- image turn time to first token: GGUF path (torch tower from the mmproj + llama.cpp prefill) vs ``run_turn``.

Writes bench/results/gguf_mllm.json.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import torch  # noqa: E402

from bench.common import write_result  # noqa: E402
from bench.remote_mllm import _folder, bench_turns  # noqa: E402
from llmga_core.export.gguf import export_gguf  # noqa: E402
from llmga_core.llamacpp import LlamaCppModel, LlamaCppSettings, load_mmproj, run_gguf_turn  # noqa: E402
from llmga_core.mllm.generate import SamplingSettings, run_turn  # noqa: E402
from llmga_core.mllm.model import load_mllm  # noqa: E402
from tests.fixtures.llama_server import llama_server  # noqa: E402


def _server_tps(url: str, prompt: str, n: int) -> float:
    body = {"prompt": prompt, "temperature": 0, "n_predict": n, "cache_prompt": False, "repeat_penalty": 1.0}
    req = urllib.request.Request(url + "/completion", json.dumps(body).encode(), {"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=600) as resp:
        return float(json.loads(resp.read())["timings"]["predicted_per_second"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", choices=["tiny", "qwen2-0.5b"], default="tiny")
    parser.add_argument("--dtype", choices=["f32", "f16", "q8_0", "q4_0"], default="q8_0")
    parser.add_argument("--new-tokens", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--workdir", type=Path, default=None)
    args = parser.parse_args()

    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="llmga-gguf-bench-"))
    folder = _folder(args.model, workdir)
    exported = export_gguf(folder, workdir / "gguf", dtype=args.dtype)
    mllm = load_mllm(folder, dtype=torch.float32)
    threads = torch.get_num_threads()
    settings = SamplingSettings(temperature=0.0, max_new_tokens=args.new_tokens, repetition_penalty=1.0)
    model = LlamaCppModel(
        exported.model, LlamaCppSettings(n_ctx=2048, n_threads=threads, kv_f32=True, flash_attn=False)
    )
    vision = load_mmproj(exported.mmproj)
    tasks = bench_turns(mllm, exported.template)
    text_prompt = tasks["text-to-image"][0]
    image_prompt, pixels, _png = tasks["similar image"]
    ours, server, hf, ttft_ours, ttft_hf = [], [], [], [], []
    with llama_server(exported.model, alias=folder.name, threads=threads) as srv:
        run_gguf_turn(model, text_prompt, None, settings)  # warm-up
        _server_tps(srv.url, text_prompt, args.new_tokens)
        for i in range(args.repeats):
            order = ("ours", "server", "hf") if i % 2 == 0 else ("hf", "server", "ours")
            for side in order:
                if side == "ours":
                    ours.append(run_gguf_turn(model, text_prompt, None, settings).tokens_per_s)
                elif side == "server":
                    server.append(_server_tps(srv.url, text_prompt, args.new_tokens))
                else:
                    hf.append(run_turn(mllm, text_prompt, None, settings).tokens_per_s)
    one = SamplingSettings(temperature=0.0, max_new_tokens=1, repetition_penalty=1.0)
    for _ in range(args.repeats):
        start = time.perf_counter()
        run_gguf_turn(model, image_prompt, vision.encode(pixels), one)
        ttft_ours.append(time.perf_counter() - start)
        ttft_hf.append(run_turn(mllm, image_prompt, pixels, one).first_token_s)
    row = {
        "gguf_tokens_per_s": statistics.median(ours),
        "server_tokens_per_s": statistics.median(server),
        "transformers_tokens_per_s": statistics.median(hf),
        "gguf_over_server": statistics.median(ours) / statistics.median(server),
        "gguf_over_transformers": statistics.median(ours) / statistics.median(hf),
        "image_ttft_gguf_s": statistics.median(ttft_ours),
        "image_ttft_transformers_s": statistics.median(ttft_hf),
    }
    print(
        f"{args.model} {args.dtype}, {threads} threads: decode in process {row['gguf_tokens_per_s']:.1f} tok/s vs "
        f"server {row['server_tokens_per_s']:.1f} (ratio {row['gguf_over_server']:.2f}) vs transformers "
        f"{row['transformers_tokens_per_s']:.1f} (ratio {row['gguf_over_transformers']:.2f}); image turn first "
        f"token {row['image_ttft_gguf_s']:.2f} s vs transformers {row['image_ttft_transformers_s']:.2f} s"
    )
    model.close()
    path = write_result("gguf_mllm", {**vars(args), "workdir": str(workdir), "threads": threads, "results": row})
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
