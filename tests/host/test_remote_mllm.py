"""LLMGA Remote MLLM in the real host, against llama.cpp's real server (xllamacpp) on 127.0.0.1 serving a
tiny LLMGA folder exported to GGUF: the prompt nodes give what the local loader gives, and every failure
is a clear node error after which ComfyUI keeps serving."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator

import pytest

from tests.conftest import png_bytes
from tests.fixtures.gguf_exports import exported_gguf
from tests.fixtures.llama_server import LlamaServer, free_port, llama_server, require_llama_server
from tests.fixtures.silent_server import silent_server
from tests.fixtures.tiny_mllm import FAMILIES
from tests.harness.client import ComfyClient

require_llama_server()

# vicuna: its generation_config sets no repetition penalty, so greedy decoding means the same thing in
# transformers and in llama.cpp (see README "Scaling out" for Qwen2's 1.1 penalty).
FAMILY = "vicuna"
NAME = FAMILIES[FAMILY].folder


@pytest.fixture(scope="module")
def engine() -> Iterator[LlamaServer]:
    export = exported_gguf(FAMILY)
    with llama_server(export.model, export.mmproj, alias=NAME) as server:
        yield server


def remote(url: str, model: str = NAME, timeout_s: float = 60.0) -> dict:
    return {
        "class_type": "LLMGARemoteMLLM",
        "inputs": {
            "endpoint": url,
            "engine": "llama.cpp server",
            "model": model,
            "template": "auto",
            "timeout_s": timeout_s,
            "api_key_env": "LLMGA_REMOTE_API_KEY",
            "image_size": 336,
        },
    }


def local() -> dict:
    return {
        "class_type": "LLMGAMLLMLoader",
        "inputs": {
            "model": NAME,
            "vision_tower": "from checkpoint",
            "template": "auto",
            "precision": "fp32",
            "quantization": "none",
        },
    }


def generate(instruction: str, **links: list) -> dict:
    return {
        "class_type": "LLMGAGeneratePrompt",
        "inputs": {
            "mllm": ["1", 0],
            "task": "text-to-image",
            "instruction": instruction,
            "seed": 3,
            "temperature": 0.0,
            "top_p": 1.0,
            "max_new_tokens": 12,
            **links,
        },
    }


def two_turns(first: dict, idea: str = "A level 1 mouse monster") -> dict:
    return {
        "1": first,
        "2": generate(idea),
        "3": generate("Now level 100", conversation=["2", 2]),
        "4": {"class_type": "PreviewAny", "inputs": {"source": ["3", 0]}},
    }


def test_remote_turns_equal_the_local_loader(comfy: ComfyClient, engine: LlamaServer) -> None:
    here = comfy.run(two_turns(local()))
    there = comfy.run(two_turns(remote(engine.url)))
    for node in ("2", "3"):
        assert there.outputs[node]["reply"] == here.outputs[node]["reply"], node
        assert there.outputs[node]["conversation"] == here.outputs[node]["conversation"], node
    template = here.outputs["1"]["text"][0].split(": template ")[1].split(" ")[0]
    assert there.outputs["1"]["text"][0].endswith(f": template {template}")


@pytest.mark.parametrize(
    ("make_url", "model", "expected"),
    [
        (lambda e: e.url, "llmga-Qwen2-7B", "set the model name"),
        (lambda e: f"http://127.0.0.1:{free_port()}", NAME, "Could not connect"),
        (lambda e: "http://10.255.0.1:8080", NAME, "https"),
    ],
    ids=["wrong-model", "server-down", "plain-http-elsewhere"],
)
def test_bad_settings_are_explained_and_the_host_keeps_serving(
    comfy: ComfyClient, engine: LlamaServer, make_url, model: str, expected: str
) -> None:
    err = comfy.run(two_turns(remote(make_url(engine), model)), expect_error=True).error()
    assert err is not None and expected in err["exception_message"], err
    assert err["exception_message"].startswith("LLMGA Remote MLLM:")
    after = comfy.run(two_turns(remote(engine.url), idea=f"a fox after {model} at {make_url(engine)}"))
    assert after.outputs["3"]["reply"][0]


def test_a_stuck_server_times_out(comfy: ComfyClient) -> None:
    with silent_server() as peer:
        start = time.monotonic()
        err = comfy.run(two_turns(remote(peer.url, timeout_s=1.0)), expect_error=True).error()
        assert err is not None and "did not answer within 1 s" in err["exception_message"], err
        assert time.monotonic() - start < 20


def test_cancel_hangs_up_on_the_server_and_interrupts(comfy: ComfyClient) -> None:
    with silent_server() as peer:
        prompt_id = comfy.queue(two_turns(remote(peer.url, timeout_s=120.0)))
        deadline = time.monotonic() + 60
        while peer.accepted == 0 and time.monotonic() < deadline:  # the node is waiting on the server
            time.sleep(0.05)
        assert peer.accepted == 1
        sent = time.monotonic()
        threading.Thread(target=comfy.interrupt).start()
        run = comfy.wait(prompt_id, timeout=60)
        assert "execution_interrupted" in [kind for kind, _ in run.messages]
        assert time.monotonic() - sent < 5
        assert peer.wait_closed(1, timeout=5), "the request's connection stayed open"


def test_image_tasks_and_editing_captions_run_remotely(comfy: ComfyClient, engine: LlamaServer) -> None:
    picture = comfy.upload_image("remote_src.png", png_bytes(64, 48, seed=31))
    graph = {
        "1": remote(engine.url),
        "10": {"class_type": "LoadImage", "inputs": {"image": picture}},
        "2": generate("", image=["10", 0]),
        "3": {
            "class_type": "LLMGAEditPrompts",
            "inputs": {
                "mllm": ["1", 0],
                "image": ["10", 0],
                "instruction": "make it snowy",
                "seed": 4,
                "temperature": 0.0,
                "top_p": 1.0,
                "max_new_tokens": 8,
            },
        },
        "4": {"class_type": "PreviewAny", "inputs": {"source": ["2", 0]}},
        "5": {"class_type": "PreviewAny", "inputs": {"source": ["3", 1]}},
    }
    graph["2"]["inputs"]["task"] = "similar image"
    run = comfy.run(graph)
    turns = json.loads(run.outputs["2"]["conversation"][0])
    assert turns[0]["reply"] is not None and run.outputs["2"]["images"], run.outputs["2"]
    edit = run.outputs["3"]["text"][0]
    assert edit.startswith("source: ") and "\ntarget: " in edit
    assert len(json.loads(run.outputs["3"]["conversation"][0])) == 2
