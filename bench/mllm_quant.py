"""Memory and decode speed of the MLLM loader's quantization choices, side by side in one run.

    python bench/mllm_quant.py                      # Qwen2-0.5B layout, every choice, CPU
    python bench/mllm_quant.py --layouts qwen2-0.5b,qwen2-1.5b --skip-fp32-above 1.0
    python bench/mllm_quant.py --paper-only         # the per-model table from parameter counts only
    python bench/mllm_quant.py --device cuda --dtype float16

For each layout (Qwen2-0.5B / 1.5B, random bf16 weights in the released LLMGA layout without the CLIP
tower, written once under ``--workdir``), every choice runs in its own fresh subprocess: ``load_mllm``
(text only) with that quantization, then a greedy text turn of ``--new-tokens`` tokens (no end token).
Reported per choice: the LLM's weight bytes as told to ComfyUI (``weight_bytes``: every storage once,
quantisation state included), the process's peak RSS (load + turn; on CUDA also peak allocated), the
decode tokens/s, and the ratios to ``none`` at the half-precision dtype of the run (bf16 on CPU, fp16 on
CUDA). The figures "on paper" are the same byte counts from each released model's layout, built on the
meta device from its config (no weights), checked against the built layouts' measured bytes. The CLIP
ViT-L/14-336 tower (303.5 M parameters) and the projector stay unquantised and come on top of every
choice. Writes bench/results/mllm_quant.json.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

TOWER_PARAMS = 303_507_456  # CLIP ViT-L/14-336 vision model (bench/gpu_models.py counts the same)
GIB = 2**30

_QWEN_COMMON = {
    "max_position_embeddings": 32768,
    "rope_theta": 1000000.0,
    "rms_norm_eps": 1e-6,
    "hidden_act": "silu",
    "sliding_window": 32768,
    "use_sliding_window": False,
    "bos_token_id": 151643,
    "eos_token_id": 151645,
}
_LLAMA2 = {"vocab_size": 32000, "hidden_act": "silu", "rms_norm_eps": 1e-5, "tie_word_embeddings": False}
# Every released LLMGA MLLM's base LLM (the fields that shape the weights), model_type first.
RELEASED: dict[str, tuple[str, dict]] = {
    "llmga-Qwen2-0.5B": ("qwen2", {**_QWEN_COMMON, "hidden_size": 896, "intermediate_size": 4864,
                                   "num_hidden_layers": 24, "num_attention_heads": 14, "num_key_value_heads": 2,
                                   "vocab_size": 151936, "tie_word_embeddings": True, "max_window_layers": 24}),
    "llmga-Qwen2-1.5B": ("qwen2", {**_QWEN_COMMON, "hidden_size": 1536, "intermediate_size": 8960,
                                   "num_hidden_layers": 28, "num_attention_heads": 12, "num_key_value_heads": 2,
                                   "vocab_size": 151936, "tie_word_embeddings": True, "max_window_layers": 28}),
    "llmga-gemma-2b-it": ("gemma", {"hidden_size": 2048, "intermediate_size": 16384, "num_hidden_layers": 18,
                                    "num_attention_heads": 8, "num_key_value_heads": 1, "head_dim": 256,
                                    "vocab_size": 256000, "tie_word_embeddings": True}),
    "llmga-Phi-3-mini-128k": ("phi3", {"hidden_size": 3072, "intermediate_size": 8192, "num_hidden_layers": 32,
                                       "num_attention_heads": 32, "num_key_value_heads": 32, "vocab_size": 32064,
                                       "tie_word_embeddings": False}),
    "llmga-vicuna-7b-v1.5 / llama-2-7b-chat": ("llama", {**_LLAMA2, "hidden_size": 4096, "intermediate_size": 11008,
                                                        "num_hidden_layers": 32, "num_attention_heads": 32,
                                                        "num_key_value_heads": 32}),
    "llmga-mistral_instruct": ("mistral", {"hidden_size": 4096, "intermediate_size": 14336, "num_hidden_layers": 32,
                                           "num_attention_heads": 32, "num_key_value_heads": 8, "vocab_size": 32000,
                                           "tie_word_embeddings": False}),
    "llmga-Qwen2-7B": ("qwen2", {**_QWEN_COMMON, "hidden_size": 3584, "intermediate_size": 18944,
                                 "num_hidden_layers": 28, "num_attention_heads": 28, "num_key_value_heads": 4,
                                 "vocab_size": 152064, "tie_word_embeddings": False, "max_window_layers": 28}),
    "llmga-llama3-8b-it": ("llama", {"hidden_size": 4096, "intermediate_size": 14336, "num_hidden_layers": 32,
                                     "num_attention_heads": 32, "num_key_value_heads": 8, "vocab_size": 128256,
                                     "tie_word_embeddings": False, "rope_theta": 500000.0}),
    "llmga-llama-2-13b-chat (old)": ("llama", {**_LLAMA2, "hidden_size": 5120, "intermediate_size": 13824,
                                               "num_hidden_layers": 40, "num_attention_heads": 40,
                                               "num_key_value_heads": 40}),
}
LAYOUTS = {"qwen2-0.5b": "llmga-Qwen2-0.5B", "qwen2-1.5b": "llmga-Qwen2-1.5B"}
CHOICES = [("none", "float32"), ("none", "half"), ("fp8 (weights)", "half"), ("8-bit", "half"), ("4-bit", "half")]
GOALS = {"4-bit": 0.35, "8-bit": 0.55, "fp8 (weights)": 0.55}
PROMPT = "<|im_start|>user\nPlease design a poster for a biology class about the human heart.<|im_end|>" \
         "<|im_start|>assistant\n"


def meta_shapes(model_type: str, fields: dict) -> dict[str, tuple[int, ...]]:
    """The LLM's state-dict shapes from its config, built on the meta device (no memory)."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    cfg = AutoConfig.for_model(model_type, **fields)
    with torch.device("meta"):
        lm = AutoModelForCausalLM.from_config(cfg)
    shapes = {k: tuple(v.shape) for k, v in lm.state_dict().items()}
    if cfg.tie_word_embeddings:
        shapes.pop("lm_head.weight", None)
    return shapes


def build_folder(workdir: Path, name: str) -> Path:
    """A random-weight LLMGA folder of ``name``'s layout (bf16, LLM + projector, no tower weights)."""
    import shutil

    import torch
    from safetensors.torch import save_file

    from bench.gpu_models import qwen_tokenizer_dir
    from tests.harness.host import comfyui_dir

    model_type, fields = RELEASED[name]
    folder = workdir / f"{name}-full-finetune"
    if (folder / "model.safetensors").is_file():
        return folder
    tmp = workdir / f".{folder.name}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    for f in ("vocab.json", "merges.txt", "tokenizer_config.json"):
        shutil.copy2(qwen_tokenizer_dir(comfyui_dir()) / f, tmp / f)
    g = torch.Generator().manual_seed(0)
    state = {}
    for key, shape in meta_shapes(model_type, fields).items():
        if len(shape) == 1:
            state[key] = torch.ones(shape, dtype=torch.bfloat16) if "norm" in key else torch.zeros(shape).bfloat16()
        else:
            state[key] = (torch.randn(shape, generator=g) * 0.02).to(torch.bfloat16)
    hidden = fields["hidden_size"]
    for i, (a, b) in enumerate(((1024, hidden), (hidden, hidden))):
        state[f"model.mm_projector.{2 * i}.weight"] = (torch.randn(b, a, generator=g) * 0.02).bfloat16()
        state[f"model.mm_projector.{2 * i}.bias"] = torch.zeros(b).bfloat16()
    save_file(state, str(tmp / "model.safetensors"), metadata={"format": "pt"})
    del state
    config = {
        **fields,
        "architectures": ["LlavaQwen2ForCausalLM"],
        "model_type": "llava_Qwen2",
        "torch_dtype": "bfloat16",
        "mm_vision_tower": "openai/clip-vit-large-patch14-336",
        "mm_hidden_size": 1024,
        "mm_projector_type": "mlp2x_gelu",
        "mm_vision_select_layer": -2,
        "tokenizer_model_max_length": 2048,
    }
    (tmp / "config.json").write_text(json.dumps(config, indent=2))
    (tmp / "generation_config.json").write_text(json.dumps({"eos_token_id": [151645, 151643]}))
    tmp.rename(folder)
    return folder


def child(args: argparse.Namespace) -> dict:
    """One choice in a fresh process: load, one greedy turn, sizes and speed."""
    import torch

    from llmga_core.mllm.generate import SamplingSettings, run_turn
    from llmga_core.mllm.model import load_mllm
    from llmga_core.mllm.quantize import weight_bytes

    if args.threads:
        torch.set_num_threads(args.threads)
    dtype = getattr(torch, args.dtype)
    start = time.perf_counter()
    mllm = load_mllm(args.folder, dtype=dtype, device=args.device, with_vision=False, quantization=args.choice)
    load_s = time.perf_counter() - start
    mllm.folder.generation_config.clear()  # type: ignore[attr-defined]  # no end token: exact token counts
    mllm.model.language_model.generation_config.eos_token_id = None
    speeds, tokens = [], 0
    if args.new_tokens > 0:
        greedy = SamplingSettings(temperature=0, max_new_tokens=args.new_tokens, repetition_penalty=1.0)
        run_turn(mllm, PROMPT, None, SamplingSettings(temperature=0, max_new_tokens=2))  # warm-up
        for _ in range(args.repeats):
            r = run_turn(mllm, PROMPT, None, greedy)
            speeds.append(r.tokens_per_s)
            tokens = len(r.token_ids)
    out = {
        "llm_weight_bytes": weight_bytes(mllm.model.language_model),
        "projector_bytes": weight_bytes(mllm.model.mm_projector),
        "load_s": load_s,
        "decode_tok_s": sorted(speeds)[len(speeds) // 2] if speeds else float("nan"),
        "tokens": tokens,
        "peak_rss_gib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / GIB,
    }
    if args.device.startswith("cuda"):
        out["peak_cuda_gib"] = torch.cuda.max_memory_allocated() / GIB
    return out


def run_child(args: argparse.Namespace, folder: Path, choice: str, dtype: str) -> dict:
    cmd = [sys.executable, __file__, "--child", "--folder", str(folder), "--choice", choice, "--dtype", dtype,
           "--device", args.device, "--new-tokens", str(args.new_tokens), "--repeats", str(args.repeats),
           "--threads", str(args.threads)]
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    lines = [ln for ln in done.stdout.splitlines() if ln.startswith("{")]
    if done.returncode != 0 or not lines:
        raise RuntimeError(f"{choice}/{dtype} failed:\n{done.stderr[-3000:]}")
    return json.loads(lines[-1])


def paper_table() -> list[dict]:
    """LLM + tower + projector GB per choice for every released model (fp16 tower and projector)."""
    from llmga_core.mllm.quantize import estimate_bytes

    rows = []
    for name, (model_type, fields) in RELEASED.items():
        est = estimate_bytes(meta_shapes(model_type, fields))
        hidden = fields["hidden_size"]
        extra = 2 * (TOWER_PARAMS + 1024 * hidden + hidden * hidden + 2 * hidden)
        row = {"model": name, "llm_params_b": (est.linear_params + est.table_params + est.other_params) / 1e9}
        for choice in ("none", "fp8 (weights)", "8-bit", "4-bit"):
            row[f"llm_gib_{choice}"] = est.llm_bytes(choice) / GIB
            row[f"total_gib_{choice}"] = (est.llm_bytes(choice) + extra) / GIB
        row["fp32_total_gib"] = (est.llm_bytes("none", 4) + 2 * extra) / GIB
        rows.append(row)
    return rows


GPU_HEADROOM_GIB = 1.5  # CUDA context + KV cache and activations of a ~1.2k-position LLMGA turn
CPU_RESERVED_GIB = 4.0  # the OS, ComfyUI and Python before any model


def fit(row: dict, gib: float, cpu: bool) -> str:
    """The most precise choice whose weights fit ``gib`` GB (GPU: with headroom; CPU: as ``auto`` picks
    fp32 only when it takes at most half the free RAM)."""
    if cpu:
        free = gib - CPU_RESERVED_GIB
        if row["fp32_total_gib"] <= 0.5 * free:
            return "fp32"
        budget, half = free - 1.0, "bf16"
    else:
        budget, half = gib - GPU_HEADROOM_GIB, "fp16"
    for choice, label in (("none", half), ("fp8 (weights)", "fp8 / 8-bit"), ("4-bit", "4-bit")):
        if row[f"total_gib_{choice}"] <= budget:
            return label
    return "—"


def fit_markdown(rows: list[dict]) -> str:
    """The README's "which setting fits my machine" table."""
    gpus = (6, 8, 12, 16, 24)
    head = "| model | LLM params | fp16 GB | fp8 / 8-bit GB | 4-bit GB | " + " | ".join(f"{g} GB GPU" for g in gpus)
    head += " | CPU, 16 GB RAM | CPU, 32 GB RAM |"
    lines = [head, "|" + "---|" * (5 + len(gpus) + 2)]
    for r in rows:
        cells = [r["model"], f"{r['llm_params_b']:.2f} B", f"{r['total_gib_none']:.1f}",
                 f"{r['total_gib_fp8 (weights)']:.1f}", f"{r['total_gib_4-bit']:.1f}"]
        cells += [fit(r, g, cpu=False) for g in gpus] + [fit(r, 16, cpu=True), fit(r, 32, cpu=True)]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--child", action="store_true")
    ap.add_argument("--folder")
    ap.add_argument("--choice", default="none")
    ap.add_argument("--layouts", default="qwen2-0.5b")
    ap.add_argument("--workdir", default=str(Path(tempfile.gettempdir()) / "llmga-bench-quant"))
    ap.add_argument("--dtype", default=None, help="half-precision dtype of the run (bfloat16 on CPU, float16 CUDA)")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--new-tokens", type=int, default=16, help="0: sizes and peak RSS only (no turn)")
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--skip-fp32-above", type=float, default=1.0, help="skip fp32 'none' above this many B params")
    ap.add_argument("--paper-only", action="store_true")
    args = ap.parse_args()
    if args.child:
        print(json.dumps(child(args)))
        return
    half = args.dtype or ("float16" if args.device.startswith("cuda") else "bfloat16")
    import torch

    result: dict = {"device": args.device, "half": half, "torch": torch.__version__, "layouts": {}}
    result["paper"] = paper_table()
    print(f"{'model':40s} {'LLM B':>6s}  GB (LLM + tower + projector): fp16 | fp8 | 8-bit | 4-bit   (fp32)")
    for row in result["paper"]:
        print(f"{row['model']:40s} {row['llm_params_b']:6.2f}  " + " | ".join(
            f"{row[f'total_gib_{c}']:5.2f}" for c in ("none", "fp8 (weights)", "8-bit", "4-bit"))
            + f"   ({row['fp32_total_gib']:.2f})")
    print("\n" + fit_markdown(result["paper"]))
    if args.paper_only:
        return
    workdir = Path(args.workdir)
    for layout in args.layouts.split(","):
        name = LAYOUTS[layout]
        folder = build_folder(workdir, name)
        paper = next(r for r in result["paper"] if r["model"] == name)
        rows = {}
        for choice, dtype in CHOICES:
            dtype = half if dtype == "half" else dtype
            if dtype == "float32" and paper["llm_params_b"] > args.skip_fp32_above:
                continue
            rows[f"{choice} {dtype}"] = run_child(args, folder, choice, dtype)
        base = rows[f"none {half}"]
        print(f"\n{name} layout, {args.device}, {args.new_tokens} tokens; ratios against none {half}:")
        print(f"{'choice':28s} {'LLM GB':>7s} {'ratio':>6s} {'goal':>6s} {'peak RSS GB':>12s} {'tok/s':>7s} "
              f"{'speed ratio':>11s} {'paper GB':>9s}")
        for key, r in rows.items():
            choice = key.rsplit(" ", 1)[0]
            r["memory_ratio"] = r["llm_weight_bytes"] / base["llm_weight_bytes"]
            r["speed_ratio"] = r["decode_tok_s"] / base["decode_tok_s"]
            r["paper_llm_gib"] = paper[f"llm_gib_{choice}"] * (2 if key.endswith("float32") else 1)
            goal = f"{GOALS[choice]:.2f}" if choice in GOALS else ""
            print(f"{key:28s} {r['llm_weight_bytes'] / GIB:7.3f} {r['memory_ratio']:6.3f} {goal:>6s} "
                  f"{r['peak_rss_gib']:12.2f} {r['decode_tok_s']:7.2f} {r['speed_ratio']:11.3f} "
                  f"{r['paper_llm_gib']:9.3f}")
        result["layouts"][name] = rows
    out = REPO / "bench" / "results"
    out.mkdir(parents=True, exist_ok=True)
    (out / "mllm_quant.json").write_text(json.dumps(result, indent=2))
    print(f"wrote {out / 'mllm_quant.json'}")


if __name__ == "__main__":
    main()
