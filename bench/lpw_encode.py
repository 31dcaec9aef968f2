"""LLMGALongPromptEncode vs core CLIPTextEncode on the same 300-token prompt (random full-size CLIPs).

    .venv/bin/python bench/lpw_encode.py [--repeats 15] [--sdxl]

Both sides produce a positive and an empty-negative conditioning (core: two CLIPTextEncode calls), on
the tiny test checkpoints' full-size SD1 CLIP-L (and with --sdxl the SDXL CLIP-L + CLIP-G), in one
process, interleaved. Writes bench/results/lpw_encode.json.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.common import interleaved, report, write_result  # noqa: E402
from tests.harness.host import comfyui_dir, tiny_sd_models, tiny_sdxl_models  # noqa: E402

WORDS = (
    "a majestic red fox with a thick winter coat stands on a moss covered boulder at the edge of an ancient "
    "birch forest at dawn soft golden light filters through mist"
).split()


def prompt_with_tokens(tokenizer, n: int) -> str:
    words: list[str] = []
    while len(tokenizer(" ".join(words))["input_ids"]) - 2 < n:
        words.append(WORDS[len(words) % len(WORDS)])
    return " ".join(words[:-1])


def load_host_and_pack():
    sys.path.insert(0, str(comfyui_dir()))
    from comfy.cli_args import args

    args.cpu = True
    import utils.extra_config  # noqa: F401

    spec = importlib.util.spec_from_file_location(
        "llmga_pack", REPO / "__init__.py", submodule_search_locations=[str(REPO)]
    )
    pack = importlib.util.module_from_spec(spec)
    sys.modules["llmga_pack"] = pack
    spec.loader.exec_module(pack)
    import nodes

    return nodes, importlib.import_module("llmga_pack.nodes.lpw").LLMGALongPromptEncode


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--sdxl", action="store_true", help="also measure the SDXL CLIP pair")
    opts = parser.parse_args()
    checkpoints = {"sd1": tiny_sd_models() / "checkpoints" / "tiny_sd15.safetensors"}
    if opts.sdxl:
        checkpoints["sdxl"] = tiny_sdxl_models() / "checkpoints" / "tiny_sdxl.safetensors"
    comfy_nodes, node = load_host_and_pack()
    import comfy.sd

    results = {}
    for name, path in checkpoints.items():
        _, clip, _, _ = comfy.sd.load_checkpoint_guess_config(str(path), output_vae=False, output_clipvision=False)
        text = prompt_with_tokens(clip.tokenizer.clip_l.tokenizer, 300)
        sizes = dict(width=1024, height=1024, crop_w=0, crop_h=0, target_width=1024, target_height=1024)

        def ours(clip=clip, text=text, sizes=sizes) -> None:
            node.execute(clip=clip, positive=text, negative="", layout="auto", max_chunks=4, **sizes)

        def core(clip=clip, text=text) -> None:
            encoder = comfy_nodes.CLIPTextEncode()
            encoder.encode(clip, text)
            encoder.encode(clip, "")

        stats = interleaved(ours, core, opts.repeats)
        report("lpw_encode", f"{name} 300-token prompt + empty negative", stats, "<= 1.10")
        results[name] = stats
    print(f"wrote {write_result('lpw_encode', {'cases': results})}")


if __name__ == "__main__":
    main()
