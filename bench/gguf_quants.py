"""The GGUF export's types side by side: file size, decode speed and closeness to f16, in one run.

    python bench/gguf_quants.py                                   # the tiny LLMGA-Qwen2 test folder
    python bench/gguf_quants.py --model qwen2-0.5b --new-tokens 32   # Qwen2-0.5B layout (random weights)

Each ``--dtypes`` export of the folder is written once under ``--workdir`` (reused by later runs; the same
cache as bench/gguf_mllm.py). For each: the text model's file size and its ratio to f16; the in-process decode
tokens/s of one greedy text turn (``run_gguf_turn``, f32 KV cache, flash attention off), median of
``--repeats``, the types interleaved; and the cosine of the first step's logits with the f16 file's on the same
prompt. Writes bench/results/gguf_quants.json.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from bench.common import write_result  # noqa: E402
from bench.gguf_mllm import _llama, exported  # noqa: E402
from bench.remote_mllm import bench_folder, bench_turns  # noqa: E402
from llmga_core.llamacpp import load_mmproj, run_gguf_turn  # noqa: E402
from llmga_core.llamacpp.generate import prefill, prompt_ids  # noqa: E402
from llmga_core.mllm.generate import SamplingSettings  # noqa: E402


def first_logits(model, prompt: str) -> np.ndarray:
    prefill(model, prompt_ids(model, prompt))
    return model.logits()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", choices=["tiny", "qwen2-0.5b"], default="tiny")
    parser.add_argument("--dtypes", default="f16,q8_0,q6_k,q5_k_m,q4_k_m,q4_0")
    parser.add_argument("--new-tokens", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--workdir", type=Path, default=Path(tempfile.gettempdir()) / "llmga-bench-gguf")
    args = parser.parse_args()
    args.workdir.mkdir(parents=True, exist_ok=True)
    dtypes = [d for d in args.dtypes.split(",") if d]
    folder = bench_folder(args.model, args.workdir)
    exports = {d: exported(folder, args.workdir, d) for d in dict.fromkeys(["f16", *dtypes])}
    template = exports["f16"].template
    prompt = bench_turns(load_mmproj(exports["f16"].mmproj), template)["text-to-image"][0]
    threads = torch.get_num_threads()
    settings = SamplingSettings(temperature=0.0, max_new_tokens=args.new_tokens, repetition_penalty=1.0)
    models = {d: _llama(exports[d].model, threads) for d in dtypes}
    want = first_logits(_llama(exports["f16"].model, threads), prompt)
    rows: dict[str, dict] = {}
    for d, model in models.items():
        got = first_logits(model, prompt)
        rows[d] = {
            "bytes": exports[d].model.stat().st_size,
            "cosine_to_f16": float(got @ want / np.linalg.norm(got) / np.linalg.norm(want)),
            "same_top1_as_f16": bool(got.argmax() == want.argmax()),
            "tokens_per_s": [],
        }
        run_gguf_turn(model, prompt, None, settings)  # warm-up
    for i in range(args.repeats):
        for d in dtypes if i % 2 == 0 else reversed(dtypes):
            rows[d]["tokens_per_s"].append(run_gguf_turn(models[d], prompt, None, settings).tokens_per_s)
    f16_bytes = exports["f16"].model.stat().st_size
    print(f"{args.model}, {threads} threads, {args.new_tokens} tokens, median of {args.repeats}:")
    for d, row in rows.items():
        row["size_over_f16"] = row["bytes"] / f16_bytes
        row["median_tokens_per_s"] = statistics.median(row["tokens_per_s"])
        print(
            f"  {d:7s} {row['bytes'] / 2**20:8.1f} MiB ({row['size_over_f16']:.3f} of f16)  "
            f"decode {row['median_tokens_per_s']:6.1f} tok/s  logits cosine to f16 {row['cosine_to_f16']:.4f}"
            f"{'' if row['same_top1_as_f16'] else '  (top-1 differs)'}"
        )
    for model in models.values():
        model.close()
    print("wrote", write_result("gguf_quants", {"model": args.model, "threads": threads, "rows": rows}))


if __name__ == "__main__":
    main()
