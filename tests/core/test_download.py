"""The model download command: catalogue, instructions offline, and what it would fetch."""

from __future__ import annotations

from pathlib import Path

import pytest

from llmga_core import download
from llmga_core.catalog import CATALOG, find


def test_catalogue_names_keep_llmga_substrings_and_folders() -> None:
    mllm = [e for e in CATALOG if e.folder == "llmga/mllm"]
    assert len(mllm) == 13 and all("llmga" in e.name for e in mllm)
    assert {e.name for e in CATALOG if e.folder == "diffusers"} == {
        "llmga-sd15-t2i-v2",
        "llmga-sd15-inpainting-v2",
        "llmga-sdxl-t2i",
        "llmga-sdxl-inpainting-v2",
    }
    for entry in CATALOG:
        if entry.repo_id:  # never pickles or the safety checker
            assert not any(p.endswith(".bin") or "safety" in p for p in entry.patterns)


def test_offline_prints_exact_instructions(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    status = download.main(["--models-dir", str(tmp_path), "llmga-Qwen2-0.5B-full-finetune", "DiffRIR_x1_S2GAN.pth"])
    out = capsys.readouterr().out
    assert status == 3
    assert "https://huggingface.co/binxia/llmga-Qwen2-0.5B-full-finetune" in out
    assert f"{tmp_path}/llmga/mllm/llmga-Qwen2-0.5B-full-finetune" in out
    assert "drive.google.com" in out and f"{tmp_path}/llmga/diffrir/DiffRIR_x1_S2GAN.pth" in out
    assert not any(tmp_path.iterdir())  # nothing fetched


def test_unknown_name_lists_the_known_ones(capsys) -> None:
    assert download.main(["not-a-model"]) == 2
    assert "llmga-sdxl-t2i" in capsys.readouterr().err


def test_download_asks_the_hub_for_only_the_needed_files(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    calls = []
    import huggingface_hub

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    monkeypatch.setattr(huggingface_hub, "snapshot_download", lambda **kw: calls.append(kw) or kw["local_dir"])
    assert download.main(["--models-dir", str(tmp_path), "llmga-sd15-inpainting-v2"]) == 0
    (call,) = calls
    assert call["repo_id"] == "binxia/llmga-sd15-inpainting-v2"
    assert Path(call["local_dir"]) == tmp_path / "diffusers" / "llmga-sd15-inpainting-v2"
    assert "unet/*.safetensors" in call["allow_patterns"]
    assert find("LLMGA-SD15-INPAINTING-V2").name == "llmga-sd15-inpainting-v2"


def test_list_prints_the_table(capsys) -> None:
    assert download.main(["--list"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == len(CATALOG) + 1
