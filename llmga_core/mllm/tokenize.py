"""``input_ids`` for a prompt with an ``<image>`` placeholder, built as LLaVA/LLMGA builds them.

The prompt is split on ``<image>`` and every piece is tokenised **on its own**, with the tokenizer's
default special tokens; the pieces are then joined with the placeholder id ``-200``
(``IMAGE_TOKEN_INDEX``) that the model later replaces by the 576 projected CLIP features
(llmga-spec §1.5). Tokenising the pieces separately matters: SentencePiece tokenizers encode the text
after ``<image>`` differently from one whole-string encode.

BOS rule, exactly as the original: when the first piece starts with the BOS id, the sequence keeps that
one BOS and the **first token of every later piece is dropped** (assumed to be that piece's BOS). When
it does not (Qwen2 adds no BOS), nothing is dropped.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from ..errors import LLMGAInputError
from .conversation import IMAGE_TOKEN

__all__ = [
    "IMAGE_TOKEN_INDEX",
    "build_input_ids",
    "expand_image_tokens",
    "hf_encoder",
    "image_token_positions",
    "tokenizer_input_ids",
]

IMAGE_TOKEN_INDEX = -200


def build_input_ids(
    prompt: str,
    encode: Callable[[str], Sequence[int]],
    bos_token_id: int | None,
    image_token_index: int = IMAGE_TOKEN_INDEX,
) -> list[int]:
    """Token ids of ``prompt`` with one ``image_token_index`` per ``<image>``.

    ``encode(text)`` must return the ids the tokenizer gives by default (special tokens included), e.g.
    ``lambda s: tokenizer(s).input_ids``; ``bos_token_id`` is the tokenizer's BOS id or ``None``.
    """
    chunks = [list(encode(piece)) for piece in prompt.split(IMAGE_TOKEN)]
    drop = 1 if chunks[0] and bos_token_id is not None and chunks[0][0] == bos_token_id else 0
    ids: list[int] = chunks[0][:1] if drop else []
    for i, chunk in enumerate(chunks):
        if i > 0:
            ids.append(image_token_index)
        ids.extend(chunk[drop:])
    return ids


def hf_encoder(tokenizer: Any) -> Callable[[str], list[int]]:
    """``encode`` for a Hugging Face tokenizer (its default call, special tokens added)."""

    def encode(text: str) -> list[int]:
        return list(tokenizer(text).input_ids)

    return encode


def tokenizer_input_ids(prompt: str, tokenizer: Any, image_token_index: int = IMAGE_TOKEN_INDEX) -> list[int]:
    """:func:`build_input_ids` for a Hugging Face tokenizer (the original's ``tokenizer_image_token``)."""
    return build_input_ids(prompt, hf_encoder(tokenizer), tokenizer.bos_token_id, image_token_index)


def image_token_positions(input_ids: Sequence[int], image_token_index: int = IMAGE_TOKEN_INDEX) -> list[int]:
    """Indices of the image placeholders (where the vision features are spliced in)."""
    return [i for i, t in enumerate(input_ids) if t == image_token_index]


def expand_image_tokens(
    input_ids: Sequence[int],
    image_token_id: int,
    num_image_tokens: int = 576,
    image_token_index: int = IMAGE_TOKEN_INDEX,
) -> list[int]:
    """Replace each placeholder by ``num_image_tokens`` copies of a real vocabulary id.

    For routes that need the image as ordinary tokens (``transformers.LlavaForConditionalGeneration``
    expects ``image_seq_length`` copies of its ``image_token_index``), keeping the LLaVA chunk rule.
    """
    if num_image_tokens < 1:
        raise LLMGAInputError("num_image_tokens must be at least 1.")
    out: list[int] = []
    for t in input_ids:
        if t == image_token_index:
            out.extend([image_token_id] * num_image_tokens)
        else:
            out.append(t)
    return out
