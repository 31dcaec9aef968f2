"""Paths named by model folders stay inside them (llmga_core.safe_paths), for every loader that reads one.

Each hostile folder names a "secret" file outside the folder; the loader must refuse before reading it
(the secret is a valid-looking weight/config file, so a loader that followed the path would succeed).
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from llmga_core.mllm.checkpoint import inspect_folder as inspect_mllm
from llmga_core.mllm.model import load_mllm
from llmga_core.safe_paths import UnsafePathError, check_links, confine
from llmga_core.sd import inspect_folder as inspect_sd
from tests.core.sd.test_diffusers_folder import SD15, full_folder
from tests.fixtures.tiny_mllm import tiny_clip_vision_dir, tiny_mllm_dir

HOSTILE = {
    "absolute": lambda secret: str(secret),
    "dotdot": lambda secret: f"../../outside/{secret.name}",
    "windows-dotdot": lambda secret: f"..\\..\\outside\\{secret.name}",
    "windows-drive": lambda _secret: "C:\\Windows\\secret.safetensors",
    "unc": lambda _secret: "\\\\server\\share\\secret.safetensors",
}


@pytest.fixture
def secret(tmp_path: Path) -> Path:
    outside = tmp_path / "outside"
    outside.mkdir()
    path = outside / "secret.safetensors"
    save_file({"x": torch.zeros(2)}, str(path))
    return path


# --- the helper ---------------------------------------------------------------------------------------------


def test_names_inside_the_folder_or_a_root_are_accepted(tmp_path: Path) -> None:
    folder, other = tmp_path / "models" / "m", tmp_path / "models" / "other"
    (folder / "sub").mkdir(parents=True)
    other.mkdir()
    (folder / "sub" / "a.bin").write_bytes(b"1")
    (other / "b.bin").write_bytes(b"2")
    assert confine("sub/a.bin", folder, source="m/x.json", key="k") == folder / "sub" / "a.bin"
    assert confine("sub\\a.bin", folder, source="m/x.json", key="k") == folder / "sub" / "a.bin"
    assert confine(str(folder / "sub" / "a.bin"), folder, source="m/x.json", key="k") == folder / "sub" / "a.bin"
    assert confine("b.bin", folder, source="m/x.json", key="k", roots=[other], search_roots=True) == other / "b.bin"
    assert confine("b.bin", folder, source="m/x.json", key="k", roots=[other]) == folder / "b.bin"  # not searched
    assert confine("missing.bin", folder, source="m/x.json", key="k") == folder / "missing.bin"  # caller: "missing"
    os.symlink(other / "b.bin", folder / "link.bin")  # a link into an allowed root
    assert confine("link.bin", folder, source="m/x.json", key="k", roots=[other]).name == "link.bin"


@pytest.mark.parametrize("kind", list(HOSTILE))
def test_hostile_names_are_refused_naming_file_and_key(tmp_path: Path, secret: Path, kind: str) -> None:
    folder = tmp_path / "a" / "b" / "m"
    folder.mkdir(parents=True)
    shutil.copy(secret, tmp_path / "a" / secret.name)  # so '../..' exists relative to the folder too
    with pytest.raises(UnsafePathError) as err:
        confine(HOSTILE[kind](secret), folder, source="m/model.safetensors.index.json", key="weight_map")
    assert "m/model.safetensors.index.json" in str(err.value) and "weight_map" in str(err.value)


def test_links_that_escape_are_refused_and_hf_snapshots_may_reach_their_blobs(tmp_path: Path, secret: Path) -> None:
    folder = tmp_path / "m"
    folder.mkdir()
    os.symlink(secret, folder / "model.safetensors")
    with pytest.raises(UnsafePathError, match="symbolic link"):
        confine("model.safetensors", folder, source="m/index.json", key="weight_map")
    with pytest.raises(UnsafePathError, match=r"m/model.safetensors is a symbolic link"):
        check_links(folder)
    repo = tmp_path / "hub" / "models--binxia--llmga"
    (repo / "blobs").mkdir(parents=True)
    (repo / "snapshots" / "abc").mkdir(parents=True)
    (repo / "blobs" / "1234").write_bytes(b"x")
    os.symlink("../../blobs/1234", repo / "snapshots" / "abc" / "config.json")
    check_links(repo / "snapshots" / "abc")  # the Hugging Face cache layout is fine


# --- MLLM folders ----------------------------------------------------------------------------------------------


def _mllm_copy(tmp_path: Path) -> Path:
    dst = tmp_path / "models" / "llmga-Qwen2-0.5B-full-finetune"
    shutil.copytree(tiny_mllm_dir("qwen2"), dst)
    return dst


def _edit_json(path: Path, **changes: object) -> None:
    data = json.loads(path.read_text())
    data.update(changes)
    path.write_text(json.dumps(data))


@pytest.mark.parametrize("kind", list(HOSTILE))
def test_mllm_shard_index_cannot_name_files_outside(tmp_path: Path, secret: Path, kind: str) -> None:
    folder = _mllm_copy(tmp_path)
    index = folder / "model.safetensors.index.json"
    data = json.loads(index.read_text())
    first = next(iter(data["weight_map"]))
    data["weight_map"][first] = HOSTILE[kind](secret)
    index.write_text(json.dumps(data))
    with pytest.raises(UnsafePathError) as err:
        inspect_mllm(folder)
    assert "model.safetensors.index.json" in str(err.value) and "weight_map" in str(err.value)


def test_mllm_files_that_are_links_out_are_refused(tmp_path: Path, secret: Path) -> None:
    folder = _mllm_copy(tmp_path)
    (folder / "vocab.json").unlink()
    os.symlink(secret, folder / "vocab.json")
    with pytest.raises(UnsafePathError, match=r"vocab\.json is a symbolic link"):
        inspect_mllm(folder)


def test_mllm_folder_linked_into_an_allowed_root_loads(tmp_path: Path) -> None:
    real = _mllm_copy(tmp_path)
    root = tmp_path / "comfy" / "llmga_mllm"
    root.mkdir(parents=True)
    linked = root / "linked"
    linked.mkdir()
    for file in real.iterdir():  # file-by-file links into another registered place
        os.symlink(file, linked / file.name)
    with pytest.raises(UnsafePathError):
        inspect_mllm(linked, roots=[root])
    assert inspect_mllm(linked, roots=[root, real]).weight_format == "safetensors"


@pytest.mark.parametrize("key", ["vocab_file", "tokenizer_file", "merges_file"])
def test_tokenizer_config_cannot_name_files_outside(tmp_path: Path, secret: Path, key: str) -> None:
    folder = _mllm_copy(tmp_path)
    _edit_json(folder / "tokenizer_config.json", **{key: str(secret)})
    with pytest.raises(UnsafePathError) as err:
        inspect_mllm(folder)
    assert "tokenizer_config.json" in str(err.value) and key in str(err.value)


def _towerless(tmp_path: Path) -> Path:
    """The old llama-2 release: no tower weights in the checkpoint, so mm_vision_tower is used."""
    src = tiny_mllm_dir("llama2_old")
    dst = tmp_path / "models" / src.name
    shutil.copytree(src, dst)
    return dst


@pytest.mark.parametrize("kind", ["absolute", "dotdot", "windows-dotdot"])
def test_mm_vision_tower_cannot_leave_the_model_folders(tmp_path: Path, kind: str) -> None:
    folder = _towerless(tmp_path)
    clip = tmp_path / "outside" / "clip"
    shutil.copytree(tiny_clip_vision_dir("llama2_old"), clip)
    tower = {"absolute": str(clip), "dotdot": "../../outside/clip", "windows-dotdot": "..\\..\\outside\\clip"}[kind]
    _edit_json(folder / "config.json", mm_vision_tower=tower)
    with pytest.raises(UnsafePathError) as err:
        load_mllm(folder)
    assert "config.json" in str(err.value) and "mm_vision_tower" in str(err.value)


def test_mm_vision_tower_in_comfyui_clip_vision_folder_loads(tmp_path: Path) -> None:
    folder = _towerless(tmp_path)
    clip_root = tmp_path / "clip_vision"
    shutil.copytree(tiny_clip_vision_dir("llama2_old"), clip_root / "clip-vit-large-patch14")
    # a Hub id is looked up in the model folders, never relative to the working directory
    _edit_json(folder / "config.json", mm_vision_tower="clip-vit-large-patch14")
    loaded = load_mllm(folder, tower_roots=[clip_root])
    assert loaded.vision_source.endswith("clip-vit-large-patch14")
    _edit_json(folder / "config.json", mm_vision_tower=str(clip_root / "clip-vit-large-patch14"))
    assert load_mllm(folder, tower_roots=[clip_root]).model.vision_tower is not None


def test_unsafe_tower_path_is_ignored_when_the_checkpoint_has_the_tower(tmp_path: Path) -> None:
    folder = _mllm_copy(tmp_path)
    _edit_json(folder / "config.json", mm_vision_tower="/etc")  # nothing is read from it
    assert load_mllm(folder).vision_source == "checkpoint"


# --- diffusers folders -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", list(HOSTILE))
def test_diffusers_unet_index_cannot_name_files_outside(tmp_path: Path, secret: Path, kind: str) -> None:
    folder = full_folder(tmp_path / "diffusers" / "m", SD15)
    (folder / "unet" / "diffusion_pytorch_model.safetensors").unlink()
    index = {"weight_map": {"conv_in.weight": HOSTILE[kind](secret)}}
    (folder / "unet" / "diffusion_pytorch_model.safetensors.index.json").write_text(json.dumps(index))
    with pytest.raises(UnsafePathError) as err:
        inspect_sd(folder)
    assert "m/unet/diffusion_pytorch_model.safetensors.index.json" in str(err.value)
    assert "weight_map" in str(err.value)


def test_diffusers_weight_links_out_are_refused_but_links_within_the_root_work(tmp_path: Path, secret: Path) -> None:
    root = tmp_path / "diffusers"
    first = full_folder(root / "a", SD15)
    second = full_folder(root / "b", SD15)
    (second / "vae" / "diffusion_pytorch_model.safetensors").unlink()
    os.symlink(
        first / "vae" / "diffusion_pytorch_model.safetensors", second / "vae" / "diffusion_pytorch_model.safetensors"
    )
    with pytest.raises(UnsafePathError):
        inspect_sd(second)  # without the diffusers root allowed, the shared VAE is outside b/
    assert inspect_sd(second, roots=[root]).vae.files[0].name == "diffusion_pytorch_model.safetensors"
    (second / "unet" / "diffusion_pytorch_model.safetensors").unlink()
    os.symlink(secret, second / "unet" / "diffusion_pytorch_model.safetensors")
    with pytest.raises(UnsafePathError, match=r"b/unet/diffusion_pytorch_model\.safetensors is a symbolic link"):
        inspect_sd(second, roots=[root])
