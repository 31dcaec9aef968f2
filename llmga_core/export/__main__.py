"""``python -m llmga_core.export SRC OUT``: an LLMGA MLLM folder as a transformers LLaVA folder (for vLLM)."""

from __future__ import annotations

import argparse

import torch

from .hf_llava import export_hf_llava


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m llmga_core.export", description=__doc__)
    parser.add_argument("src", help="an LLMGA MLLM folder as published (e.g. models/llmga/mllm/llmga-Qwen2-7B-...)")
    parser.add_argument("out", help="the folder to write (LlavaForConditionalGeneration layout)")
    parser.add_argument("--dtype", choices=["float16", "bfloat16", "float32"], default="float16")
    opts = parser.parse_args(argv)
    print(export_hf_llava(opts.src, opts.out, dtype=getattr(torch, opts.dtype)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
