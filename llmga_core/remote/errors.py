"""Errors of the remote MLLM path."""

from __future__ import annotations

from ..errors import LLMGAInputError


class RemoteMLLMError(LLMGAInputError):
    """The engine could not be reached or refused the request; the message says what to check.

    ``status`` is the HTTP status when the server answered, else ``None``.
    """

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class RemoteCancelled(Exception):
    """The caller asked to stop; the connection has been closed."""
