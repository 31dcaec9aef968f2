"""input_ids: parity with the original tokenizer_image_token on real tokenizers, and the BOS rule."""

from __future__ import annotations

import pytest

from llmga_core.errors import LLMGAInputError
from llmga_core.mllm import (
    IMAGE_TOKEN_INDEX,
    Conversation,
    ImageRef,
    build_input_ids,
    expand_image_tokens,
    image_token_positions,
    tokenizer_input_ids,
)
from tests.core.mllm.golden import load_json
from tests.core.mllm.tokenizers import TOKENIZER_NAMES, TokenizerUnavailable, load_tokenizer

GOLDEN = load_json("input_ids.json")["cases"]
_loaded: dict[str, object] = {}


def _tokenizer(name: str):
    if name not in _loaded:
        try:
            _loaded[name] = load_tokenizer(name)
        except TokenizerUnavailable as exc:
            pytest.skip(f"REAL TOKENIZER {name!r} UNAVAILABLE, parity not checked: {exc}")
    return _loaded[name]


@pytest.mark.parametrize("name", TOKENIZER_NAMES)
def test_input_ids_match_original_on_real_tokenizer(name):
    cases = [c for c in GOLDEN if c["tokenizer"] == name]
    assert len(cases) >= 9
    tok = _tokenizer(name)
    for case in cases:
        assert tokenizer_input_ids(case["prompt"], tok) == case["input_ids"], case["label"]


def test_real_tokenizer_facts_behind_the_bos_rule():
    qwen, llama = _tokenizer("qwen25"), _tokenizer("lenml-llama2")
    prompt = Conversation("qwen_2").ask("hi", image=ImageRef("k")).prompt()
    ids = tokenizer_input_ids(prompt, qwen)
    assert ids.count(IMAGE_TOKEN_INDEX) == 1 and qwen.bos_token_id is None
    # chunk rule: differs from encoding the text after <image> together with the text before it
    p = Conversation("llava_v1").ask("Generate a similar image.", image=ImageRef("k")).prompt()
    ids = tokenizer_input_ids(p, llama)
    assert ids[0] == llama.bos_token_id and ids.count(llama.bos_token_id) == 1
    after = ids[image_token_positions(ids)[0] + 1 :]
    assert after == llama(p.split("<image>")[1]).input_ids[1:]


class _Tok:
    """A toy tokenizer: one id per character, BOS=1 added to every call."""

    bos_token_id = 1

    def __call__(self, text):
        return type("R", (), {"input_ids": [1, *(ord(c) for c in text)]})()


def test_bos_kept_once_and_every_later_chunk_loses_its_first_token():
    ids = tokenizer_input_ids("ab<image>cd<image>", _Tok())
    assert ids == [1, 97, 98, -200, 99, 100, -200]


def test_first_token_of_later_chunks_dropped_even_if_not_bos():
    # The original drops x[1:] of every later chunk once the first chunk starts with BOS.
    encode = iter([[1, 10], [20, 21], [30]]).__next__
    assert build_input_ids("a<image>b<image>c", lambda _t: encode(), 1) == [1, 10, -200, 21, -200]


def test_no_bos_nothing_dropped():
    assert build_input_ids("a<image>b", lambda t: [ord(c) for c in t], None) == [97, -200, 98]
    assert build_input_ids("<image>b", lambda t: [ord(c) for c in t], 98) == [-200, 98]  # empty first chunk


def test_expand_image_tokens_and_positions():
    ids = [1, 5, -200, 7, -200]
    assert image_token_positions(ids) == [2, 4]
    assert expand_image_tokens(ids, 32000, 3) == [1, 5, 32000, 32000, 32000, 7, 32000, 32000, 32000]
    assert len(expand_image_tokens([-200], 9)) == 576
    with pytest.raises(LLMGAInputError):
        expand_image_tokens(ids, 1, 0)
