"""The client against llama.cpp's real server (xllamacpp) on 127.0.0.1, serving the tiny LLMGA-Qwen2
folder exported with ``python -m llmga_core.export gguf``: the same tokens as the local path, streaming,
Cancel, and the errors a user meets (wrong model, wrong URL, missing key, no vision projector)."""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Iterator

import numpy as np
import pytest
import torch

from llmga_core.export.gguf import GGUFExport
from llmga_core.mllm import Conversation, ImageRef, add_task_turn, prepare_mllm_image, stop_strings_for
from llmga_core.mllm.generate import GenerationResult, SamplingSettings, run_turn
from llmga_core.mllm.image_prep import clip_resize_crop
from llmga_core.mllm.model import LoadedMLLM, load_mllm
from llmga_core.remote import RemoteCancelled, RemoteMLLM, RemoteMLLMError, parse_endpoint, png_bytes
from tests.fixtures.gguf_exports import exported_gguf
from tests.fixtures.llama_server import LlamaServer, llama_server, require_llama_server
from tests.fixtures.tiny_mllm import FAMILIES, tiny_mllm_dir

require_llama_server()

FAMILY = "qwen2"
NAME = FAMILIES[FAMILY].folder
GREEDY = SamplingSettings(temperature=0.0, max_new_tokens=16, repetition_penalty=1.0)


@pytest.fixture(scope="module")
def export() -> GGUFExport:
    return exported_gguf(FAMILY)


@pytest.fixture(scope="module")
def server(export: GGUFExport) -> Iterator[LlamaServer]:
    with llama_server(export.model, export.mmproj, alias=NAME) as running:
        yield running


@pytest.fixture(scope="module")
def local() -> LoadedMLLM:
    return load_mllm(tiny_mllm_dir(FAMILY), dtype=torch.float32)


def client_for(server: LlamaServer, engine: str = "llama.cpp", model: str = NAME, **kw: object) -> RemoteMLLM:
    return RemoteMLLM(parse_endpoint(server.url, engine, model, **kw))  # type: ignore[arg-type]


def text_turn(template: str) -> str:
    return add_task_turn(Conversation(template), "text-to-image", "A level 1 mouse monster", None).prompt()


def test_text_turn_gives_the_local_tokens_streamed_one_by_one(
    server: LlamaServer, local: LoadedMLLM, export: GGUFExport
) -> None:
    prompt = text_turn(export.template)
    stops = stop_strings_for(export.template)
    mine: GenerationResult = run_turn(local, prompt, None, GREEDY, stop_strings=stops)
    seen: list[tuple[int, str]] = []
    theirs = client_for(server).generate(prompt, GREEDY, stop_strings=stops, on_token=lambda t, s: seen.append((t, s)))
    assert theirs.token_ids == mine.token_ids
    assert theirs.text == mine.text
    assert [t for t, _ in seen] == theirs.token_ids
    assert all(b.startswith(a) for (_, a), (_, b) in itertools.pairwise(seen))
    assert theirs.stop_reason == "max_new_tokens" and theirs.first_token_s is not None
    assert theirs.tokens_per_s > 0
    assert theirs.prompt_length == len(local.tokenizer(prompt).input_ids)


def test_image_turn_sees_the_same_image_tokens(server: LlamaServer, local: LoadedMLLM, export: GGUFExport) -> None:
    picture = np.random.default_rng(3).integers(0, 256, (48, 64, 3), dtype=np.uint8)
    prepared = prepare_mllm_image("similar image", picture, None, local.clip_preprocess)
    ref = ImageRef("k", 64, 48, pixels=prepared.pixel_values)
    prompt = add_task_turn(Conversation(export.template), "similar image", "", ref).prompt()
    mine = run_turn(local, prompt, prepared.pixel_values, GREEDY)
    png = png_bytes(clip_resize_crop(prepared.square, local.clip_preprocess))
    theirs = client_for(server).generate(prompt, GREEDY, image_png=png)
    assert theirs.prompt_length == mine.prompt_length  # 576 image positions + the text, chunked as LLaVA does
    assert theirs.token_ids == mine.token_ids


def test_openai_chat_route_gives_the_same_text(server: LlamaServer, local: LoadedMLLM, export: GGUFExport) -> None:
    # llama.cpp's OpenAI endpoint applies the exported passthrough chat template: no byte is added.
    prompt = text_turn(export.template)
    mine = run_turn(local, prompt, None, GREEDY)
    theirs = client_for(server, engine="vllm").generate(prompt, GREEDY)
    assert theirs.text == mine.text


def test_cancel_mid_stream_closes_the_request_and_the_server_keeps_serving(server: LlamaServer) -> None:
    stop = threading.Event()
    count = 0

    def on_token(_token: int, _text: str) -> None:
        nonlocal count
        count += 1
        if count == 5:
            stop.set()

    long_run = SamplingSettings(temperature=1.0, max_new_tokens=3000)
    client = client_for(server)
    with pytest.raises(RemoteCancelled):
        client.generate(text_turn("qwen_2"), long_run, on_token=on_token, should_stop=stop.is_set)
    assert count < 3000
    deadline = time.monotonic() + 5  # the server notices the closed connection and drops the task
    while "cancel task" not in server.log_text() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert "cancel task" in server.log_text()
    again = client.generate(text_turn("qwen_2"), GREEDY)
    assert len(again.token_ids) == GREEDY.max_new_tokens


def test_wrong_model_name_lists_what_is_served(server: LlamaServer) -> None:
    with pytest.raises(RemoteMLLMError) as err:
        client_for(server, model="llmga-vicuna-7b").generate("hi", GREEDY)
    assert NAME in str(err.value) and "llmga-vicuna-7b" in str(err.value)


def test_a_v1_suffix_in_the_url_gets_the_http_status_and_the_fix(server: LlamaServer) -> None:
    client = RemoteMLLM(parse_endpoint(server.url + "/v1", "llama.cpp", NAME))
    with pytest.raises(RemoteMLLMError) as err:
        client.generate("hi", GREEDY)
    assert err.value.status == 404
    assert "HTTP 404" in str(err.value) and "without /v1" in str(err.value)


def test_api_key_and_missing_projector(export: GGUFExport) -> None:
    with llama_server(export.model, None, alias=NAME, api_key="sk-llmga-test") as guarded:
        with pytest.raises(RemoteMLLMError) as err:
            client_for(guarded).generate("hi", GREEDY)
        assert err.value.status == 401
        assert "LLMGA_REMOTE_API_KEY" in str(err.value) and "sk-llmga-test" not in str(err.value)
        keyed = client_for(guarded, api_key="sk-llmga-test")
        assert len(keyed.generate("hi", GREEDY).token_ids) == GREEDY.max_new_tokens
        with pytest.raises(RemoteMLLMError, match="--mmproj"):
            keyed.generate("USER: <image>\nhi ASSISTANT:", GREEDY, image_png=png_bytes(np.zeros((4, 4, 3), np.uint8)))
