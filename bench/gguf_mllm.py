"""LLMGA MLLM Loader (GGUF)'s path vs llama.cpp's server on the same file vs the transformers path.

    python bench/gguf_mllm.py                                  # the tiny LLMGA-Qwen2 test folder
    python bench/gguf_mllm.py --model qwen2-0.5b --new-tokens 32   # Qwen2-0.5B layout (random weights)

The folder (the tiny test fixture, or the Qwen2-0.5B layout + CLIP-L/336 tower that bench/mllm_decode.py
builds) is exported once per dtype under ``--workdir`` (``export_gguf``; reused by later runs). Side by
side, interleaved, greedy, repetition penalty 1, the same threads everywhere (f32 KV cache, flash
attention off on both llama.cpp sides), median of ``--repeats``:

- decode tokens/s of ``run_gguf_turn`` at ``--dtype`` (in process, ctypes) vs the xllamacpp server's own
  ``timings`` on the same GGUF (goal >= 0.95) vs ``run_turn`` (transformers, fp32; goal >= 2x at q8_0);
- in a fresh subprocess per side (so peaks do not mix; GGUF and transformers sides alternating): a load and
  ``--repeats`` image turns of 8 tokens, giving the peak RSS (VmHWM) of the GGUF path at each of
  ``--rss-dtypes`` and of the transformers path at fp32 and bf16, and the median image-turn time to first
  token (torch tower + prefill on both sides; GGUF at ``--dtype`` vs transformers fp32).

The decode phase holds the transformers LLM text-only (fp32) and the GGUF; the towers load only in the
children, so no process holds two copies of a model (the Qwen2-0.5B layout stays under ~4 GB each).

Writes bench/results/gguf_mllm.json.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import torch  # noqa: E402

from bench.common import write_result  # noqa: E402
from bench.remote_mllm import bench_folder, bench_turns  # noqa: E402
from llmga_core.export.gguf import GGUF_DTYPES, GGUFExport, export_gguf  # noqa: E402
from llmga_core.llamacpp import LlamaCppModel, LlamaCppSettings, load_mmproj, run_gguf_turn  # noqa: E402
from llmga_core.mllm.generate import SamplingSettings, run_turn  # noqa: E402
from llmga_core.mllm.model import load_mllm  # noqa: E402
from tests.fixtures.llama_server import llama_server  # noqa: E402

TRANSFORMERS_DTYPES = ("float32", "bfloat16")


def exported(folder: Path, workdir: Path, dtype: str) -> GGUFExport:
    """The folder's GGUF pair at ``dtype``, written on the first run only (keyed by the folder's place too: the
    tiny test folder and the Qwen2-0.5B layout share a released name)."""
    out = workdir / f"gguf-{folder.parent.name}-{folder.name}-{dtype}"
    done = out / "export.json"
    if done.is_file():
        saved = json.loads(done.read_text())
        return GGUFExport(model=Path(saved["model"]), mmproj=Path(saved["mmproj"]), template=saved["template"])
    export = export_gguf(folder, out, dtype=dtype)
    done.write_text(json.dumps({"model": str(export.model), "mmproj": str(export.mmproj), "template": export.template}))
    return export


def _llama(path: Path, threads: int) -> LlamaCppModel:
    return LlamaCppModel(path, LlamaCppSettings(n_ctx=2048, n_threads=threads, kv_f32=True, flash_attn=False))


def _server_tps(url: str, prompt: str, n: int) -> float:
    body = {"prompt": prompt, "temperature": 0, "n_predict": n, "cache_prompt": False, "repeat_penalty": 1.0}
    req = urllib.request.Request(url + "/completion", json.dumps(body).encode(), {"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=600) as resp:
        return float(json.loads(resp.read())["timings"]["predicted_per_second"])


def _peak_rss_mib() -> float:
    """This process's peak RSS since exec (VmHWM; ``ru_maxrss`` would carry the parent's peak over exec)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # not Linux


def child_rss(args: argparse.Namespace) -> dict:
    """One fresh process: load one side, run ``--repeats`` image turns of 8 tokens; peak RSS and the median
    time to the first token (the image encode included on both sides)."""
    one = SamplingSettings(temperature=0.0, max_new_tokens=8, repetition_penalty=1.0)
    threads = torch.get_num_threads()
    folder = bench_folder(args.model, args.workdir)
    start = time.perf_counter()
    ttft: list[float] = []
    if args.side in TRANSFORMERS_DTYPES:
        mllm = load_mllm(folder, dtype=getattr(torch, args.side))
        template = exported(folder, args.workdir, "f16").template
        image_prompt, pixels, _png = bench_turns(mllm, template)["similar image"]
        for _ in range(args.repeats):
            ttft.append(run_turn(mllm, image_prompt, pixels, one).first_token_s)
    else:
        export = exported(folder, args.workdir, args.side)
        model = _llama(export.model, threads)
        vision = load_mmproj(export.mmproj)
        image_prompt, pixels, _png = bench_turns(vision, export.template)["similar image"]
        for _ in range(args.repeats):
            begin = time.perf_counter()
            rows = vision.encode(pixels)
            ttft.append(time.perf_counter() - begin + run_gguf_turn(model, image_prompt, rows, one).first_token_s)
    return {
        "side": args.side,
        "peak_rss_mib": _peak_rss_mib(),
        "image_ttft_s": statistics.median(ttft),
        "image_ttft_samples": ttft,
        "load_and_turns_s": time.perf_counter() - start,
    }


def peak_rss(args: argparse.Namespace, side: str) -> dict:
    cmd = [sys.executable, __file__, "--child", side, "--model", args.model, "--workdir", str(args.workdir)]
    cmd += ["--repeats", str(args.repeats)]
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if done.returncode != 0 or not lines:
        raise RuntimeError(f"peak RSS of {side} failed:\n{done.stderr[-3000:]}")
    return json.loads(lines[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", choices=["tiny", "qwen2-0.5b"], default="tiny")
    parser.add_argument("--dtype", choices=list(GGUF_DTYPES), default="q8_0")
    parser.add_argument("--rss-dtypes", default="q4_0,q8_0,f16", help="GGUF dtypes whose peak RSS is measured")
    parser.add_argument("--new-tokens", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--workdir", type=Path, default=Path(tempfile.gettempdir()) / "llmga-bench-gguf")
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    args.workdir.mkdir(parents=True, exist_ok=True)
    if args.child:
        args.side = args.child
        print(json.dumps(child_rss(args)))
        return

    folder = bench_folder(args.model, args.workdir)
    rss_dtypes = [d for d in args.rss_dtypes.split(",") if d]
    for dtype in dict.fromkeys([args.dtype, "f16", *rss_dtypes]):  # exports first: the timing runs alone
        exported(folder, args.workdir, dtype)
    export = exported(folder, args.workdir, args.dtype)
    mllm = load_mllm(folder, dtype=torch.float32, with_vision=False)  # decode only: the towers load in the children
    threads = torch.get_num_threads()
    settings = SamplingSettings(temperature=0.0, max_new_tokens=args.new_tokens, repetition_penalty=1.0)
    model = _llama(export.model, threads)
    text_prompt = bench_turns(mllm, export.template)["text-to-image"][0]
    ours, server, hf = [], [], []
    with llama_server(export.model, alias=folder.name, threads=threads) as srv:
        run_gguf_turn(model, text_prompt, None, settings)  # warm-up
        _server_tps(srv.url, text_prompt, args.new_tokens)
        run_turn(mllm, text_prompt, None, settings)
        for i in range(args.repeats):
            order = ("ours", "server", "hf") if i % 2 == 0 else ("hf", "server", "ours")
            for side in order:
                if side == "ours":
                    ours.append(run_gguf_turn(model, text_prompt, None, settings).tokens_per_s)
                elif side == "server":
                    server.append(_server_tps(srv.url, text_prompt, args.new_tokens))
                else:
                    hf.append(run_turn(mllm, text_prompt, None, settings).tokens_per_s)
    model.close()
    del mllm, model
    row = {
        "gguf_tokens_per_s": statistics.median(ours),
        "server_tokens_per_s": statistics.median(server),
        "transformers_tokens_per_s": statistics.median(hf),
        "gguf_over_server": statistics.median(ours) / statistics.median(server),
        "gguf_over_transformers": statistics.median(ours) / statistics.median(hf),
        "samples": {"gguf": ours, "server": server, "transformers": hf},
    }
    print(
        f"{args.model} {args.dtype}, {threads} threads: decode in process {row['gguf_tokens_per_s']:.1f} tok/s vs "
        f"server {row['server_tokens_per_s']:.1f} (ratio {row['gguf_over_server']:.2f}) vs transformers fp32 "
        f"{row['transformers_tokens_per_s']:.1f} (ratio {row['gguf_over_transformers']:.2f})",
        flush=True,
    )
    # each side in its own process, GGUF and transformers alternating (load drifts hit both alike)
    sides = [args.dtype, "float32", *[d for d in rss_dtypes if d != args.dtype], "bfloat16"]
    peaks = {side: peak_rss(args, side) for side in dict.fromkeys(sides)}
    row["image_ttft_gguf_s"] = peaks[args.dtype]["image_ttft_s"]
    row["image_ttft_transformers_fp32_s"] = peaks["float32"]["image_ttft_s"]
    row["image_ttft_gguf_over_transformers"] = row["image_ttft_gguf_s"] / row["image_ttft_transformers_fp32_s"]
    print(
        f"image turn, time to first token (encode + prefill): GGUF {args.dtype} {row['image_ttft_gguf_s']:.2f} s vs "
        f"transformers fp32 {row['image_ttft_transformers_fp32_s']:.2f} s (ratio "
        f"{row['image_ttft_gguf_over_transformers']:.2f})"
    )
    base = peaks["float32"]["peak_rss_mib"]
    for peak in peaks.values():
        peak["over_transformers_fp32"] = peak["peak_rss_mib"] / base
        peak["over_transformers_bf16"] = peak["peak_rss_mib"] / peaks["bfloat16"]["peak_rss_mib"]
    print(
        "peak RSS, load + one image turn (MiB, ratio to transformers fp32 / bf16): "
        + "; ".join(
            f"{side} {p['peak_rss_mib']:.0f} ({p['over_transformers_fp32']:.2f} / {p['over_transformers_bf16']:.2f})"
            for side, p in peaks.items()
        )
    )
    payload = {**vars(args), "workdir": str(args.workdir), "threads": threads, "results": row, "peak_rss": peaks}
    path = write_result(f"gguf_mllm_{args.model}", payload)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
