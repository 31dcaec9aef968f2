"""Hostile inputs from a shared workflow or a downloaded model folder, in the real host (issue 19).

Non-finite numbers, broken text, other environment variables for the API key, pickles with code, configs
of the wrong shape: each ends as an execution error of the named node whose message says what to do
(no traceback text, no colour codes, no advice to loosen a check), and the next prompt runs normally.
docs/bad-inputs.md lists every row.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil

import pytest
import torch

from tests.conftest import png_bytes
from tests.fixtures.silent_server import silent_server
from tests.fixtures.tiny_mllm import tiny_mllm_dir
from tests.harness.client import ComfyClient, PromptRejected
from tests.harness.inprocess import run_in_comfy
from tests.harness.server import ComfyServer
from tests.host.test_hardening import clear_error, generate, loader, mllm_graph, show, still_serving

NAN, INF = float("nan"), float("inf")
UNSAFE = re.compile(r"weights_only|trust_remote_code|ignore_mismatched_sizes|safe_globals|\x1b", re.IGNORECASE)


def checked(message: str) -> str:
    assert not UNSAFE.search(message), message
    return message


def remote(url: str, api_key_env: str = "LLMGA_REMOTE_API_KEY", timeout_s: float = 5.0) -> dict:
    inputs = {"endpoint": url, "engine": "llama.cpp server", "model": "m", "template": "auto"}
    return {
        "class_type": "LLMGARemoteMLLM",
        "inputs": inputs | {"timeout_s": timeout_s, "api_key_env": api_key_env, "image_size": 336},
    }


# --- secrets ----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["PATH", "HOME", "AWS_SECRET_ACCESS_KEY"])
def test_a_workflow_naming_another_variable_gets_an_error_and_sends_nothing(comfy: ComfyClient, name: str) -> None:
    with silent_server() as server:
        graph = {"1": remote(server.url, api_key_env=name), "2": show(["1", 0])}
        message = clear_error(comfy, graph, "LLMGARemoteMLLM", "LLMGA Remote MLLM:")
        assert "LLMGA_" in message and name in message, message
        assert server.accepted == 0 and not server.received  # not even a connection
    still_serving(comfy, seed=701)


# --- finite numbers and valid text --------------------------------------------------------------------------------


def test_every_pack_node_is_guarded_and_refuses_non_finite_floats() -> None:
    result = run_in_comfy(
        """
import math
from llmga_pack.nodes._errors import LLMGANodeError
from llmga_pack.nodes._guard import check_inputs
classes = pack._load_node_classes()
RESULT["nodes"] = len(classes)
RESULT["unguarded"] = [c.__name__ for c in classes if not getattr(c, "_llmga_guarded", False)]
refused, floats = [], 0
for c in classes:
    s = c.define_schema()
    types = {i.id: i.get_io_type() for i in s.inputs}
    for name, t in types.items():
        if t != "FLOAT":
            continue
        floats += 1
        for bad in (math.nan, math.inf, -math.inf):
            try:
                check_inputs(s.display_name, types, {name: bad})
            except LLMGANodeError as err:
                refused.append(str(err).startswith(s.display_name) and name in str(err))
RESULT["floats"] = floats
RESULT["refused"] = refused
"""
    )
    assert result["nodes"] >= 10 and result["unguarded"] == []
    assert result["floats"] >= 8 and len(result["refused"]) == 3 * result["floats"] and all(result["refused"])


def test_nan_temperature_is_refused_and_inf_stops_at_validation(comfy: ComfyClient) -> None:
    graph = mllm_graph(seed=710)
    graph["2"]["inputs"]["temperature"] = NAN  # JSON NaN passes ComfyUI's min/max checks (NaN < 0 is false)
    message = clear_error(comfy, graph, "LLMGAGeneratePrompt", "LLMGA Generate Prompt:")
    assert "temperature is nan" in message, message
    for value, kind in ((INF, "value_bigger_than_max"), (-INF, "value_smaller_than_min")):
        graph["2"]["inputs"]["temperature"] = value
        with pytest.raises(PromptRejected) as rejected:
            comfy.queue(graph)
        assert rejected.value.body["node_errors"]["2"]["errors"][0]["type"] == kind
    still_serving(comfy, seed=711)


def test_nan_timeout_of_the_remote_node_is_refused_before_any_connection(comfy: ComfyClient) -> None:
    with silent_server() as server:
        graph = {"1": remote(server.url, timeout_s=NAN), "2": show(["1", 0])}
        message = clear_error(comfy, graph, "LLMGARemoteMLLM", "LLMGA Remote MLLM:")
        assert "timeout_s is nan" in message and server.accepted == 0, message


def nan_mask() -> dict:
    """Core SolidMask with a NaN value: a NaN MASK (and, through MaskToImage, a NaN IMAGE) on a socket."""
    return {"class_type": "SolidMask", "inputs": {"value": NAN, "width": 64, "height": 64}}


def test_nan_images_and_masks_are_refused_by_name(comfy: ComfyClient) -> None:
    photo = comfy.upload_image("hostile_photo.png", png_bytes(64, 64, seed=61))
    graph = {
        "m": nan_mask(),
        "i": {"class_type": "MaskToImage", "inputs": {"mask": ["m", 0]}},
        "o": {
            "class_type": "LLMGAOutpaintCanvas",
            "inputs": {"image": ["i", 0], "left": 8, "top": 0, "right": 0, "bottom": 0, "fill": "black", "feather": 0},
        },
        "s": {"class_type": "PreviewImage", "inputs": {"images": ["o", 0]}},
    }
    message = clear_error(comfy, graph, "LLMGAOutpaintCanvas", "LLMGA Outpaint Canvas:")
    assert "image input has 12288 NaN or infinite pixels" in message, message
    graph = {
        "1": loader(),
        "p": {"class_type": "LoadImage", "inputs": {"image": photo}},
        "m": nan_mask(),
        "2": generate("inpainting", "", seed=720, image=["p", 0], mask=["m", 0]),
        "3": show(["2", 0]),
    }
    message = clear_error(comfy, graph, "LLMGAGeneratePrompt", "LLMGA Generate Prompt:")
    assert "mask input has 4096 NaN or infinite mask values" in message, message
    still_serving(comfy, seed=721)


def test_a_lone_surrogate_in_a_prompt_is_refused_by_name(comfy: ComfyClient) -> None:
    message = clear_error(
        comfy, mllm_graph(instruction="a fox \ud83d in snow", seed=730), "LLMGAGeneratePrompt", "LLMGA Generate Prompt:"
    )
    assert "instruction holds a broken character at position 6" in message, message
    still_serving(comfy, seed=731)


# --- hostile model folders ------------------------------------------------------------------------------------------


def _variant(server: ComfyServer, name: str, replace: dict[str, bytes], drop: tuple[str, ...] = ()) -> str:
    """A copy of the tiny Qwen2 folder in the server's llmga_mllm path with some files replaced."""
    folder = server.root / "models" / "llmga_mllm" / name
    if folder.exists():
        shutil.rmtree(folder)
    shutil.copytree(tiny_mllm_dir("qwen2"), folder)
    for file in drop:
        (folder / file).unlink()
    for file, data in replace.items():
        (folder / file).write_bytes(data)
    return name


def _pickle_with_code() -> bytes:
    """A .bin whose pickle names a Python class (harmless here; weights_only refuses any such global)."""
    import io

    out = io.BytesIO()
    torch.save({"model.embed_tokens.weight": torch.zeros(2, 2), "extra": argparse.Namespace(a=1)}, out)
    return out.getvalue()


@pytest.fixture(scope="module")
def hostile_folders(comfy_server: ComfyServer) -> dict[str, str]:
    index = json.loads((tiny_mllm_dir("qwen2") / "model.safetensors.index.json").read_text())
    index["weight_map"] = {k: "/etc/passwd" for k in index["weight_map"]}
    shards = ("model.safetensors.index.json", "model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors")
    return {
        "pickle": _variant(comfy_server, "llmga-Qwen2-0.5B-pickle", {"pytorch_model.bin": _pickle_with_code()}, shards),
        "config_list": _variant(comfy_server, "llmga-Qwen2-0.5B-config-list", {"config.json": b"[1, 2]"}),
        "shard_outside": _variant(
            comfy_server, "llmga-Qwen2-0.5B-shard-outside", {"model.safetensors.index.json": json.dumps(index).encode()}
        ),
    }


EXPECTED = {
    "pickle": "holds Python objects or code besides tensors (it refers to argparse.Namespace)",
    "config_list": "config.json holds a JSON list",
    "shard_outside": "model.safetensors.index.json: weight_map names '/etc/passwd'",
}


@pytest.mark.parametrize("kind", list(EXPECTED))
def test_hostile_mllm_folders_give_clear_errors(comfy: ComfyClient, hostile_folders: dict, kind: str) -> None:
    graph = {"1": loader(hostile_folders[kind]), "2": show(["1", 0])}
    message = checked(clear_error(comfy, graph, "LLMGAMLLMLoader", "LLMGA MLLM Loader:"))
    assert EXPECTED[kind] in message, message
    print(f"{kind}: {message}")
    still_serving(comfy, seed=740 + len(kind))
