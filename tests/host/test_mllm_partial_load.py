"""ComfyUI's memory manager can load the MLLM partially: with a budget smaller than the model,
ModelPatcher keeps layers on the offload device and casts them per call, and the tokens do not change.

Runs on CPU with the real ComfyUI ModelPatcher (load device = offload device = CPU, so the offloaded
layers go through ComfyUI's per-call cast path, which is what a GPU with too little free memory uses)."""

from __future__ import annotations

import pytest

from tests.fixtures.tiny_mllm import tiny_mllm_dir
from tests.harness.inprocess import run_in_comfy

SNIPPET = """
import importlib
import comfy.model_management as mm
import folder_paths
folder_paths.add_model_folder_path("llmga_mllm", MODELS["mllm_root"], is_default=True)
mllm_nodes = importlib.import_module("llmga_pack.nodes.mllm")
generate = importlib.import_module("llmga_pack.llmga_core.mllm.generate")
quantize = importlib.import_module("llmga_pack.llmga_core.mllm.quantize")
cpu = torch.device("cpu")
i = torch.arange(3 * 336 * 336, dtype=torch.float64)
pixels = (torch.sin(i * 0.0137) * 1.7).to(torch.float32).reshape(1, 3, 336, 336)
greedy = generate.SamplingSettings(temperature=0, max_new_tokens=10, repetition_penalty=1.0)
prompt = "<|im_start|>user\\n<image>\\nGenerate a similar image.<|im_end|><|im_start|>assistant\\n"
quant = MODELS["quantization"]
handle = mllm_nodes.LLMGAMLLMLoader.execute(model=MODELS["mllm_name"], vision_tower="from checkpoint",
    template="auto", precision="fp32", quantization=quant).args[0]
patcher = handle.patcher
model = patcher.model
RESULT["model_size"] = patcher.model_size()
RESULT["weight_bytes"] = quantize.weight_bytes(model)
RESULT["state_dict_bytes"] = mm.module_size(model)   # what ComfyUI would count without the size hint
RESULT["castable"] = sum(hasattr(m, "comfy_cast_weights") for m in model.modules())
lm = model.language_model
embed, head = lm.get_input_embeddings(), lm.get_output_embeddings()
RESULT["head_class"] = type(head).__name__
RESULT["one_table"] = getattr(head, "tied", None) is embed and not list(head.parameters()) \
    if quant != "none" else head.weight is embed.weight
turn = lambda: generate.run_turn(handle.loaded, prompt, pixels, greedy).token_ids

mm.load_models_gpu([patcher])                           # ComfyUI's own full load
RESULT["full"] = turn()
RESULT["full_lowvram"] = bool(model.model_lowvram)
mm.unload_all_models()

budget = patcher.model_size() // 3                       # a third of the model fits
patcher.patch_model(device_to=cpu, lowvram_model_memory=budget)
RESULT["partial_lowvram"] = bool(model.model_lowvram)
RESULT["cast_per_call"] = sum(bool(getattr(m, "comfy_cast_weights", False)) for m in model.modules())
RESULT["loaded_size"] = patcher.loaded_size()
RESULT["partial"] = turn()
patcher.unpatch_model(device_to=cpu)

patcher.patch_model(device_to=cpu, lowvram_model_memory=0)  # full again, then ComfyUI frees some for SD
freed = patcher.partially_unload(cpu, memory_to_free=patcher.model_size() // 2)
RESULT["freed"] = freed
RESULT["after_unload"] = turn()
"""


@pytest.mark.parametrize("quantization", ["none", "fp8 (weights)"])
def test_a_budget_smaller_than_the_model_gives_the_same_tokens(quantization: str) -> None:
    mllm = tiny_mllm_dir("qwen2")
    r = run_in_comfy(
        SNIPPET, {"mllm_root": mllm.parent, "mllm_name": mllm.name, "quantization": quantization}
    )
    assert r["model_size"] == r["weight_bytes"]
    assert r["one_table"], r  # Qwen2's tied embedding/head is stored once (int8 rows when quantised)
    if quantization == "none":
        # the tied tensor is in the state dict twice: ComfyUI's own sum would count it twice
        assert r["model_size"] < r["state_dict_bytes"]
    else:
        assert "Int8Head" in r["head_class"]
    assert r["castable"] > 20
    assert not r["full_lowvram"]
    assert r["partial_lowvram"] and r["cast_per_call"] > 0, r
    assert r["loaded_size"] < r["model_size"]
    assert r["partial"] == r["full"], r
    assert r["freed"] > 0 and r["after_unload"] == r["full"], r
