"""Server-sent events split across arbitrary chunk boundaries."""

from __future__ import annotations

import itertools

from hypothesis import given
from hypothesis import strategies as st

from llmga_core.remote.sse import sse_data

STREAM = b'data: {"a": 1}\n\n: keep-alive\n\nevent: x\ndata: line1\ndata: line2\n\ndata: [DONE]\n\n'
EXPECTED = ['{"a": 1}', "line1\nline2", "[DONE]"]


def test_whole_stream() -> None:
    assert list(sse_data([STREAM])) == EXPECTED


def test_crlf_and_unterminated_last_event() -> None:
    assert list(sse_data([b"data: x\r\n\r\ndata: y"])) == ["x", "y"]


@given(st.lists(st.integers(min_value=1, max_value=len(STREAM) - 1), max_size=8, unique=True))
def test_any_chunking_gives_the_same_events(cuts: list[int]) -> None:
    edges = [0, *sorted(cuts), len(STREAM)]
    chunks = [STREAM[a:b] for a, b in itertools.pairwise(edges)]
    assert list(sse_data(chunks)) == EXPECTED


def test_utf8_split_inside_a_character() -> None:
    raw = 'data: {"content": "é"}\n\n'.encode()
    cut = raw.index(b"\xc3") + 1
    assert list(sse_data([raw[:cut], raw[cut:]])) == ['{"content": "é"}']
