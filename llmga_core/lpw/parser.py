"""The A1111 attention syntax as LLMGA's SD1.5 long-prompt pipelines read it.

``(text)`` multiplies the weight of ``text`` by 1.1, ``[text]`` multiplies it by 1/1.1, ``(text:w)``
multiplies it by ``w``; brackets nest multiplicatively. ``\\(``, ``\\)``, ``\\[``, ``\\]`` and ``\\\\``
are literal characters; any other backslash disappears. A closing bracket with no open partner is
literal text, and brackets still open at the end are closed there (all round ones first, then all
square ones). Neighbouring pieces with the same weight are merged.

The arithmetic follows the original step by step (each close multiplies every piece since its opening
bracket, ``[ ]`` multiplies by ``1/1.1`` rather than dividing), because pieces are merged on *exact*
float equality and a different rounding order would merge differently.

Deliberate deviations, only for input on which LLMGA's parser fails: a weight that is not a finite
number (``(x:.)``, ``(x:1.2.3)``, a 400-digit number) is kept as literal text instead of raising or
producing ``inf``, and products that would overflow are clamped to the largest float.
"""

from __future__ import annotations

import math
import re
import sys

ROUND_MULTIPLIER = 1.1
SQUARE_MULTIPLIER = 1 / 1.1

# Characters with a meaning; everything else is plain text.
_SPECIAL = frozenset("\\()[]:")
_ESCAPABLE = frozenset("()[]\\")
# ``:<number>)`` closes a round bracket with an explicit weight. ``\d`` is Unicode-aware on purpose:
# the original accepts any digits that Python's float() accepts.
_WEIGHT_CLOSE = re.compile(r":([+-]?[.\d]+)\)")


def _finite_float(text: str) -> float | None:
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def _scale(pieces: list[list], start: int, factor: float) -> None:
    for piece in pieces[start:]:
        weight = piece[1] * factor
        if not math.isfinite(weight):
            weight = math.copysign(sys.float_info.max, weight)
        piece[1] = weight


def _merge_equal_neighbours(pieces: list[list]) -> list[tuple[str, float]]:
    merged: list[list] = []
    for text, weight in pieces:
        if merged and merged[-1][1] == weight:
            merged[-1][0] += text
        else:
            merged.append([text, weight])
    return [(text, weight) for text, weight in merged]


def parse_attention(text: str) -> list[tuple[str, float]]:
    """Split ``text`` into ``(piece, weight)`` runs; never empty (``""`` gives ``[("", 1.0)]``)."""
    pieces: list[list] = []  # [text, weight]; mutable because closing brackets rescale them
    open_round: list[int] = []
    open_square: list[int] = []
    i, end = 0, len(text)
    while i < end:
        char = text[i]
        if char == "\\":
            following = text[i + 1] if i + 1 < end else ""
            if following in _ESCAPABLE:
                pieces.append([following, 1.0])
                i += 2
            else:
                # A lone backslash leaves an empty piece behind, exactly like the original; it only
                # matters for where later brackets start counting.
                pieces.append(["", 1.0])
                i += 1
        elif char == "(":
            open_round.append(len(pieces))
            i += 1
        elif char == "[":
            open_square.append(len(pieces))
            i += 1
        elif char == ")":
            if open_round:
                _scale(pieces, open_round.pop(), ROUND_MULTIPLIER)
            else:
                pieces.append([")", 1.0])
            i += 1
        elif char == "]":
            if open_square:
                _scale(pieces, open_square.pop(), SQUARE_MULTIPLIER)
            else:
                pieces.append(["]", 1.0])
            i += 1
        elif char == ":":
            match = _WEIGHT_CLOSE.match(text, i)
            if match is None:
                pieces.append([":", 1.0])
                i += 1
                continue
            weight = _finite_float(match.group(1)) if open_round else None
            if weight is None:
                pieces.append([match.group(0), 1.0])
            else:
                _scale(pieces, open_round.pop(), weight)
            i = match.end()
        else:
            stop = i + 1
            while stop < end and text[stop] not in _SPECIAL:
                stop += 1
            pieces.append([text[i:stop], 1.0])
            i = stop

    for start in open_round:
        _scale(pieces, start, ROUND_MULTIPLIER)
    for start in open_square:
        _scale(pieces, start, SQUARE_MULTIPLIER)

    if not pieces:
        return [("", 1.0)]
    return _merge_equal_neighbours(pieces)
