"""The MLLM lives in ComfyUI's memory manager: loaded models list it, and ComfyUI unloads it for SD."""

from __future__ import annotations

from tests.fixtures.tiny_mllm import tiny_mllm_dir
from tests.harness.host import tiny_sd_models
from tests.harness.inprocess import run_in_comfy

SNIPPET = """
import importlib
import comfy.model_management as mm
import comfy.sd
import folder_paths
folder_paths.add_model_folder_path("llmga_mllm", MODELS["mllm_root"], is_default=True)
mllm_nodes = importlib.import_module("llmga_pack.nodes.mllm")
handle = mllm_nodes.LLMGAMLLMLoader.execute(model=MODELS["mllm_name"], vision_tower="from checkpoint",
    template="auto", precision="auto", quantization="none").args[0]
mllm_nodes.runtime.load_to_device(handle.patcher)       # what LLMGA Generate Prompt does before generating
names = lambda: [type(m.model.model).__name__ for m in mm.current_loaded_models]
RESULT["after_prompt"] = names()
model, clip, vae, _ = comfy.sd.load_checkpoint_guess_config(MODELS["ckpt"], output_clipvision=False)
mm.load_models_gpu([model])
RESULT["with_sd"] = names()
# What load_models_gpu does on a GPU when the SD model needs more than is free (on --cpu it skips this
# step, everything already being in RAM): free memory on the device, keeping the model about to run.
keep = [m for m in mm.current_loaded_models if m.model is model]
mm.free_memory(mm.get_total_memory(mm.get_torch_device()) * 4, mm.get_torch_device(), keep_loaded=keep)
RESULT["after_sd"] = names()
"""


def test_sd_sampling_that_needs_memory_unloads_the_mllm() -> None:
    mllm = tiny_mllm_dir("qwen2")
    result = run_in_comfy(
        SNIPPET,
        {
            "mllm_root": mllm.parent,
            "mllm_name": mllm.name,
            "ckpt": tiny_sd_models() / "checkpoints" / "tiny_sd15.safetensors",
        },
    )
    assert "LLMGAModel" in result["after_prompt"]
    assert "LLMGAModel" in result["with_sd"] and "BaseModel" in result["with_sd"]
    assert "LLMGAModel" not in result["after_sd"], result
    assert "BaseModel" in result["after_sd"], result
