"""Endpoint checks: plain http only to this machine, API key from the environment, never shown."""

from __future__ import annotations

import pytest

from llmga_core.errors import LLMGAInputError
from llmga_core.remote import api_key_from_env, parse_endpoint


@pytest.mark.parametrize(
    "url",
    ["http://127.0.0.1:8080", "http://localhost:8080/", "http://[::1]:8080", "http://127.0.0.2", "https://a.example"],
)
def test_accepted_urls(url: str) -> None:
    ep = parse_endpoint(url, "llama.cpp", "m")
    assert not ep.base_url.endswith("/")
    assert ep.base_url.startswith(url.split("://")[0] + "://")


def test_base_path_is_kept_without_trailing_slash() -> None:
    assert parse_endpoint("https://gw.example/llmga/", "vllm", "m").base_url == "https://gw.example/llmga"


@pytest.mark.parametrize(
    ("url", "words"),
    [
        ("http://10.0.0.5:8080", "https"),
        ("http://llmga.example.com", "https"),
        ("ftp://127.0.0.1", "http(s) URL"),
        ("127.0.0.1:8080", "http(s) URL"),
        ("https://user:pw@a.example", "credentials"),
        ("https://a.example/?key=1", "query"),
    ],
)
def test_rejected_urls_say_why(url: str, words: str) -> None:
    with pytest.raises(LLMGAInputError, match=None) as err:
        parse_endpoint(url, "llama.cpp", "m")
    assert words in str(err.value)


def test_other_settings_are_checked() -> None:
    with pytest.raises(LLMGAInputError, match="engine"):
        parse_endpoint("http://127.0.0.1", "ollama", "m")
    with pytest.raises(LLMGAInputError, match="model name is empty"):
        parse_endpoint("http://127.0.0.1", "vllm", "  ")
    with pytest.raises(LLMGAInputError, match="timeout"):
        parse_endpoint("http://127.0.0.1", "vllm", "m", timeout_s=0)


def test_api_key_comes_from_the_named_variable_and_stays_out_of_repr(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LLMGA_TEST_KEY", "sk-secret")
    key = api_key_from_env("LLMGA_TEST_KEY")
    assert key == "sk-secret"
    ep = parse_endpoint("http://127.0.0.1:1", "vllm", "m", api_key=key)
    assert ep.headers() == {"Authorization": "Bearer sk-secret"}
    assert "sk-secret" not in repr(ep)
    monkeypatch.delenv("LLMGA_TEST_KEY")
    assert api_key_from_env("LLMGA_TEST_KEY") is None
    assert api_key_from_env("") is None
    with pytest.raises(LLMGAInputError, match="environment variable name"):
        api_key_from_env("sk-abc.def")


@pytest.mark.parametrize("name", ["HOME", "AWS_SECRET_ACCESS_KEY", "PATH", "LLMGA_ALLOWED_KEY_ENVS"])
def test_a_workflow_may_name_only_llmga_variables(monkeypatch: pytest.MonkeyPatch, name: str) -> None:
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "do-not-send")
    with pytest.raises(LLMGAInputError, match=r"starts with LLMGA_") as err:
        api_key_from_env(name)
    assert "do-not-send" not in str(err.value)


def test_the_server_admin_can_allow_more_names(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-allowed")
    monkeypatch.setenv("LLMGA_ALLOWED_KEY_ENVS", " OPENAI_API_KEY , OTHER")
    assert api_key_from_env("OPENAI_API_KEY") == "sk-allowed"
    with pytest.raises(LLMGAInputError):
        api_key_from_env("HOME")


def test_the_key_is_sent_only_over_https_or_to_this_machine() -> None:
    from llmga_core.remote import Endpoint

    assert Endpoint("https://llmga.example.com", "vllm", "m", api_key="k").headers() == {"Authorization": "Bearer k"}
    assert Endpoint("http://[::1]:8080", "vllm", "m", api_key="k").headers() == {"Authorization": "Bearer k"}
    assert Endpoint("http://llmga.example.com", "vllm", "m", api_key="k").headers() == {}
