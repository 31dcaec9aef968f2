"""Folders that are already quantised: a folder saved by transformers from a bitsandbytes model loads as
it is (and gives the tokens of quantising the full-precision folder at load); other quantised folders,
and a bitsandbytes config over full-precision weights, say what to do."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from llmga_core.errors import LLMGAInputError
from llmga_core.mllm.checkpoint import inspect_folder, load_state_dict, split_state_dict
from llmga_core.mllm.generate import SamplingSettings, run_turn
from llmga_core.mllm.model import _load_llm, load_mllm

from .conftest import golden_pixels, tiny_folder
from .test_quantize import _quantised

bnb = pytest.importorskip("bitsandbytes")
pytest.importorskip("accelerate")

PROMPT = "<image>\nGenerate a similar image."
GREEDY = SamplingSettings(temperature=0, max_new_tokens=6, repetition_penalty=1.0)


def _serialise(tmp_path: Path, name: str, choice: str) -> Path:
    """The tiny ``name`` folder with its LLM quantised by bitsandbytes and saved by transformers'
    ``save_pretrained`` (weights and config.json's quantization_config), tower and projector as they were."""
    src = tiny_folder(name)
    folder = inspect_folder(src)
    state = load_state_dict(folder)
    llm_state, _, _ = split_state_dict(state)
    lm = _load_llm(folder, dict(llm_state), torch.float32, choice)
    lm.save_pretrained(tmp_path / "llm")
    saved = load_file(str(tmp_path / "llm" / "model.safetensors"))
    out = tmp_path / src.name
    shutil.copytree(src, out, ignore=shutil.ignore_patterns("*.safetensors", "*.index.json", "*.bin"))
    rest = {k: v for k, v in state.items() if not k.startswith(("model.layers.", "model.embed_tokens.",
                                                                  "model.norm.", "lm_head."))}
    save_file({**rest, **saved}, str(out / "model.safetensors"), metadata={"format": "pt"})
    config = json.loads((out / "config.json").read_text())
    config["quantization_config"] = json.loads((tmp_path / "llm" / "config.json").read_text())["quantization_config"]
    (out / "config.json").write_text(json.dumps(config))
    return out


@pytest.mark.parametrize("choice", ["8-bit", "4-bit"])
def test_a_bitsandbytes_serialised_folder_loads_as_it_is(tmp_path: Path, choice: str) -> None:
    folder = _serialise(tmp_path, "qwen2", choice)
    assert any(k.endswith((".SCB", ".absmax")) for k in load_file(str(folder / "model.safetensors")))
    mllm = load_mllm(folder)  # "none" asked: the folder's own quantisation applies
    assert mllm.quantization == choice and mllm.bnb
    kind = {"8-bit": bnb.nn.Linear8bitLt, "4-bit": bnb.nn.Linear4bit}[choice]
    assert type(mllm.model.language_model.model.layers[0].mlp.down_proj) is kind
    reference = _quantised("qwen2", choice)  # the full-precision folder quantised at load
    pixels = golden_pixels(mllm.model.settings.image_size)
    assert run_turn(mllm, PROMPT, pixels, GREEDY).token_ids == run_turn(reference, PROMPT, pixels, GREEDY).token_ids


def test_other_quantised_folders_say_what_to_do(tmp_path: Path) -> None:
    src = tiny_folder("qwen2")
    folder = tmp_path / src.name
    shutil.copytree(src, folder)
    config = json.loads((folder / "config.json").read_text())
    config["quantization_config"] = {"quant_method": "gptq", "bits": 4}
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(LLMGAInputError) as info:
        load_mllm(folder)
    message = str(info.value)
    assert "already quantised" in message and "gptq" in message and "full-precision" in message
    # a bitsandbytes config over weights that are not quantised: the folder mixes two downloads
    config["quantization_config"] = {"quant_method": "bitsandbytes", "load_in_4bit": True}
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(LLMGAInputError) as info:
        load_mllm(folder)
    message = str(info.value)
    assert "not quantised" in message and "quantization_config" in message and "4-bit" in message
