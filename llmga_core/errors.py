"""Errors a user can act on, and the one cleaner every message passes through before a user sees it.

Every check on user input raises :class:`LLMGAInputError` with a message that names the problem and the
fix, so the ComfyUI glue can pass it straight to the user instead of a deep traceback.

Third-party text embedded in a message is cleaned by :func:`clean_message`: terminal colour codes are
removed, and so is any sentence that advises loosening a safety check (torch's "re-run with
weights_only=False", transformers' ``trust_remote_code`` / ``ignore_mismatched_sizes`` hints, pickle
allow-lists). The pack never gives that advice: a model file that needs it is refused.
"""

from __future__ import annotations

import re

__all__ = ["LLMGAInputError", "clean_message", "pickle_refusal"]


class LLMGAInputError(ValueError):
    """Bad input to an LLMGA operation; the message says what to change."""


# CSI sequences (colours, cursor moves), OSC sequences (titles, links) and lone escape characters.
_ANSI = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)|\x1b[@-Z\\-_]?|\x9b[0-?]*[ -/]*[@-~]")
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_UNSAFE = re.compile(
    r"weights_only|weights only load|trust_remote_code|ignore_mismatched_sizes|safe_globals|add_safe_globals"
    r"|TORCH_FORCE_(?:NO_)?WEIGHTS_ONLY|arbitrary code|\btrust(?:ed)?\b|allowlist",
    re.IGNORECASE,
)
_SENTENCE = re.compile(r"((?<=[.!?])[ \t]+|\n+)")  # kept by split: the message keeps its line breaks


def strip_ansi(text: str) -> str:
    """``text`` without terminal escape sequences or other control characters (newlines and tabs kept)."""
    return _CONTROL.sub("", _ANSI.sub("", text))


def clean_message(text: str) -> str:
    """``text`` without colour codes and without any sentence that suggests loosening a safety check."""
    if not _UNSAFE.search(text):
        return strip_ansi(text)
    pieces = _SENTENCE.split(strip_ansi(text))  # sentence, separator, sentence, ...
    kept = [
        sentence.strip(" \t") + (pieces[i + 1] if i + 1 < len(pieces) else "")
        for i, sentence in enumerate(pieces)
        if i % 2 == 0 and sentence.strip() and not _UNSAFE.search(sentence)
    ]
    return "".join(kept).strip()


def pickle_refusal(where: str, exc: BaseException) -> LLMGAInputError:
    """The error for a pickle that ``torch.load(weights_only=True)`` refused: what it holds, what to do."""
    found = re.search(r"(?:Unsupported global|GLOBAL)\W+(?:GLOBAL\s+)?([\w.]+)", strip_ansi(str(exc)))
    what = f" (it refers to {found.group(1)})" if found else ""
    return LLMGAInputError(
        f"{where} holds Python objects or code besides tensors{what}; the pack reads only plain tensors and never "
        "runs code from a model file. Use the model's .safetensors files instead, or get the file again from its "
        "original publisher."
    )
