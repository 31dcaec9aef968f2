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

Bounded work: text between two bracket events is kept as one piece (its weight history is the same, so
the result is unchanged), and at most :data:`MAX_NESTING` brackets may be open at once; a deeper prompt
is refused with :class:`PromptTooDeep` (the original's work grows with nesting x length: 36,000 nested
brackets took 6 s that nothing could interrupt). So a prompt costs at most ``MAX_NESTING`` weight
updates per character.
"""

from __future__ import annotations

import math
import re
import sys

from ..errors import LLMGAInputError

MAX_NESTING = 50  # brackets open at once; real prompts use a handful
ROUND_MULTIPLIER = 1.1
SQUARE_MULTIPLIER = 1 / 1.1

# Characters with a meaning; everything else is plain text.
_SPECIAL = frozenset("\\()[]:")
_ESCAPABLE = frozenset("()[]\\")
# ``:<number>)`` closes a round bracket with an explicit weight. ``\d`` is Unicode-aware on purpose:
# the original accepts any digits that Python's float() accepts.
_WEIGHT_CLOSE = re.compile(r":([+-]?[.\d]+)\)")


class PromptTooDeep(LLMGAInputError):
    """More than MAX_NESTING brackets open at once."""


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
    joinable = False  # no bracket opened or closed since the last piece: new text may extend it

    def add(piece: str) -> None:
        nonlocal joinable
        if joinable:
            pieces[-1][0] += piece
        else:
            pieces.append([piece, 1.0])
            joinable = True

    def opened(stack: list[int]) -> None:
        nonlocal joinable
        if len(open_round) + len(open_square) >= MAX_NESTING:
            raise PromptTooDeep(
                f"The prompt opens more than {MAX_NESTING} brackets inside each other (at character {i}); weighted "
                "prompts need only a few levels: remove the extra ( or [, or escape literal ones as \\( and \\[."
            )
        stack.append(len(pieces))
        joinable = False

    def closed(stack: list[int], factor: float) -> None:
        nonlocal joinable
        _scale(pieces, stack.pop(), factor)
        joinable = False

    i, end = 0, len(text)
    while i < end:
        char = text[i]
        if char == "\\":
            following = text[i + 1] if i + 1 < end else ""
            if following in _ESCAPABLE:
                add(following)
                i += 2
            else:
                # A lone backslash leaves an empty piece behind, exactly like the original; it only
                # matters for where later brackets start counting.
                add("")
                i += 1
        elif char == "(":
            opened(open_round)
            i += 1
        elif char == "[":
            opened(open_square)
            i += 1
        elif char == ")":
            if open_round:
                closed(open_round, ROUND_MULTIPLIER)
            else:
                add(")")
            i += 1
        elif char == "]":
            if open_square:
                closed(open_square, SQUARE_MULTIPLIER)
            else:
                add("]")
            i += 1
        elif char == ":":
            match = _WEIGHT_CLOSE.match(text, i)
            if match is None:
                add(":")
                i += 1
                continue
            weight = _finite_float(match.group(1)) if open_round else None
            if weight is None:
                add(match.group(0))
            else:
                closed(open_round, weight)
            i = match.end()
        else:
            stop = i + 1
            while stop < end and text[stop] not in _SPECIAL:
                stop += 1
            add(text[i:stop])
            i = stop

    for start in open_round:
        _scale(pieces, start, ROUND_MULTIPLIER)
    for start in open_square:
        _scale(pieces, start, SQUARE_MULTIPLIER)

    if not pieces:
        return [("", 1.0)]
    return _merge_equal_neighbours(pieces)
