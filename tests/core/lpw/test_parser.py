"""The A1111 attention parser: each syntax rule, parity with LLMGA's parser, and a fuzz."""

from __future__ import annotations

import itertools
import json
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from llmga_core.lpw import parse_attention
from llmga_core.lpw.parser import ROUND_MULTIPLIER, SQUARE_MULTIPLIER
from tests.core.lpw.conftest import GOLDEN_DIR

with open(GOLDEN_DIR / "parser_cases.json", encoding="utf-8") as _f:
    GOLDEN = json.load(_f)["cases"]


def test_plain_text_has_weight_one() -> None:
    assert parse_attention("a quiet harbor") == [("a quiet harbor", 1.0)]


def test_empty_prompt_is_one_empty_piece() -> None:
    assert parse_attention("") == [("", 1.0)]


def test_round_brackets_multiply_by_1_1() -> None:
    assert parse_attention("a (red) boat") == [("a ", 1.0), ("red", 1.1), (" boat", 1.0)]


def test_square_brackets_multiply_by_inverse_1_1() -> None:
    # times 1/1.1, not divided by 1.1: the last bit differs and merging compares exactly
    assert parse_attention("[dim]") == [("dim", 1.0 * (1 / 1.1))]
    assert SQUARE_MULTIPLIER == 1 / 1.1


def test_nested_round_brackets_compound() -> None:
    assert parse_attention("((sky))") == [("sky", 1.0 * 1.1 * 1.1)]
    assert parse_attention("(((sky)))") == [("sky", 1.0 * 1.1 * 1.1 * 1.1)]


def test_explicit_weight_sets_factor() -> None:
    assert parse_attention("(cat:1.5)") == [("cat", 1.5)]
    assert parse_attention("(cat:-0.5)") == [("cat", -0.5)]
    assert parse_attention("(cat:+2)") == [("cat", 2.0)]
    assert parse_attention("(cat:.5)") == [("cat", 0.5)]


def test_explicit_weights_nest_multiplicatively() -> None:
    # ComfyUI's native parser would give 3.0 (inner absolute); LPW multiplies (spec 2.5).
    assert parse_attention("((cat:2):3)") == [("cat", 6.0)]
    assert parse_attention("((cat:1.3))") == [("cat", 1.0 * 1.3 * 1.1)]
    assert parse_attention("[(cat:2)]") == [("cat", 2.0 * SQUARE_MULTIPLIER)]


def test_square_brackets_weight_in_lpw() -> None:
    # ComfyUI's native parser keeps [ ] as text; LPW down-weights (spec 2.5).
    pieces = parse_attention("a [b] c")
    assert pieces == [("a ", 1.0), ("b", SQUARE_MULTIPLIER), (" c", 1.0)]


def test_escapes_are_literal_and_still_weighted_by_outer_brackets() -> None:
    assert parse_attention(r"\(x\) \[y\] \\") == [("(x) [y] \\", 1.0)]
    assert parse_attention(r"(\()") == [("(", ROUND_MULTIPLIER)]


def test_lone_backslash_disappears() -> None:
    assert parse_attention("a\\b") == [("ab", 1.0)]
    assert parse_attention("a\\") == [("a", 1.0)]


def test_unbalanced_open_brackets_close_at_the_end() -> None:
    assert parse_attention("(open end") == [("open end", ROUND_MULTIPLIER)]
    assert parse_attention("a [b (c") == [("a ", 1.0), ("b ", SQUARE_MULTIPLIER), ("c", 1.1 * SQUARE_MULTIPLIER)]


def test_unmatched_closing_brackets_are_text() -> None:
    assert parse_attention("a) b]") == [("a) b]", 1.0)]


def test_weight_without_open_bracket_is_text() -> None:
    assert parse_attention("ratio:1.5) x") == [("ratio:1.5) x", 1.0)]
    assert parse_attention("a : b") == [("a : b", 1.0)]


def test_equal_weight_runs_merge() -> None:
    assert parse_attention("(one)(two)") == [("onetwo", ROUND_MULTIPLIER)]
    assert parse_attention("(a:2) (b:2)") == [("a", 2.0), (" ", 1.0), ("b", 2.0)]


def test_invalid_weight_is_text_not_an_error() -> None:
    # LLMGA's parser raises ValueError here; we keep the text and close the bracket at the end.
    assert parse_attention("(a:.)") == [("a:.)", ROUND_MULTIPLIER)]
    assert parse_attention("(a:1.2.3)") == [("a:1.2.3)", ROUND_MULTIPLIER)]
    huge = "9" * 400
    assert parse_attention(f"(a:{huge})") == [(f"a:{huge})", ROUND_MULTIPLIER)]


def test_overflowing_products_are_clamped() -> None:
    big = "9" * 300
    (piece,) = parse_attention(f"((a:{big}):{big})")
    assert piece[0] == "a"
    assert math.isfinite(piece[1]) and piece[1] > 1e300


def test_golden_set_is_substantial() -> None:
    assert len(GOLDEN) > 400
    assert sum("error" in c for c in GOLDEN) >= 1


def test_matches_llmga_parser_on_golden_cases() -> None:
    mismatches = []
    for case in GOLDEN:
        pieces = parse_attention(case["text"])
        if "error" in case:  # the original raises ValueError; we must return finite weights instead
            ok = all(math.isfinite(w) for _, w in pieces)
        else:
            ok = pieces == [(text, weight) for text, weight in case["pieces"]]
        if not ok:
            mismatches.append((case["text"], pieces))
    assert mismatches == []


SYNTAX = st.text(alphabet=st.sampled_from(list("ab :,.-+019()[]\\")), max_size=40)


@settings(max_examples=300, deadline=None)
@given(st.one_of(SYNTAX, st.text(max_size=40)))
def test_fuzz_never_crashes_and_weights_are_finite(text: str) -> None:
    pieces = parse_attention(text)
    assert pieces
    assert all(isinstance(t, str) and math.isfinite(w) for t, w in pieces)
    # neighbours always differ in weight after merging
    assert all(a[1] != b[1] for a, b in itertools.pairwise(pieces))


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet=st.characters(blacklist_characters="()[]\\"), max_size=60))
def test_fuzz_bracket_free_text_is_unchanged(text: str) -> None:
    assert parse_attention(text) == [(text, 1.0)]


def test_nesting_is_bounded_with_a_clear_error() -> None:
    from llmga_core.lpw.parser import MAX_NESTING, PromptTooDeep

    deepest = "(" * (MAX_NESTING - 1) + "[a]" + ")" * (MAX_NESTING - 1)
    assert parse_attention(deepest)[0][0] == "a"
    with pytest.raises(PromptTooDeep, match=f"more than {MAX_NESTING} brackets"):
        parse_attention("(" * 18000 + "a" + ")" * 18000)  # 36k characters: 6 s before the bound
    with pytest.raises(PromptTooDeep):
        parse_attention("[" * 60 + "a")  # unclosed brackets count too


def test_text_between_bracket_events_is_one_piece_with_the_same_result() -> None:
    # many plain pieces (escapes, stray closers, colons) inside one bracket: one weight, merged as before
    assert parse_attention("(a\\(b\\)c:d]e\\x)") == [("a(b)c:d]ex", pytest.approx(1.1))]
