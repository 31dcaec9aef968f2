"""Prompt text to content token ids (no BOS/EOS), with per-token weights and truncation.

The tokenizer is any callable ``tokenize(text) -> ids`` that returns the *content* ids of ``text``
without BOS/EOS, so the same code runs on ComfyUI's tokenizer objects and on transformers'
``CLIPTokenizer`` (see :func:`hf_tokenize`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from .parser import parse_attention

Tokenize = Callable[[str], Sequence[int]]


@dataclass(frozen=True)
class PromptTokens:
    """Content ids of one prompt after truncation, their weights, and how many ids were cut off."""

    ids: tuple[int, ...]
    weights: tuple[float, ...]
    dropped: int


def hf_tokenize(tokenizer: Any) -> Tokenize:
    """Wrap a transformers CLIP tokenizer (also what ComfyUI keeps as ``SDTokenizer.tokenizer``)."""

    def tokenize(text: str) -> list[int]:
        # The tokenizer frames every call with BOS ... EOS; the layouts add their own.
        return list(tokenizer(text)["input_ids"][1:-1])

    return tokenize


def _truncated(ids: list[int], weights: list[float], max_tokens: int) -> PromptTokens:
    kept = min(len(ids), max_tokens)
    return PromptTokens(tuple(ids[:kept]), tuple(weights[:kept]), len(ids) - kept)


def weighted_tokens(prompt: str, tokenize: Tokenize, max_tokens: int) -> PromptTokens:
    """A1111-weighted tokens: every equal-weight run of the prompt is tokenized on its own.

    Tokenizing run by run (not the whole prompt) matters: a word split by a bracket tokenizes
    differently, and the SD1.5 LPW pipelines did it this way.
    """
    ids: list[int] = []
    weights: list[float] = []
    for text, weight in parse_attention(prompt):
        run = list(tokenize(text))
        ids += run
        weights += [weight] * len(run)
    return _truncated(ids, weights, max_tokens)


def plain_tokens(prompt: str, tokenize: Tokenize, max_tokens: int) -> PromptTokens:
    """The whole prompt tokenized at once, brackets as literal text, every weight 1.0."""
    ids = list(tokenize(prompt))
    return _truncated(ids, [1.0] * len(ids), max_tokens)
