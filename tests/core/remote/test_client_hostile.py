"""The client against a hostile or broken engine (tests/fixtures/hostile_engine.py, real sockets): every
body and event is capped, the reply stops at max_new_tokens whatever the server does, a stream without
its end event is an error, and JSON of unexpected shapes gets a message instead of a Python error."""

from __future__ import annotations

import itertools
import json

import pytest

from llmga_core.errors import LLMGAInputError
from llmga_core.mllm.generate import SamplingSettings
from llmga_core.remote import RemoteMLLM, RemoteMLLMError, parse_endpoint
from tests.fixtures.hostile_engine import hostile_engine

MODELS = (200, json.dumps({"data": [{"id": "m"}]}).encode())
PROPS = (200, json.dumps({"media_marker": "<__media__>", "eos_token": "</s>"}).encode())


def event(payload: dict) -> bytes:
    return b"data: " + json.dumps(payload).encode() + b"\n\n"


def client(url: str, engine: str = "llama.cpp") -> RemoteMLLM:
    return RemoteMLLM(parse_endpoint(url, engine, "m", timeout_s=10))


def run(routes: dict, engine: str = "llama.cpp", tokens: int = 8):
    with hostile_engine(routes) as peer:
        return client(peer.url, engine).generate("hi", SamplingSettings(max_new_tokens=tokens, temperature=0))


def test_an_oversized_models_body_is_refused() -> None:
    huge = (200, b'{"data": [' + b'{"id": "x"},' * 500_000 + b'{"id": "m"}]}')  # 6 MB
    with pytest.raises(RemoteMLLMError, match="more than 4 MB"):
        run({"/v1/models": huge})


@pytest.mark.parametrize(
    ("models", "props", "expected"),
    [
        ({"data": "m"}, {}, "without a list of models (an object with keys data)"),
        ([1, 2], {}, "without a list of models (a JSON list)"),
        ({"data": [{"id": "m"}]}, [1], "gave no /props object (a JSON list)"),
    ],
)
def test_json_of_unexpected_shapes_is_explained(models: object, props: object, expected: str) -> None:
    with pytest.raises(RemoteMLLMError) as err:
        run({"/v1/models": (200, json.dumps(models).encode()), "/props": (200, json.dumps(props).encode())})
    assert expected in str(err.value)


def test_odd_entries_and_fields_are_ignored_not_fatal() -> None:
    models = {"data": [1, None, {"id": 5}, {"id": "m", "aliases": "zz"}]}
    props = {"modalities": "vision", "media_marker": 7, "eos_token": ["x"]}
    routes = {
        "/v1/models": (200, json.dumps(models).encode()),
        "/props": (200, json.dumps(props).encode()),
        "/completion": (200, lambda: [event({"content": "ok"}), event({"content": "", "stop": True})]),
    }
    assert run(routes).text == "ok"
    with hostile_engine(routes) as peer, pytest.raises(RemoteMLLMError, match="no vision projector"):
        client(peer.url).generate("<image>hi", SamplingSettings(), image_png=b"png")  # "vision" is not {vision: true}


def test_a_server_that_never_stops_is_cut_at_max_new_tokens() -> None:
    endless = lambda: (event({"content": f"t{i} "}) for i in itertools.count())  # noqa: E731
    result = run({"/v1/models": MODELS, "/props": PROPS, "/completion": (200, endless)}, tokens=5)
    assert result.text == "t0 t1 t2 t3 t4 " and result.stop_reason == "max_new_tokens"
    with_ids = lambda: (event({"content": "ab", "tokens": [1, 2]}) for _ in itertools.count())  # noqa: E731
    result = run({"/v1/models": MODELS, "/props": PROPS, "/completion": (200, with_ids)}, tokens=5)
    assert result.token_ids == [1, 2, 1, 2] and result.text == "abab"  # whole events only, never past the limit
    openai = lambda: (  # noqa: E731
        event({"choices": [{"delta": {"content": "x"}, "finish_reason": None}]}) for _ in itertools.count()
    )
    result = run({"/v1/models": MODELS, "/v1/chat/completions": (200, openai)}, engine="vllm", tokens=3)
    assert result.text == "xxx" and result.stop_reason == "max_new_tokens"


def test_a_huge_single_event_is_refused_without_reading_it_whole() -> None:
    huge = lambda: [b"data: " + b"x" * (20 << 20) + b"\n\n"]  # noqa: E731  (20 MB, as in the issue)
    with pytest.raises(RemoteMLLMError, match="an event of more than 1048576 bytes"):
        run({"/v1/models": MODELS, "/props": PROPS, "/completion": (200, huge)})


@pytest.mark.parametrize("engine", ["llama.cpp", "vllm"])
def test_a_stream_without_its_end_event_is_an_error(engine: str) -> None:
    if engine == "llama.cpp":
        routes = {"/v1/models": MODELS, "/props": PROPS, "/completion": (200, lambda: [event({"content": "half"})])}
    else:
        cut = lambda: [event({"choices": [{"delta": {"content": "half"}}]}), b"data: [DONE]\n\n"]  # noqa: E731
        routes = {"/v1/models": MODELS, "/v1/chat/completions": (200, cut)}
    with pytest.raises(RemoteMLLMError, match="without its end-of-reply event after 4 characters"):
        run(routes, engine=engine)


def test_an_event_of_unexpected_shape_is_explained() -> None:
    bad = lambda: [event({"content": "a", "tokens": "xyz"})]  # noqa: E731
    with pytest.raises(RemoteMLLMError, match="event of an unexpected shape"):
        run({"/v1/models": MODELS, "/props": PROPS, "/completion": (200, bad)})


@pytest.mark.parametrize(
    "url", ["http://[::1", "http://127.0.0.1:99999", "http://127.0.0.1:port", "http://127.0.0.1:0"]
)
def test_malformed_urls_are_explained(url: str) -> None:
    with pytest.raises(LLMGAInputError, match="endpoint"):
        parse_endpoint(url, "llama.cpp", "m")
