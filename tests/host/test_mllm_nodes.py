"""The LLMGA MLLM nodes in the real host, on tiny random-weight folders in the released layouts."""

from __future__ import annotations

import json
import threading
import time

import pytest

from tests.conftest import png_bytes
from tests.fixtures.mllm_folders import BROKEN
from tests.harness.client import ComfyClient
from tests.harness.server import ComfyServer

QWEN = "llmga-Qwen2-0.5B-full-finetune"
OLD_LLAMA2 = "llmga-llama-2-7b-chat-full-finetune"  # stored without tower weights, as the old release
CLIP_FILE = "clip_vision/model.safetensors"
FAMILIES = [
    "llmga-vicuna-7b-v1.5-full-finetune",
    "llmga-llama3-8b-it-full-finetune",
    OLD_LLAMA2,
    "llmga-mistral_instruct-full-finetune",
    QWEN,
    "llmga-Phi-3-mini-128k-full-finetune",
    "llmga-gemma-2b-it-full-finetune",
]


def loader(model: str = QWEN, precision: str = "auto") -> dict:
    return {
        "class_type": "LLMGAMLLMLoader",
        "inputs": {
            "model": model,
            "vision_tower": CLIP_FILE if model == OLD_LLAMA2 else "from checkpoint",
            "template": "auto",
            "precision": precision,
            "quantization": "none",
        },
    }


def _on_loader(class_type: str, seed: int, temperature: float, top_p: float, tokens: int, **inputs: object) -> dict:
    """An MLLM node on the loader at node "1" with these sampling settings."""
    sampling = {"seed": seed, "temperature": temperature, "top_p": top_p, "max_new_tokens": tokens}
    return {"class_type": class_type, "inputs": {"mllm": ["1", 0], **inputs, **sampling}}


def generate(
    task: str,
    instruction: str,
    seed: int = 1,
    tokens: int = 12,
    temperature: float = 0.7,
    top_p: float = 0.9,
    **links: list,
) -> dict:
    return _on_loader(
        "LLMGAGeneratePrompt", seed, temperature, top_p, tokens, task=task, instruction=instruction, **links
    )


def edit_prompts(
    image: list, instruction: str, seed: int = 3, tokens: int = 8, temperature: float = 0.7, top_p: float = 0.9
) -> dict:
    return _on_loader("LLMGAEditPrompts", seed, temperature, top_p, tokens, image=image, instruction=instruction)


def show(source: list) -> dict:
    return {"class_type": "PreviewAny", "inputs": {"source": source}}


def node_ui(run, node: str) -> dict:
    return run.outputs[node]


@pytest.fixture(scope="module")
def picture(comfy: ComfyClient) -> str:
    return comfy.upload_image("mllm_src.png", png_bytes(64, 48, seed=21))


def test_loader_lists_the_folders_and_every_family_writes_a_prompt(comfy: ComfyClient) -> None:
    options = comfy.object_info("LLMGAMLLMLoader")["input"]["required"]["model"][1]["options"]
    assert set(FAMILIES) <= set(options)
    for i, family in enumerate(FAMILIES):
        graph = {
            "1": loader(family),
            "2": generate("text-to-image", "A level 1 mouse monster", seed=i),
            "3": show(["2", 0]),
        }
        run = comfy.run(graph)
        ui = node_ui(run, "2")
        assert isinstance(ui["text"][0], str) and isinstance(ui["reply"][0], str), family
        turns = json.loads(ui["conversation"][0])
        assert turns[0]["user"] == "A level 1 mouse monster" and turns[0]["reply"] is not None, family


def test_image_tasks_and_a_second_turn(comfy: ComfyClient, picture: str) -> None:
    graph = {
        "1": loader(),
        "10": {"class_type": "LoadImage", "inputs": {"image": picture}},
        "11": {
            "class_type": "LLMGAOutpaintCanvas",
            "inputs": {
                "image": ["10", 0],
                "left": 16,
                "top": 0,
                "right": 16,
                "bottom": 0,
                "fill": "black",
                "feather": 0,
            },
        },
        "2": generate("similar image", "", image=["10", 0]),
        "3": generate("outpainting", "", image=["11", 0], mask=["11", 1]),
        "4": generate("inpainting", "a cat", image=["11", 0], mask=["11", 1]),
        "5": generate("text-to-image", "make it level 100", seed=2, conversation=["2", 2]),
        "6": show(["2", 0]),
        "7": show(["3", 0]),
        "8": show(["4", 1]),
        "9": show(["5", 0]),
    }
    run = comfy.run(graph)
    second = json.loads(node_ui(run, "5")["conversation"][0])
    assert [t["user"] for t in second][1] == "make it level 100"
    assert len(second) == 2 and second[0]["reply"] is not None
    assert json.loads(node_ui(run, "3")["conversation"][0])[0]["task"] == "outpainting"


def test_an_image_list_gives_one_prompt_per_image_and_a_batch_says_how(
    comfy: ComfyClient, comfy_server: ComfyServer, picture: str
) -> None:
    """ComfyUI maps the node over a list (Rebatch Images, batch_size 1); a batch uses its first image and the log
    says how to get one prompt per image."""
    batch = {"class_type": "RepeatImageBatch", "inputs": {"image": ["10", 0], "amount": 3}}
    graph = {
        "1": loader(),
        "10": {"class_type": "LoadImage", "inputs": {"image": picture}},
        "11": batch,
        "12": {"class_type": "RebatchImages", "inputs": {"images": ["11", 0], "batch_size": 1}},
        "2": generate("similar image", "", seed=41, tokens=4, image=["12", 0]),
        "3": show(["2", 0]),
        "4": generate("similar image", "", seed=42, tokens=4, image=["11", 0]),
        "5": show(["4", 0]),
    }
    run = comfy.run(graph)
    assert len(node_ui(run, "3")["text"]) == 3
    assert len(node_ui(run, "5")["text"]) == 1
    assert "got a batch of 3 images and uses the first" in comfy_server.log_text()


def test_edit_prompts_give_source_and_target(comfy: ComfyClient, picture: str) -> None:
    graph = {
        "1": loader(),
        "10": {"class_type": "LoadImage", "inputs": {"image": picture}},
        "2": edit_prompts(["10", 0], "make it snowy"),
        "3": show(["2", 0]),
        "4": show(["2", 1]),
    }
    run = comfy.run(graph)
    turns = json.loads(node_ui(run, "2")["conversation"][0])
    assert [t["task"] for t in turns] == ["edit source", "chat"] or len(turns) == 2
    assert turns[1]["user"] == "make it snowy"


def test_identical_inputs_are_cached_and_a_new_seed_reruns(comfy: ComfyClient) -> None:
    graph = {"1": loader(), "2": generate("text-to-image", "a lighthouse", seed=40), "3": show(["2", 0])}
    first = comfy.run(graph)
    again = comfy.run(graph)
    cached = [d for kind, d in again.messages if kind == "execution_cached"]
    assert cached and "2" in cached[0]["nodes"]
    graph["2"]["inputs"]["seed"] = 41
    reseeded = comfy.run(graph)
    assert "2" not in next(d for kind, d in reseeded.messages if kind == "execution_cached")["nodes"]
    assert "2" in first.outputs and "2" in reseeded.outputs


def test_same_seed_gives_the_same_text(comfy: ComfyClient) -> None:
    """Two real executions (the loaders differ only in a setting that changes nothing on CPU, so the cache
    cannot answer for the second): same seed, same sampled text."""
    replies = []
    for precision in ("auto", "fp32"):
        graph = {
            "1": loader(),
            "2": generate("text-to-image", "a quiet harbor", seed=77, tokens=16),
            "3": show(["2", 1]),
        }
        graph["1"]["inputs"]["precision"] = precision
        run = comfy.run(graph)
        assert "2" in run.outputs  # executed, not cached
        replies.append(run.outputs["2"]["reply"][0])
    assert replies[0] == replies[1]


def test_incomplete_folder_says_which_files_are_missing(comfy: ComfyClient) -> None:
    graph = {"1": loader(BROKEN), "2": generate("text-to-image", "a fox"), "3": show(["2", 0])}
    err = comfy.run(graph, expect_error=True).error()
    assert err is not None and err["node_type"] == "LLMGAMLLMLoader"
    message = err["exception_message"]
    assert "safetensors" in message and "models/llmga/mllm" in message.replace("\\", "/"), message
    comfy.run({"1": loader(), "2": generate("text-to-image", "a fox", seed=5), "3": show(["2", 0])})


def test_image_task_without_image_is_explained(comfy: ComfyClient) -> None:
    graph = {"1": loader(), "2": generate("similar image", "", seed=6), "3": show(["2", 0])}
    err = comfy.run(graph, expect_error=True).error()
    assert err is not None and "needs an image" in err["exception_message"]


def test_cancel_stops_generation_within_a_token_and_the_server_keeps_serving(comfy: ComfyClient) -> None:
    graph = {"1": loader(), "2": generate("text-to-image", "a long story", seed=8, tokens=4000), "3": show(["2", 0])}
    graph["2"]["inputs"]["temperature"] = 1.0
    comfy.run({"1": loader(), "2": generate("text-to-image", "warm up", seed=9), "3": show(["2", 0])})
    prompt_id = comfy.queue(graph)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:  # wait until it is generating
        queue = comfy.get_json("/queue")
        if any(item[1] == prompt_id for item in queue["queue_running"]):
            break
        time.sleep(0.05)
    time.sleep(1.0)
    sent = time.monotonic()
    threading.Thread(target=comfy.interrupt).start()
    run = comfy.wait(prompt_id, timeout=60)
    stopped_after = time.monotonic() - sent
    kinds = [kind for kind, _ in run.messages]
    assert "execution_interrupted" in kinds, kinds
    assert stopped_after < 5, stopped_after
    comfy.run({"1": loader(), "2": generate("text-to-image", "after cancel", seed=10), "3": show(["2", 0])})


def test_folder_without_tower_names_the_fix(comfy: ComfyClient) -> None:
    graph = {"1": loader(OLD_LLAMA2), "2": generate("text-to-image", "a fox", seed=11), "3": show(["2", 0])}
    graph["1"]["inputs"]["vision_tower"] = "from checkpoint"
    err = comfy.run(graph, expect_error=True).error()
    assert err is not None and "models/clip_vision" in err["exception_message"]
