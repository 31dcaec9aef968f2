"""``python -m llmga_core.export {hf-llava,gguf} SRC OUT``: an LLMGA MLLM folder for a serving engine.

- ``hf-llava``: a transformers LLaVA folder (vLLM, SGLang, transformers serve);
- ``gguf``: a text GGUF + mmproj GGUF pair (llama.cpp's server, xllamacpp, llama-cpp-python).

The old form ``python -m llmga_core.export SRC OUT`` still means ``hf-llava``.
"""

from __future__ import annotations

import argparse
import sys

import torch

from .gguf import GGUF_DTYPES, export_gguf
from .hf_llava import export_hf_llava

_COMMANDS = ("hf-llava", "gguf")


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if args and args[0] not in _COMMANDS and not args[0].startswith("-"):
        args = ["hf-llava", *args]  # the pre-GGUF command line
    parser = argparse.ArgumentParser(
        prog="python -m llmga_core.export", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="command", required=True)
    hf = sub.add_parser("hf-llava", help="transformers LlavaForConditionalGeneration folder (vLLM)")
    hf.add_argument("src", help="an LLMGA MLLM folder as published (e.g. models/llmga/mllm/llmga-Qwen2-7B-...)")
    hf.add_argument("out", help="the folder to write")
    hf.add_argument("--dtype", choices=["float16", "bfloat16", "float32"], default="float16")
    hf.add_argument(
        "--target",
        choices=["vllm", "transformers"],
        default="vllm",
        help="the runtime (they differ in whether Gemma's image rows get the sqrt(hidden) factor)",
    )
    hf.add_argument("--clip-vision", default=None, help="CLIP folder, for a checkpoint stored without its tower")
    gg = sub.add_parser("gguf", help="text GGUF + mmproj GGUF (llama.cpp)")
    gg.add_argument("src", help="an LLMGA MLLM folder as published")
    gg.add_argument("out", help="the folder to write the two .gguf files into")
    gg.add_argument(
        "--dtype",
        choices=list(GGUF_DTYPES),
        default="f16",
        help="weights of the text model (f16: exact; q8_0: near-exact, half of f16; q6_k, q5_k_m, q4_k_m: "
        "llama-quantize's K-quant mixes, quantised by the xllamacpp wheel's llama.cpp; q4_0: smallest)",
    )
    gg.add_argument("--clip-vision", default=None, help="CLIP folder, for a checkpoint stored without its tower")
    gg.add_argument("--template", default=None, help="LLMGA template name (default: chosen as the loader does)")
    opts = parser.parse_args(args)
    if opts.command == "hf-llava":
        print(
            export_hf_llava(
                opts.src, opts.out, dtype=getattr(torch, opts.dtype), target=opts.target, clip_vision=opts.clip_vision
            )
        )
    else:
        result = export_gguf(opts.src, opts.out, opts.dtype, clip_vision=opts.clip_vision, template=opts.template)
        print(f"model:    {result.model}\nmmproj:   {result.mmproj}\ntemplate: {result.template}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
