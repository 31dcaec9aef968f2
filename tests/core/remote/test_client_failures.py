"""The client against peers that fail: nobody listening, a server that never answers, Cancel while
waiting. Real sockets on 127.0.0.1; the engine-backed cases are in test_client_llamacpp.py."""

from __future__ import annotations

import threading
import time

import pytest

from llmga_core.mllm.generate import SamplingSettings
from llmga_core.remote import RemoteCancelled, RemoteMLLM, RemoteMLLMError, parse_endpoint
from tests.fixtures.llama_server import free_port
from tests.fixtures.silent_server import silent_server


def test_nobody_listening_says_to_start_the_server() -> None:
    client = RemoteMLLM(parse_endpoint(f"http://127.0.0.1:{free_port()}", "llama.cpp", "m", 5))
    with pytest.raises(RemoteMLLMError, match="Could not connect") as err:
        client.generate("hi", SamplingSettings())
    assert err.value.status is None
    assert "is the server running" in str(err.value)


def test_a_server_that_never_answers_times_out_with_the_limit_named() -> None:
    with silent_server() as peer:
        client = RemoteMLLM(parse_endpoint(peer.url, "llama.cpp", "m", timeout_s=1.0))
        start = time.monotonic()
        with pytest.raises(RemoteMLLMError, match=r"did not answer within 1 s"):
            client.generate("hi", SamplingSettings())
        assert time.monotonic() - start < 5
        assert b"GET /v1/models" in peer.received


def test_cancel_while_waiting_hangs_up_at_once() -> None:
    with silent_server() as peer:
        client = RemoteMLLM(parse_endpoint(peer.url, "vllm", "m", timeout_s=60))
        stop = threading.Event()
        threading.Timer(0.5, stop.set).start()
        start = time.monotonic()
        with pytest.raises(RemoteCancelled):
            client.generate("hi", SamplingSettings(), should_stop=stop.is_set)
        assert time.monotonic() - start < 2
        assert peer.wait_closed(1, timeout=2), "the connection was not closed"
        assert b"GET /v1/models" in peer.received


def test_api_key_is_sent_as_bearer_and_never_in_errors() -> None:
    with silent_server() as peer:
        client = RemoteMLLM(parse_endpoint(peer.url, "vllm", "m", timeout_s=0.5, api_key="sk-topsecret"))
        with pytest.raises(RemoteMLLMError) as err:
            client.generate("hi", SamplingSettings())
        assert b"Authorization: Bearer sk-topsecret" in peer.received
        assert "sk-topsecret" not in str(err.value)
