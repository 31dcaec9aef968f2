"""Messages the pack shows: no colour codes, no advice to loosen a safety check (llmga_core.errors)."""

from __future__ import annotations

import argparse
import pickle
import shutil
from pathlib import Path

import pytest
import torch

from llmga_core.errors import LLMGAInputError, clean_message
from llmga_core.mllm.checkpoint import inspect_folder, load_state_dict
from tests.fixtures.tiny_mllm import tiny_mllm_dir


def torch_refusal() -> str:
    """torch's own text for a pickle that weights_only refuses (with its colour codes and advice)."""
    data = Path(__file__).parent / "_refused.pt"
    try:
        torch.save({"x": argparse.Namespace(a=1)}, data)
        with pytest.raises(pickle.UnpicklingError) as err:
            torch.load(data, weights_only=True)
    finally:
        data.unlink(missing_ok=True)
    return str(err.value)


def test_torch_advice_and_colour_codes_are_removed() -> None:
    raw = torch_refusal()
    assert "weights_only" in raw  # torch's advice, which the pack must never repeat
    cleaned = clean_message(raw)
    for unsafe in ("weights_only", "\x1b", "trust", "safe_globals"):
        assert unsafe not in cleaned, cleaned
    assert clean_message("\x1b[31mred\x1b[0m text. Pass trust_remote_code=True to load it. Done.") == "red text. Done."
    assert clean_message("use ignore_mismatched_sizes=True.\nsizes differ") == "sizes differ"


def test_a_bin_with_code_in_an_mllm_folder_is_refused_without_unsafe_advice(tmp_path: Path) -> None:
    folder = tmp_path / "llmga-Qwen2-0.5B-full-finetune"
    shutil.copytree(tiny_mllm_dir("qwen2"), folder)
    for shard in folder.glob("model*.safetensors*"):
        shard.unlink()
    torch.save(
        {"model.embed_tokens.weight": torch.zeros(2, 2), "x": argparse.Namespace(a=1)}, folder / "pytorch_model.bin"
    )
    with pytest.raises(LLMGAInputError) as err:
        load_state_dict(inspect_folder(folder))
    message = str(err.value)
    assert "argparse.Namespace" in message and "pytorch_model.bin" in message and ".safetensors" in message
    assert "weights_only" not in message and "\x1b" not in message


def _qwen_with(tmp_path: Path, change) -> Path:
    from safetensors.torch import load_file, save_file

    folder = tmp_path / "llmga-Qwen2-0.5B-full-finetune"
    shutil.copytree(tiny_mllm_dir("qwen2"), folder)
    for shard in sorted(folder.glob("model-*.safetensors")):
        tensors = load_file(str(shard))
        change(tensors)
        save_file(tensors, str(shard))
    return folder


def test_an_embedding_stored_as_int_is_refused_by_name(tmp_path: Path) -> None:
    def to_int(tensors: dict) -> None:
        if "model.embed_tokens.weight" in tensors:
            tensors["model.embed_tokens.weight"] = tensors["model.embed_tokens.weight"].to(torch.int32)

    with pytest.raises(LLMGAInputError, match=r"model\.embed_tokens\.weight is stored as int32"):
        load_state_dict(inspect_folder(_qwen_with(tmp_path, to_int)))


def test_a_nan_in_a_norm_is_refused_by_name(tmp_path: Path) -> None:
    def poison(tensors: dict) -> None:
        if "model.norm.weight" in tensors:
            tensors["model.norm.weight"][3] = float("nan")

    with pytest.raises(LLMGAInputError, match=r"model\.norm\.weight holds 1 NaN or infinite values"):
        load_state_dict(inspect_folder(_qwen_with(tmp_path, poison)))


def _qwen_edit(tmp_path: Path, file: str, data: bytes | None = None, **fields: object) -> Path:
    import json

    folder = tmp_path / "llmga-Qwen2-0.5B-full-finetune"
    if not folder.exists():
        shutil.copytree(tiny_mllm_dir("qwen2"), folder)
    path = folder / file
    if data is None:
        path.write_text(json.dumps({**json.loads(path.read_text()), **fields}))
    else:
        path.write_bytes(data)
    return folder


@pytest.mark.parametrize(
    ("file", "data", "fields", "expected"),
    [
        ("config.json", b"[1, 2, 3]", {}, "config.json holds a JSON list"),
        ("config.json", b"\xff\xfe{", {}, "config.json cannot be read"),
        ("generation_config.json", None, {"max_new_tokens": -5}, "max_new_tokens is -5"),
        ("generation_config.json", None, {"eos_token_id": "x"}, "eos_token_id is 'x'"),
        ("generation_config.json", b'"just a string"', {}, "generation_config.json holds a JSON str"),
        ("model.safetensors.index.json", b"[]", {}, "model.safetensors.index.json holds a JSON list"),
        ("config.json", None, {"intermediate_size": 40}, "do not match (model.layers.0.mlp"),
        ("vocab.json", b'{"a": 1, "b', {}, "the tokenizer files cannot be loaded"),
    ],
    ids=["config-list", "config-bytes", "gen-negative", "gen-eos-str", "gen-str", "index-list", "sizes", "tokenizer"],
)
def test_hostile_mllm_files_name_the_file_and_the_fix(
    tmp_path: Path, file: str, data: bytes | None, fields: dict, expected: str
) -> None:
    from llmga_core.mllm.model import load_mllm

    folder = _qwen_edit(tmp_path, file, data, **fields)
    with pytest.raises(LLMGAInputError) as err:
        load_mllm(folder)
    message = str(err.value)
    assert expected in message and "llmga-Qwen2-0.5B-full-finetune" in message, message
    assert "ignore_mismatched_sizes" not in message and "Traceback" not in message, message
