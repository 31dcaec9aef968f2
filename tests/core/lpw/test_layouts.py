"""Chunk arithmetic and tokenization helpers, with a fake character tokenizer (no model)."""

from __future__ import annotations

import pytest
import torch

from llmga_core.errors import LLMGAInputError
from llmga_core.lpw import CLIP_G_TOKENS, CLIP_L_TOKENS, plain_tokens, weighted_tokens
from llmga_core.lpw.layouts import (
    CHUNK_BODY,
    CHUNK_LENGTH,
    chunk_count,
    chunk_windows,
    join_full,
    join_trimmed,
    pad_to_chunks,
    spread_weights,
)
from tests.core.lpw.fakes import BOS, EOS, char_tokenize, native_comfy_chunks


@pytest.mark.parametrize(
    ("n", "cap", "expected"),
    [
        (0, 4, 1),
        (1, 4, 1),
        (75, 4, 1),
        (76, 4, 2),
        (150, 4, 2),
        (151, 4, 3),
        (300, 4, 4),
        (301, 4, 4),
        (226, 3, 3),
        (1000, 3, 3),
        (80, 1, 1),
    ],
)
def test_chunk_count(n: int, cap: int, expected: int) -> None:
    assert chunk_count(n, cap) == expected


@pytest.mark.parametrize("bad", [0, -1, 2.5, "3"])
def test_bad_max_chunks_is_a_clear_error(bad) -> None:
    with pytest.raises(LLMGAInputError, match="max_chunks"):
        chunk_count(10, bad)


def test_padding_puts_eos_after_the_padding() -> None:
    padded = pad_to_chunks([5, 6, 7], 1, CLIP_G_TOKENS)
    assert len(padded) == CHUNK_LENGTH
    assert padded[:4] == [BOS, 5, 6, 7]
    assert padded[4:-1] == [0] * 72  # SDXL's second tokenizer pads with "!" (id 0)
    assert padded[-1] == EOS
    assert pad_to_chunks([5], 2, CLIP_L_TOKENS) == [BOS, 5] + [EOS] * 150


def test_padding_refuses_overflow() -> None:
    with pytest.raises(ValueError, match="truncate"):
        pad_to_chunks(list(range(76)), 1, CLIP_L_TOKENS)


def test_windows_are_bos_75_tokens_eos_with_fixed_boundaries() -> None:
    content = list(range(1, 201))  # 200 tokens -> 3 chunks
    windows = chunk_windows(pad_to_chunks(content, 3, CLIP_G_TOKENS), CLIP_G_TOKENS)
    assert [len(w) for w in windows] == [77, 77, 77]
    for i, window in enumerate(windows):
        assert window[0] == BOS and window[-1] == EOS
        body = content[i * CHUNK_BODY : (i + 1) * CHUNK_BODY]
        assert window[1 : 1 + len(body)] == body
        assert window[1 + len(body) : -1] == [0] * (CHUNK_BODY - len(body))


def test_windows_reject_bad_lengths() -> None:
    with pytest.raises(ValueError):
        chunk_windows([BOS] * 80, CLIP_L_TOKENS)


def test_spread_weights_frames_each_chunk_with_ones() -> None:
    weights = [2.0] * 80
    spread = spread_weights(weights, 2)
    assert len(spread) == 154
    assert spread[0] == 1.0 and spread[1:76] == [2.0] * 75 and spread[76] == 1.0
    assert spread[77] == 1.0 and spread[78:83] == [2.0] * 5 and spread[83:] == [1.0] * 71
    assert spread_weights([], 3) == [1.0] * 231


def test_join_full_and_trimmed_lengths_and_order() -> None:
    chunks = [torch.arange(77).float().reshape(1, 77, 1) + 100 * i for i in range(3)]
    full = join_full(chunks)
    assert full.shape == (1, 231, 1)
    trimmed = join_trimmed(chunks)
    assert trimmed.shape == (1, 3 * 75 + 2, 1)
    flat = trimmed.flatten().tolist()
    assert flat[0] == 0 and flat[75] == 75  # chunk 0 keeps BOS, drops EOS (76)
    assert flat[76] == 101  # chunk 1 starts after its BOS
    assert flat[151] == 201 and flat[-1] == 276  # last chunk keeps its EOS
    assert join_trimmed(chunks[:1]) is chunks[0]


def test_weighted_tokens_tokenize_each_run_and_count_drops() -> None:
    tokens = weighted_tokens("ab (cd) [e]", char_tokenize, max_tokens=4)
    assert tokens.ids == (ord("a"), ord("b"), ord("c"), ord("d"))
    assert tokens.weights == (1.0, 1.0, 1.1, 1.1)
    assert tokens.dropped == 1


def test_weighted_tokens_tokenizer_sees_runs_not_the_whole_prompt() -> None:
    seen: list[str] = []

    def spy(text: str) -> list[int]:
        seen.append(text)
        return char_tokenize(text)

    weighted_tokens("a (b) c", spy, 300)
    assert seen == ["a ", "b", " c"]


def test_plain_tokens_keep_brackets_literal() -> None:
    tokens = plain_tokens("(a:2)", char_tokenize, 300)
    assert tokens.ids == tuple(ord(c) for c in "(a:2)")
    assert set(tokens.weights) == {1.0}
    assert plain_tokens("x" * 310, char_tokenize, 300).dropped == 10
    assert plain_tokens("", char_tokenize, 300) == plain_tokens("   ", char_tokenize, 300)


# --- Spec 2.5, token level: where LPW's ids coincide with ComfyUI's native chunking and where not.


@pytest.mark.parametrize("n", [0, 1, 10, 75, 76, 150, 200, 225])
def test_sd15_unweighted_ids_equal_native_up_to_the_cap(n: int) -> None:
    ids = list(range(1, n + 1))
    lpw = chunk_windows(pad_to_chunks(ids, chunk_count(n, 3), CLIP_L_TOKENS), CLIP_L_TOKENS)
    assert lpw == native_comfy_chunks(ids, pad=EOS)


def test_sd15_beyond_the_cap_lpw_truncates_native_keeps_going() -> None:
    tokens = plain_tokens("x" * 260, char_tokenize, CHUNK_BODY * 3)
    assert tokens.dropped == 35
    assert chunk_count(len(tokens.ids), 3) == 3
    assert len(native_comfy_chunks(list(range(260)), EOS)) == 4


@pytest.mark.parametrize("n", [1, 10, 74])
def test_sdxl_clip_g_ids_differ_only_after_the_text(n: int) -> None:
    ids = list(range(1, n + 1))
    (lpw,) = chunk_windows(pad_to_chunks(ids, 1, CLIP_G_TOKENS), CLIP_G_TOKENS)
    (native,) = native_comfy_chunks(ids, pad=0)
    assert lpw[: n + 1] == native[: n + 1]
    assert lpw[n + 1] == 0 and native[n + 1] == EOS  # native ends the text at once, LPW after the "!"s
    assert lpw.index(EOS) == 76 and native.index(EOS) == n + 1


def test_sdxl_clip_l_ids_equal_native_for_short_prompts() -> None:
    ids = list(range(1, 31))
    (lpw,) = chunk_windows(pad_to_chunks(ids, 1, CLIP_L_TOKENS), CLIP_L_TOKENS)
    assert [lpw] == native_comfy_chunks(ids, pad=EOS)
