"""The released LLMGA and DiffRIR weights: where they are published and where ComfyUI expects them.

Sizes are approximate downloads of what the pack needs (safetensors weights, configs, tokenizers; no
safety checker, no training state). Licences are those of the base models the weights were tuned from;
check each model page before use.
"""

from __future__ import annotations

from dataclasses import dataclass

HF = "https://huggingface.co/"


@dataclass(frozen=True)
class CatalogEntry:
    name: str  # the folder name users get (it must keep LLMGA's name substrings)
    repo_id: str | None  # Hugging Face repo, None where the weights are not on the Hub
    folder: str  # relative to ComfyUI's models/ directory
    size: str
    license: str
    tasks: str
    patterns: tuple[str, ...] = ()

    @property
    def url(self) -> str:
        return HF + self.repo_id if self.repo_id else DIFFRIR_URL

    @property
    def target(self) -> str:
        """Where it goes under models/: a folder for Hub repos, the file itself for DiffRIR."""
        return f"{self.folder}/{self.name}"


# What the loaders read; never pickles (training_args.bin, *.bin weights) and never the safety checker.
MLLM_FILES = ("*.json", "*.safetensors", "*.model", "*.txt", "*.tiktoken", "tokenizer*")
SD_FILES = (
    "model_index.json",
    "scheduler/*",
    "tokenizer/*",
    "tokenizer_2/*",
    "text_encoder/*.safetensors",
    "text_encoder/config.json",
    "text_encoder_2/*.safetensors",
    "text_encoder_2/config.json",
    "unet/*.safetensors",
    "unet/config.json",
    "vae/*.safetensors",
    "vae/config.json",
)
DIFFRIR_URL = "https://drive.google.com/drive/folders/18FWpDCE9z3vS9hEvezxROzTz5hwozRiz"

_MLLM = "llmga/mllm"
_SD = "diffusers"
_PROMPTS = "prompt writing: text-to-image, similar image, inpainting/outpainting, editing captions"


def _mllm(name: str, size: str, license: str) -> CatalogEntry:
    return CatalogEntry(name, f"binxia/{name}", _MLLM, size, license, _PROMPTS, MLLM_FILES)


def _sd(name: str, size: str, license: str, tasks: str) -> CatalogEntry:
    return CatalogEntry(name, f"binxia/{name}", _SD, size, license, tasks, SD_FILES)


CATALOG: tuple[CatalogEntry, ...] = (
    _mllm("llmga-Qwen2-0.5B-full-finetune", "≈1.6 GB", "Apache-2.0 (Qwen2)"),
    _mllm("llmga-Qwen2-1.5B-full-finetune", "≈3.7 GB", "Apache-2.0 (Qwen2)"),
    _mllm("llmga-Qwen2-7B-full-finetune", "≈16 GB", "Apache-2.0 (Qwen2)"),
    _mllm("llmga-gemma-2b-it-full-finetune", "≈5.6 GB", "Gemma Terms of Use"),
    _mllm("llmga-Phi-3-mini-128k-full-finetune", "≈8.3 GB", "MIT (Phi-3)"),
    _mllm("llmga-mistral_instruct-full-finetune", "≈15 GB", "Apache-2.0 (Mistral)"),
    _mllm("llmga-vicuna-7b-v1.5-full-finetune", "≈14 GB", "Llama 2 Community License (Vicuna)"),
    _mllm("llmga-llama-2-7b-chat-full-finetune", "≈14 GB", "Llama 2 Community License"),
    _mllm("llmga-llama3-8b-it-full-finetune", "≈17 GB", "Meta Llama 3 Community License"),
    _mllm("llmga-cn-Qwen2-0.5B-full-finetune", "≈1.6 GB", "Apache-2.0 (Qwen2)"),
    _mllm("llmga-cn-gemma-2b-it-full-finetune", "≈5.6 GB", "Gemma Terms of Use"),
    _mllm("llmga-cn-vicuna-7b-v1.5-full-finetune", "≈14 GB", "Llama 2 Community License (Vicuna)"),
    _mllm("llmga-cn-llama3-8b-it-full-finetune", "≈17 GB", "Meta Llama 3 Community License"),
    _sd("llmga-sd15-t2i-v2", "≈2.7 GB", "CreativeML OpenRAIL-M (SD 1.5)", "text-to-image, instruction editing"),
    _sd("llmga-sd15-inpainting-v2", "≈2.7 GB", "CreativeML OpenRAIL-M (SD 1.5)", "inpainting, outpainting"),
    _sd("llmga-sdxl-t2i", "≈7 GB", "CreativeML OpenRAIL++-M (SDXL)", "text-to-image (SDXL)"),
    _sd("llmga-sdxl-inpainting-v2", "≈7 GB", "CreativeML OpenRAIL++-M (SDXL)", "inpainting, outpainting (SDXL)"),
    CatalogEntry(
        "DiffRIR_x1_S2GAN.pth",
        None,
        "llmga/diffrir",
        "≈0.1 GB",
        "see the DiffRIR repository (Zj-BinXia/DiffRIR)",
        "restoration after inpainting/outpainting",
    ),
)


def find(name: str) -> CatalogEntry:
    for entry in CATALOG:
        if entry.name.lower() == name.lower():
            return entry
    known = ", ".join(e.name for e in CATALOG)
    raise KeyError(f"Unknown model {name!r}. Known names: {known}")
