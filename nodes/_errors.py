"""Turn llmga_core's actionable errors into messages that read well in ComfyUI's error dialog."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from ..llmga_core.errors import LLMGAInputError, clean_message


class LLMGANodeError(Exception):
    """Raised by LLMGA nodes; ComfyUI shows the message in its error panel and in /history.

    The message is cleaned (llmga_core.errors.clean_message): no colour codes, no advice to loosen a
    safety check, whoever raises it."""

    def __init__(self, message: str) -> None:
        super().__init__(clean_message(message))


@contextmanager
def user_errors(node_title: str, *also: type[Exception]) -> Iterator[None]:
    """Re-raise actionable errors (LLMGAInputError and ``also``) as a short message without a traceback."""
    try:
        yield
    except (LLMGAInputError, *also) as err:
        raise LLMGANodeError(f"{node_title}: {err}") from None
