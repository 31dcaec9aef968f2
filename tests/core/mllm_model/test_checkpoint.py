"""Folder inspection, weight reading and the errors a wrong folder gives."""

from __future__ import annotations

import datetime
import json
import shutil
from pathlib import Path

import pytest
import torch

from llmga_core.errors import LLMGAInputError
from llmga_core.mllm.checkpoint import (
    PROJECTOR_PREFIX,
    VISION_PREFIX,
    inspect_folder,
    load_state_dict,
    split_state_dict,
    text_config,
)
from llmga_core.mllm.model import load_mllm
from tests.fixtures.tiny_mllm import FAMILIES

from .conftest import tiny_folder

EXPECTED = {  # family -> (model_type, base, format, files)
    "vicuna": ("llava_llama", "llama", "safetensors", 3),
    "llama3": ("llava_llama", "llama", "safetensors", 2),
    "llama2_old": ("llava_llama", "llama", "bin", 2),
    "mistral": ("llava_mistral", "mistral", "safetensors", 2),
    "qwen2": ("llava_Qwen2", "qwen2", "safetensors", 2),
    "phi3": ("llava_Phi3", "phi3", "safetensors", 2),
    "gemma": ("llava_gemma", "gemma", "safetensors", 2),
}


def _copy(name: str, tmp_path: Path) -> Path:
    src = tiny_folder(name)
    dst = tmp_path / src.name
    shutil.copytree(src, dst)
    return dst


@pytest.mark.parametrize("name", sorted(FAMILIES))
def test_inspect_every_family(name: str) -> None:
    folder = inspect_folder(tiny_folder(name))
    model_type, base, fmt, files = EXPECTED[name]
    assert (folder.model_type, folder.base_model_type, folder.weight_format) == (model_type, base, fmt)
    assert len(folder.weight_files) == files
    assert folder.name == FAMILIES[name].folder
    assert folder.mm["mm_projector_type"] == "mlp2x_gelu" and folder.mm["mm_vision_select_layer"] == -2
    cfg = text_config(folder)
    assert cfg.model_type == base
    assert not any(k.startswith("mm_") for k in cfg.to_dict())


def test_state_dict_split_uses_llava_key_names() -> None:
    folder = inspect_folder(tiny_folder("qwen2"))
    state = load_state_dict(folder, dtype=torch.float32)
    assert all(v.dtype == torch.float32 for v in state.values())
    assert "lm_head.weight" not in state  # tied head, as Qwen2-0.5B
    assert f"{VISION_PREFIX}vision_model.embeddings.patch_embedding.weight" in state
    assert f"{PROJECTOR_PREFIX}0.weight" in state and f"{PROJECTOR_PREFIX}2.bias" in state
    llm, vision, proj = split_state_dict(state)
    assert len(llm) + len(vision) + len(proj) == len(state)
    assert set(proj) == {"0.weight", "0.bias", "2.weight", "2.bias"}
    assert all(k.startswith("vision_model.") for k in vision)
    assert all(k.startswith(("model.", "lm_head.")) and "mm_projector" not in k for k in llm)


def test_missing_folder_and_config(tmp_path: Path) -> None:
    with pytest.raises(LLMGAInputError, match="does not exist"):
        inspect_folder(tmp_path / "nope")
    with pytest.raises(LLMGAInputError, match=r"config\.json is missing"):
        inspect_folder(tmp_path)


def test_missing_shard_is_named(tmp_path: Path) -> None:
    folder = _copy("vicuna", tmp_path)
    (folder / "model-00002-of-00003.safetensors").unlink()
    with pytest.raises(LLMGAInputError, match=r"model-00002-of-00003\.safetensors"):
        inspect_folder(folder)


def test_no_weights_lists_expected_files(tmp_path: Path) -> None:
    folder = _copy("mistral", tmp_path)
    (folder / "model.safetensors.index.json").unlink()
    with pytest.raises(LLMGAInputError, match=r"without model\.safetensors\.index\.json"):
        inspect_folder(folder)


def test_no_tokenizer(tmp_path: Path) -> None:
    folder = _copy("mistral", tmp_path)
    (folder / "tokenizer.json").unlink()
    with pytest.raises(LLMGAInputError, match=r"tokenizer\.json or tokenizer\.model"):
        inspect_folder(folder)


def test_plain_llm_and_converted_llava_are_refused(tmp_path: Path) -> None:
    folder = _copy("mistral", tmp_path)
    cfg = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**cfg, "model_type": "mistral"}))
    with pytest.raises(LLMGAInputError, match="model_type 'mistral'"):
        inspect_folder(folder)
    no_mm = {k: v for k, v in cfg.items() if k != "mm_vision_tower"}
    (folder / "config.json").write_text(json.dumps(no_mm))
    with pytest.raises(LLMGAInputError, match="text-only LLM"):
        inspect_folder(folder)


def test_missing_tower_points_to_clip_vision() -> None:
    with pytest.raises(LLMGAInputError, match="models/clip_vision"):
        load_mllm(tiny_folder("llama2_old"))


def test_bin_is_read_with_weights_only(tmp_path: Path) -> None:
    folder = _copy("llama2_old", tmp_path)
    shard = folder / "pytorch_model-00001-of-00002.bin"
    data = torch.load(shard, weights_only=True)
    data["evil"] = datetime.date(2024, 1, 1)  # an arbitrary pickled object, refused by weights_only
    torch.save(data, shard)
    with pytest.raises(LLMGAInputError, match="holds Python objects or code besides tensors"):
        load_state_dict(inspect_folder(folder))


def test_wrong_projector_shape(tmp_path: Path) -> None:
    folder = _copy("mistral", tmp_path)
    cfg = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**cfg, "mm_projector_type": "mlp3x_gelu"}))
    with pytest.raises(LLMGAInputError, match="projector weights"):
        load_mllm(folder)
