"""Released models picked from the loaders' lists are fetched on first run (HF_ENDPOINT: a local hub)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.fixtures.host_models import host_models
from tests.fixtures.hub_server import HubState, hub_server
from tests.fixtures.tiny_mllm import tiny_mllm_dir
from tests.harness.client import ComfyClient
from tests.harness.server import ComfyServer
from tests.host.test_mllm_nodes import generate, loader, show

FETCHED = "llmga-Qwen2-1.5B-full-finetune"  # served from the tiny Qwen2 folder


@pytest.fixture(scope="module")
def hub() -> Iterator[tuple[HubState, str]]:
    source = tiny_mllm_dir("qwen2")
    files = {str(p.relative_to(source)): p.read_bytes() for p in source.rglob("*") if p.is_file()}
    state = HubState(repos={f"binxia/{FETCHED}": files}, lfs={n for n in files if n.endswith(".safetensors")})
    with hub_server(state) as endpoint:
        yield state, endpoint


@pytest.fixture(scope="module")
def server(hub: tuple[HubState, str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[ComfyServer]:
    server = ComfyServer(root=tmp_path_factory.mktemp("comfy-downloads"), models=host_models())
    with pytest.MonkeyPatch.context() as env:
        env.setenv("HF_ENDPOINT", hub[1])
        # the MLLM tests' conftest sets both for the whole pytest process; either puts the hub offline
        env.delenv("HF_HUB_OFFLINE", raising=False)
        env.delenv("TRANSFORMERS_OFFLINE", raising=False)
        server.start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def client(server: ComfyServer) -> ComfyClient:
    return ComfyClient(server.url)


def test_loaders_list_released_models_not_on_disk_and_fetch_nothing(
    client: ComfyClient, hub: tuple[HubState, str]
) -> None:
    mllm = client.object_info("LLMGAMLLMLoader")["input"]["required"]["model"][1]["options"]
    assert f"{FETCHED} (download)" in mllm and "llmga-Qwen2-0.5B-full-finetune" in mllm
    assert "llmga-Qwen2-0.5B-full-finetune (download)" not in mllm  # on disk: listed once, plainly
    folders = client.object_info("LLMGACheckpointLoader")["input"]["required"]["folder"][1]["options"]
    assert "llmga-sd15-inpainting-v2 (download)" in folders
    diffrir = client.object_info("LLMGADiffRIRLoader")["input"]["required"]["weights"][1]["options"]
    assert "DiffRIR_x1_S2GAN.pth (download)" not in diffrir  # the fixture has it
    assert hub[0].paths == []  # listing never touches the network


def test_picking_a_download_entry_fetches_it_then_loads(
    client: ComfyClient, server: ComfyServer, hub: tuple[HubState, str]
) -> None:
    run = client.run(
        {"1": loader(f"{FETCHED} (download)"), "2": generate("text-to-image", "a cat", tokens=4), "3": show(["2", 0])}
    )
    target = server.base / "models" / "llmga" / "mllm" / FETCHED
    assert (target / "config.json").is_file()
    assert not [p for p in target.parent.iterdir() if p.name.startswith(".")]  # no staging folder left
    assert "qwen_2" in run.outputs["1"]["text"][0]
    options = client.object_info("LLMGAMLLMLoader")["input"]["required"]["model"][1]["options"]
    assert FETCHED in options and f"{FETCHED} (download)" not in options


def test_a_model_missing_on_the_hub_says_what_to_download_and_where(client: ComfyClient, server: ComfyServer) -> None:
    prompt = {
        "1": {"class_type": "LLMGACheckpointLoader", "inputs": {"folder": "llmga-sdxl-inpainting-v2 (download)",
                                                                 "weights": "fp16 first"}},
        "2": {"class_type": "PreviewAny", "inputs": {"source": ["1", 0]}},
    }
    run = client.run(prompt, expect_error=True)
    message = run.describe_error()
    assert "llmga-sdxl-inpainting-v2 could not be downloaded" in message
    assert "binxia/llmga-sdxl-inpainting-v2 was not found" in message
    assert str(Path(server.base / "models" / "diffusers" / "llmga-sdxl-inpainting-v2")) in message
    diffusers = server.base / "models" / "diffusers"
    assert not diffusers.exists() or not any(diffusers.iterdir())  # nothing half-written
