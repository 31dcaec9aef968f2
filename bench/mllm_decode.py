"""Decode speed of our LLMGA generation path against plain transformers ``generate`` (same inputs).

    python bench/mllm_decode.py                 # Qwen2-0.5B layout + CLIP-L/336 tower, random weights
    python bench/mllm_decode.py --device cuda --dtype float16 --new-tokens 128
    python bench/mllm_decode.py --static        # also time the static-cache option

The model is a Qwen2-0.5B-layout LLMGA folder with random weights (hidden 896, 24 layers, 14 heads,
2 kv heads, intermediate 4864, vocab 151936, tied embeddings) plus a random CLIP ViT-L/14-336 tower and
mlp2x_gelu projector, written once to a temp dir (``--workdir``, not in git). The tokenizer is the
Qwen2.5 one ComfyUI ships. Timing runs in one subprocess that alternates our ``generate_reply`` and
``language_model.generate`` on the same ``inputs_embeds`` (ratio = ours / plain, tokens per second);
peak RSS (ru_maxrss) is measured in separate fresh subprocesses: our full load + one image turn, and a
plain ``Qwen2ForCausalLM`` load + ``generate``. Prints ratio lines and writes bench/results/mllm_decode.json.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from bench.gpu_models import qwen_tokenizer_dir  # noqa: E402
from tests.harness.host import comfyui_dir  # noqa: E402

FOLDER_NAME = "llmga-Qwen2-0.5B-full-finetune"
QWEN2_05B = {
    "architectures": ["LlavaQwen2ForCausalLM"],
    "model_type": "llava_Qwen2",
    "hidden_size": 896,
    "intermediate_size": 4864,
    "num_hidden_layers": 24,
    "num_attention_heads": 14,
    "num_key_value_heads": 2,
    "vocab_size": 151936,
    "tie_word_embeddings": True,
    "max_position_embeddings": 32768,
    "max_window_layers": 24,
    "rope_theta": 1000000.0,
    "rms_norm_eps": 1e-6,
    "hidden_act": "silu",
    "sliding_window": 32768,
    "use_sliding_window": False,
    "bos_token_id": 151643,
    "eos_token_id": 151645,
    "torch_dtype": "bfloat16",
    "mm_vision_tower": "openai/clip-vit-large-patch14-336",
    "mm_hidden_size": 1024,
    "mm_projector_type": "mlp2x_gelu",
    "mm_vision_select_layer": -2,
    "mm_vision_select_feature": "patch",
    "mm_patch_merge_type": "flat",
    "mm_use_im_start_end": False,
    "mm_use_im_patch_token": False,
    "image_aspect_ratio": "pad",
    "tokenizer_padding_side": "right",
    "tokenizer_model_max_length": 2048,
    "use_mm_proj": True,
}
# The run's prompt: the qwen_2 template's similar-image turn (576 image rows + ~40 text tokens).
PROMPT = (
    "<|im_start|>system\nA conversation between a user and an LLM-based AI assistant. The assistant gives "
    "helpful and honest answers.<|im_end|><|im_start|>user\n<image>\nGenerate a similar image.<|im_end|>"
    "<|im_start|>assistant\n"
)


def _text_fields() -> dict:
    """The base LLM's config fields of the Qwen2-0.5B LLMGA layout (LLaVA's mm_* and bookkeeping dropped)."""
    skip = {
        "architectures",
        "model_type",
        "torch_dtype",
        "image_aspect_ratio",
        "tokenizer_padding_side",
        "tokenizer_model_max_length",
        "use_mm_proj",
    }
    return {k: v for k, v in QWEN2_05B.items() if not k.startswith("mm_") and k not in skip}


def build_folder(workdir: Path) -> Path:
    """Write the random-weight folder once (bf16 safetensors, 2 shards + index)."""
    import torch
    from safetensors.torch import save_file
    from transformers import CLIPVisionConfig, CLIPVisionModel, Qwen2Config, Qwen2ForCausalLM

    folder = workdir / FOLDER_NAME
    if (folder / "model.safetensors.index.json").is_file():
        return folder
    tmp = workdir / f".{FOLDER_NAME}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    for name in ("vocab.json", "merges.txt", "tokenizer_config.json"):
        shutil.copy2(qwen_tokenizer_dir(comfyui_dir()) / name, tmp / name)
    torch.manual_seed(0)
    text_fields = _text_fields()
    lm = Qwen2ForCausalLM(Qwen2Config(**text_fields)).to(torch.bfloat16)
    state = {k: v for k, v in lm.state_dict().items() if k != "lm_head.weight"}
    del lm
    tower = CLIPVisionModel(
        CLIPVisionConfig(
            hidden_size=1024,
            intermediate_size=4096,
            num_hidden_layers=24,
            num_attention_heads=16,
            image_size=336,
            patch_size=14,
            projection_dim=768,
            hidden_act="quick_gelu",
            layer_norm_eps=1e-5,
        )
    ).to(torch.bfloat16)
    vision = {
        f"model.vision_tower.vision_tower.{k if k.startswith('vision_model.') else 'vision_model.' + k}": v
        for k, v in tower.state_dict().items()
        if not k.endswith("position_ids")
    }
    proj = torch.nn.Sequential(torch.nn.Linear(1024, 896), torch.nn.GELU(), torch.nn.Linear(896, 896))
    state.update(vision)
    state.update({f"model.mm_projector.{k}": v.to(torch.bfloat16) for k, v in proj.state_dict().items()})
    keys = sorted(state)
    weight_map = {}
    for i, part in enumerate((keys[: len(keys) // 2], keys[len(keys) // 2 :]), start=1):
        name = f"model-{i:05d}-of-00002.safetensors"
        save_file({k: state[k].contiguous() for k in part}, str(tmp / name), metadata={"format": "pt"})
        weight_map.update(dict.fromkeys(part, name))
    (tmp / "model.safetensors.index.json").write_text(json.dumps({"metadata": {}, "weight_map": weight_map}))
    (tmp / "config.json").write_text(json.dumps(QWEN2_05B, indent=2))
    (tmp / "generation_config.json").write_text(
        json.dumps(
            {
                "bos_token_id": 151643,
                "pad_token_id": 151643,
                "eos_token_id": [151645, 151643],
                "do_sample": True,
                "repetition_penalty": 1.1,
                "temperature": 0.7,
                "top_p": 0.8,
                "top_k": 20,
            }
        )
    )
    tmp.rename(folder)
    return folder


def _pixels():
    import torch

    g = torch.Generator().manual_seed(0)
    return torch.randn(1, 3, 336, 336, generator=g)


def _sync(device: str) -> None:
    import torch

    if device.startswith("cuda"):
        torch.cuda.synchronize()


def child_timing(args: argparse.Namespace) -> dict:
    """Alternate our path and plain generate on the same model and inputs_embeds."""
    import torch

    from llmga_core.mllm.generate import SamplingSettings, build_generation_config, generate_reply, run_turn
    from llmga_core.mllm.model import load_mllm

    torch.set_num_threads(args.threads) if args.threads else None
    dtype = getattr(torch, args.dtype)
    t0 = time.perf_counter()
    mllm = load_mllm(args.folder, dtype=dtype, device=args.device)
    load_s = time.perf_counter() - t0
    # no eos: every run decodes exactly new_tokens tokens (random weights)
    defaults = {**mllm.folder.generation_config, "eos_token_id": None}
    greedy = SamplingSettings(temperature=0, max_new_tokens=args.new_tokens, repetition_penalty=1.0)
    cfg = build_generation_config(defaults, greedy, None)
    cfg.eos_token_id = None
    turn = run_turn(mllm, PROMPT, _pixels().to(args.device), SamplingSettings(temperature=0, max_new_tokens=2))
    from llmga_core.mllm.generate import prepare_turn

    embeds = prepare_turn(mllm, PROMPT, _pixels().to(args.device))
    attention = torch.ones(embeds.shape[:2], dtype=torch.long, device=embeds.device)
    lm = mllm.model.language_model

    def ours(overrides=None) -> tuple[float, float, int]:
        _sync(args.device)
        r = generate_reply(
            mllm.model,
            mllm.tokenizer,
            embeds,
            greedy,
            generation_defaults=defaults,
            on_token=lambda t, s: None,
            overrides=overrides,
        )
        _sync(args.device)
        return r.total_s, r.first_token_s or 0.0, len(r.token_ids)

    def plain() -> tuple[float, float, int]:
        _sync(args.device)
        start = time.perf_counter()
        with torch.inference_mode():
            out = lm.generate(inputs_embeds=embeds, attention_mask=attention, generation_config=cfg)
        _sync(args.device)
        return time.perf_counter() - start, float("nan"), out.shape[1]

    def prefill() -> float:
        _sync(args.device)
        start = time.perf_counter()
        with torch.inference_mode():
            lm(inputs_embeds=embeds, attention_mask=attention, logits_to_keep=1)
        _sync(args.device)
        return time.perf_counter() - start

    ours(), plain()  # warm-up (allocator, kernels)
    rows = []
    for _ in range(args.repeats):
        p = prefill()
        o_total, o_first, o_n = ours()
        b_total, _, b_n = plain()
        # decode tokens/s excludes the shared prefill (measured separately on the same inputs)
        rows.append(
            {
                "prefill_s": p,
                "ours_total_s": o_total,
                "ours_first_token_s": o_first,
                "ours_tokens": o_n,
                "plain_total_s": b_total,
                "plain_tokens": b_n,
                "ours_tok_s": (o_n - 1) / max(o_total - o_first, 1e-9),
                "plain_tok_s": (b_n - 1) / max(b_total - p, 1e-9),
            }
        )
    result = {
        "load_s": load_s,
        "prompt_positions": int(embeds.shape[1]),
        "image_turn_first_token_s": turn.first_token_s,
        "image_turn_prepare_s": turn.extra.get("prepare_s"),
        "runs": rows,
    }
    ours_total = sorted(r["ours_total_s"] for r in rows)[len(rows) // 2]
    plain_total = sorted(r["plain_total_s"] for r in rows)[len(rows) // 2]
    result["ratio_end_to_end"] = plain_total / ours_total  # >1 means ours is faster
    result["ours_decode_tok_s"] = sorted(r["ours_tok_s"] for r in rows)[len(rows) // 2]
    if args.static:
        ours({"cache_implementation": "static"})  # warm-up / cache allocation
        static = [ours({"cache_implementation": "static"}) for _ in range(args.repeats)]
        tot, first, n = sorted(static)[len(static) // 2]
        result["static_cache"] = {
            "total_s": tot,
            "first_token_s": first,
            "tokens": n,
            "decode_tok_s": (n - 1) / max(tot - first, 1e-9),
            "ratio_vs_dynamic": ours_total / tot,
        }
    return result


def child_rss(args: argparse.Namespace) -> dict:
    """Peak RSS of one fresh process: ``ours`` = full load + an image turn; ``plain`` = LLM only."""
    import torch

    dtype = getattr(torch, args.dtype)
    if args.mode == "rss-ours":
        from llmga_core.mllm.generate import SamplingSettings, run_turn
        from llmga_core.mllm.model import load_mllm

        mllm = load_mllm(args.folder, dtype=dtype, device=args.device)
        run_turn(mllm, PROMPT, _pixels().to(args.device), SamplingSettings(temperature=0, max_new_tokens=8))
    else:
        from safetensors.torch import load_file
        from transformers import Qwen2Config, Qwen2ForCausalLM

        folder = Path(args.folder)
        state = {}
        for f in sorted(folder.glob("*.safetensors")):
            state.update(
                {
                    k: v
                    for k, v in load_file(str(f)).items()
                    if k.startswith("model.") and ".mm_projector." not in k and ".vision_tower." not in k
                }
            )
        fields = _text_fields()
        lm = Qwen2ForCausalLM.from_pretrained(None, config=Qwen2Config(**fields), state_dict=state, dtype=dtype)
        del state
        lm.to(args.device)
        embeds = torch.randn(1, 614, 896, dtype=dtype, device=args.device) * 0.02
        with torch.inference_mode():
            lm.generate(inputs_embeds=embeds, max_new_tokens=8, do_sample=False)
    return {"ru_maxrss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def run_child(mode: str, args: argparse.Namespace, folder: Path) -> dict:
    cmd = [
        sys.executable,
        __file__,
        "--mode",
        mode,
        "--folder",
        str(folder),
        "--dtype",
        args.dtype,
        "--device",
        args.device,
        "--new-tokens",
        str(args.new_tokens),
        "--repeats",
        str(args.repeats),
        "--threads",
        str(args.threads),
    ] + (["--static"] if args.static else [])
    out = subprocess.run(cmd, capture_output=True, text=True, check=False)
    lines = [ln for ln in out.stdout.splitlines() if ln.startswith("{")]
    if out.returncode != 0 or not lines:
        raise RuntimeError(f"{mode} failed:\n{out.stderr[-3000:]}")
    return json.loads(lines[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--mode", default="main", choices=["main", "timing", "rss-ours", "rss-plain"])
    ap.add_argument("--workdir", default=str(Path(tempfile.gettempdir()) / "llmga-bench-mllm"))
    ap.add_argument("--folder", default=None)
    ap.add_argument("--dtype", default="float32")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--new-tokens", type=int, default=32)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--static", action="store_true", help="also time cache_implementation='static'")
    args = ap.parse_args()
    if args.mode == "timing":
        print(json.dumps(child_timing(args)))
        return
    if args.mode.startswith("rss"):
        print(json.dumps(child_rss(args)))
        return
    folder = build_folder(Path(args.workdir))
    import torch
    import transformers

    timing = run_child("timing", args, folder)
    rss_ours = run_child("rss-ours", args, folder)
    rss_plain = run_child("rss-plain", args, folder)
    result = {
        "model": "Qwen2-0.5B layout + CLIP-L/336, random weights",
        "device": args.device,
        "dtype": args.dtype,
        "new_tokens": args.new_tokens,
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "threads": torch.get_num_threads() if not args.threads else args.threads,
        "timing": timing,
        "rss_ours_mib": rss_ours["ru_maxrss_mib"],
        "rss_plain_llm_mib": rss_plain["ru_maxrss_mib"],
    }
    print(
        f"ratio ours/plain generate (end-to-end, same inputs_embeds): {timing['ratio_end_to_end']:.3f}  (goal >= 0.95)"
    )
    print(f"ours decode tokens/s: {timing['ours_decode_tok_s']:.2f}  prompt positions: {timing['prompt_positions']}")
    print(f"time to first token, image turn (tower + splice + prefill): {timing['image_turn_first_token_s']:.2f} s")
    print(
        f"peak RSS ours (LLM + tower + turn): {rss_ours['ru_maxrss_mib']:.0f} MiB; "
        f"plain LLM generate: {rss_plain['ru_maxrss_mib']:.0f} MiB"
    )
    if "static_cache" in timing:
        s = timing["static_cache"]
        print(f"static cache: ratio vs dynamic {s['ratio_vs_dynamic']:.3f}, decode {s['decode_tok_s']:.2f} tok/s")
    out = REPO / "bench" / "results"
    out.mkdir(parents=True, exist_ok=True)
    (out / "mllm_decode.json").write_text(json.dumps(result, indent=2))
    print(f"wrote {out / 'mllm_decode.json'}")


if __name__ == "__main__":
    main()
