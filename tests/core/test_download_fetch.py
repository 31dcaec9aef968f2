"""Fetching a released model for a loader, against a local server in the hub's layout (no network)."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from llmga_core import download
from llmga_core.catalog import CatalogEntry
from tests.fixtures.hub_server import HubState, hub_server

ENTRY = CatalogEntry("llmga-tiny-test", "binxia/llmga-tiny-test", "llmga/mllm", "1 MB", "test", "prompts",
                     ("*.json", "*.safetensors"))
WEIGHTS = bytes(range(256)) * 12288  # 3 MiB, served as an LFS file (the downloader reads 1 MiB chunks)


def hub() -> HubState:
    files = {"config.json": b'{"model_type": "llava_qwen2"}', "model.safetensors": WEIGHTS, "training_args.bin": b"x"}
    return HubState(repos={ENTRY.repo_id: files}, lfs={"model.safetensors"})


class Cancelled(Exception):
    pass


@pytest.fixture(autouse=True)
def online(monkeypatch: pytest.MonkeyPatch) -> None:
    """tests/core/mllm_model/conftest.py sets HF_HUB_OFFLINE and TRANSFORMERS_OFFLINE for the whole process at
    collection; these tests download from the local hub server, so they run with both unset (the offline test
    sets them itself)."""
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)


def visible(models: Path) -> list[str]:
    """What a loader's listing would see: non-hidden entries of the model folder."""
    folder = models / ENTRY.folder
    return sorted(p.name for p in folder.iterdir() if not p.name.startswith(".")) if folder.is_dir() else []


def test_fetch_downloads_only_the_needed_files_with_progress(tmp_path: Path) -> None:
    state, seen = hub(), []
    with hub_server(state) as endpoint:
        target = download.fetch(ENTRY, tmp_path, progress=lambda d, t: seen.append((d, t)), endpoint=endpoint)
    assert target == tmp_path / "llmga/mllm/llmga-tiny-test"
    assert (target / "model.safetensors").read_bytes() == WEIGHTS
    assert not (target / "training_args.bin").exists()
    total = len(WEIGHTS) + len(b'{"model_type": "llava_qwen2"}')
    assert seen[-1] == (total, total) and len(seen) > 3  # byte progress, not only per file
    assert [d for d, _ in seen] == sorted(d for d, _ in seen)
    assert visible(tmp_path) == ["llmga-tiny-test"] and not download.staging_dir(target).exists()


def test_a_dropped_connection_resumes_where_it_stopped(tmp_path: Path) -> None:
    state = hub()
    state.cut_after["model.safetensors"] = 2_500_000
    with hub_server(state) as endpoint:
        target = download.fetch(ENTRY, tmp_path, endpoint=endpoint)
    assert (target / "model.safetensors").read_bytes() == WEIGHTS
    ranges = [r for name, r in state.gets if name == "model.safetensors"]
    assert len(ranges) == 2 and ranges[0] is None  # the second request asked for the rest, not the whole file
    assert ranges[1].startswith("bytes=") and 0 < int(ranges[1][6:].split("-")[0]) <= 2_500_000


def test_cancel_stops_leaves_nothing_loadable_and_the_next_pick_resumes(tmp_path: Path) -> None:
    state = hub()
    received = [0]

    def cancel_midway() -> None:
        if received[0] > 1_500_000:
            raise Cancelled

    with hub_server(state) as endpoint:
        with pytest.raises(Cancelled):
            download.fetch(
                ENTRY, tmp_path, progress=lambda d, t: received.__setitem__(0, d), check_cancel=cancel_midway,
                endpoint=endpoint,
            )
        assert visible(tmp_path) == []  # the half-downloaded folder is hidden from loaders
        target = download.fetch(ENTRY, tmp_path, endpoint=endpoint)  # picked again: finishes
    assert hashlib.sha256((target / "model.safetensors").read_bytes()).digest() == hashlib.sha256(WEIGHTS).digest()
    ranges = [r for name, r in state.gets if name == "model.safetensors"]
    assert ranges[0] is None and ranges[-1] is not None and int(ranges[-1][6:].split("-")[0]) > 1_500_000


def test_a_missing_repo_or_file_says_what_to_download_and_where(tmp_path: Path) -> None:
    state = hub()
    with hub_server(state) as endpoint:
        gone = CatalogEntry("llmga-gone", "binxia/llmga-gone", "llmga/mllm", "", "", "", ("*.json",))
        with pytest.raises(download.DownloadError) as err:
            download.fetch(gone, tmp_path, endpoint=endpoint)
        assert "binxia/llmga-gone was not found" in str(err.value)
        assert f"into {tmp_path}/llmga/mllm/llmga-gone/" in str(err.value)
    assert visible(tmp_path) == []


def test_a_corrupted_file_is_rejected_and_deleted(tmp_path: Path) -> None:
    state = hub()
    state.corrupt.add("model.safetensors")
    with hub_server(state) as endpoint:
        with pytest.raises(download.DownloadError, match="arrived corrupted"):
            download.fetch(ENTRY, tmp_path, endpoint=endpoint)
        assert visible(tmp_path) == []
        assert not (download.staging_dir(tmp_path / ENTRY.target) / "model.safetensors").exists()
        state.corrupt.clear()
        target = download.fetch(ENTRY, tmp_path, endpoint=endpoint)
    assert (target / "model.safetensors").read_bytes() == WEIGHTS


def test_offline_and_off_hub_models_say_what_to_fetch(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(download.DownloadError, match="HF_HUB_OFFLINE is set") as err:
        download.fetch(ENTRY, tmp_path)
    assert "https://huggingface.co/binxia/llmga-tiny-test" in str(err.value)
    monkeypatch.delenv("HF_HUB_OFFLINE")
    # huggingface_hub is offline under TRANSFORMERS_OFFLINE too: the message names the variable that is set
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "1")
    with pytest.raises(download.DownloadError, match="TRANSFORMERS_OFFLINE is set"):
        download.fetch(ENTRY, tmp_path)
    monkeypatch.delenv("TRANSFORMERS_OFFLINE")
    with pytest.raises(download.DownloadError, match=r"drive\.google\.com"):
        download.fetch(download.find("DiffRIR_x1_S2GAN.pth"), tmp_path)
    assert not any(tmp_path.iterdir())
