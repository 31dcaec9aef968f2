"""Paths named by data stay inside the folders they came from.

A model folder is data: a shard index, a config or a tokenizer file must not be able to make a loader read
a file elsewhere on the machine (``/etc/passwd``, ``../../secrets``, a symbolic link that leads out, a
Windows path like ``..\\..\\x`` or ``C:\\x``). Every path a loader takes from a workflow or from a file in a
model folder goes through :func:`confine`: it must resolve, after symbolic links, inside the folder it came
from or inside one of the ``roots`` the caller allows (ComfyUI's model folders of the type it names).
Anything else is an :class:`UnsafePathError` naming the file and the key that named the path.

A Hugging Face cache snapshot (``models--org--name/snapshots/<rev>/``) keeps its files as links into the
repo's ``blobs/``; a folder laid out like that may also reach its own repo folder.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Sequence
from pathlib import Path

from .errors import LLMGAInputError

__all__ = ["UnsafePathError", "check_links", "confine", "is_within"]

_DRIVE = re.compile(r"^[A-Za-z]:")
_FIX = (
    "A model folder may only refer to files inside itself or inside ComfyUI's model folders. Remove or correct "
    "that entry, or download the folder again from its original source."
)


class UnsafePathError(LLMGAInputError):
    """A path named by data leads outside the folders it may use."""


def is_within(path: str | os.PathLike[str], root: str | os.PathLike[str]) -> bool:
    """``path`` is ``root`` or below it (both taken as they are: resolve them first)."""
    p, r = os.fspath(path), os.fspath(root).rstrip(os.sep) or os.sep
    return p == r or p.startswith(r if r.endswith(os.sep) else r + os.sep)


def _real_roots(folder: Path, roots: Iterable[str | os.PathLike[str]]) -> list[str]:
    real = [os.path.realpath(folder), *(os.path.realpath(r) for r in roots)]
    snapshot = Path(real[0])
    if snapshot.parent.name == "snapshots" and snapshot.parent.parent.name.startswith("models--"):
        real.append(str(snapshot.parent.parent))  # HF cache layout: snapshot files link into ../../blobs
    return real


def confine(
    name: str | os.PathLike[str],
    folder: str | os.PathLike[str],
    *,
    source: str,
    key: str,
    roots: Sequence[str | os.PathLike[str]] = (),
    search_roots: bool = False,
) -> Path:
    """``name``, written in ``source`` under ``key``, as a path inside ``folder`` or one of ``roots``.

    A relative name is looked up in ``folder`` (and, with ``search_roots``, then in each root); the first
    one that exists is returned (a missing one: its place in ``folder``, for the caller's "not found"
    message). Absolute names are
    accepted only where they already lie inside ``folder`` or a root. Symbolic links are followed before
    the check. Backslashes count as separators, so Windows-style paths are judged as Windows would.
    """
    text = os.fspath(name)
    base = Path(folder)
    allowed = _real_roots(base, roots)

    def refuse(why: str) -> UnsafePathError:
        return UnsafePathError(f"{source}: {key} names {text!r}, {why}. {_FIX}")

    if "\x00" in text or not text.strip():
        raise refuse("which is not a file name")
    unified = text.replace("\\", "/")
    if _DRIVE.match(unified) or unified.startswith("//"):
        raise refuse("a Windows drive or network path")
    if unified.startswith("/"):
        candidates = [Path(unified)]
    else:
        relative = os.path.normpath(unified)
        if relative == ".." or relative.startswith("../"):
            raise refuse(f"which leads out of {base.name} ('..')")
        candidates = [base / relative, *(Path(r) / relative for r in roots if search_roots)]
    for candidate in candidates:
        if not os.path.lexists(candidate):
            continue
        real = os.path.realpath(candidate)
        if not any(is_within(real, r) for r in allowed):
            link = " through a symbolic link" if os.path.realpath(candidate) != os.path.abspath(candidate) else ""
            raise refuse(f"which leads{link} outside {base} and the model folders")
        return candidate
    if unified.startswith("/"):
        if any(is_within(os.path.realpath(unified), r) for r in allowed):
            return candidates[0]
        raise refuse(f"an absolute path outside {base} and the model folders")
    return candidates[0]


def check_links(folder: str | os.PathLike[str], roots: Sequence[str | os.PathLike[str]] = (), depth: int = 1) -> None:
    """Every entry of ``folder`` (and of its sub-folders down to ``depth``) stays inside ``folder``/``roots``
    after symbolic links: libraries that open files by their own names (tokenizers) read only from there."""
    base = Path(folder)
    allowed = _real_roots(base, roots)
    pending = [(base, 0)]
    while pending:
        current, level = pending.pop()
        for entry in sorted(os.scandir(current), key=lambda e: e.name):
            real = os.path.realpath(entry.path)
            if not any(is_within(real, r) for r in allowed):
                where = os.path.relpath(entry.path, base)
                raise UnsafePathError(
                    f"{base.name}/{where} is a symbolic link that leads outside {base} and the model folders. {_FIX}"
                )
            if level + 1 < depth and entry.is_dir():
                pending.append((Path(entry.path), level + 1))
