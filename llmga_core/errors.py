"""Errors a user can act on.

Every check on user input raises :class:`LLMGAInputError` with a message that names the problem and the
fix, so the ComfyUI glue can pass it straight to the user instead of a deep traceback.
"""

from __future__ import annotations


class LLMGAInputError(ValueError):
    """Bad input to an LLMGA operation; the message says what to change."""
