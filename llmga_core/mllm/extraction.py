"""Cutting the generation prompt(s) out of an LLMGA answer (llmga-spec §1.8).

LLMGA answers ``<gen_image> DETAILED PROMPT </gen_image>``, possibly with free text around it and, in
picture-book answers, several tagged prompts. The original CLIs drop a fixed number of trailing
characters per template and then take ``text[find(open) + 12 : find(close)]``. That breaks when the
reply ends differently from what the character count assumes (a reply cut by ``max_new_tokens``, a
``generation_config`` that stops on ``<end_of_turn>``), when the model writes no space after the tag,
and it keeps only the first prompt. Here:

- end-of-turn tokens are removed by value (trailing token ids, then the first stop string), never by
  a character count;
- every tagged prompt is returned, in order; the first equals the original's caption on well-formed
  answers, minus the surrounding whitespace (which the CLIP tokenizers drop anyway);
- the text outside the tags is kept as ``free_text``, and the whole cleaned answer as ``reply``;
- ``history_text`` is what the original stores in the conversation (the raw decoded text, stripped),
  so later turns see the same prompt as in the CLI.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from .templates import TEMPLATES, get_template

__all__ = [
    "GEN_IMAGE_CLOSE",
    "GEN_IMAGE_OPEN",
    "Extraction",
    "extract_prompts",
    "extract_prompts_from_ids",
    "split_tagged",
    "stop_strings_for",
    "strip_stop_ids",
    "strip_stop_strings",
]

GEN_IMAGE_OPEN = "<gen_image>"
GEN_IMAGE_CLOSE = "</gen_image>"

# Tolerate case and stray spaces inside the tag: a sampled model sometimes writes "< gen_image >".
_TAG = re.compile(r"<\s*(/?)\s*gen_image\s*>", re.IGNORECASE)
# BOS strings a decode of the whole sequence may start with.
_LEADING_SPECIALS = ("<s>", "<bos>", "<|begin_of_text|>", "<|endoftext|>")


@dataclass(frozen=True)
class Extraction:
    """What one MLLM answer means for the pipeline."""

    history_text: str  # the decoded answer as the original stores it in the conversation
    reply: str  # the answer without end-of-turn/special tokens, tags kept
    prompts: tuple[str, ...]  # every tagged generation prompt, in order, stripped, non-empty
    free_text: str  # the answer outside the tagged prompts

    @property
    def prompt(self) -> str | None:
        """The first generation prompt, or ``None`` when the model asked for no image."""
        return self.prompts[0] if self.prompts else None

    @property
    def wants_image(self) -> bool:
        return bool(self.prompts)

    @property
    def prompt_or_reply(self) -> str:
        """The first prompt, else the whole reply (the editing CLI uses an untagged answer as is)."""
        return self.prompts[0] if self.prompts else self.reply


def stop_strings_for(template: str | None) -> tuple[str, ...]:
    """End-of-reply strings for ``template``; for ``None`` every template's (a safe superset)."""
    if template is not None:
        return get_template(template).stop_strings
    seen: dict[str, None] = {}
    for tpl in TEMPLATES.values():
        for s in tpl.stop_strings:
            if s != "###":  # too common in free text to cut on without knowing the template
                seen[s] = None
    return tuple(seen)


def strip_stop_ids(output_ids: Sequence[int], stop_token_ids: Iterable[int]) -> list[int]:
    """``output_ids`` without the trailing run of stop/pad token ids (removal by token, not by length)."""
    stops = set(stop_token_ids)
    ids = list(output_ids)
    while ids and ids[-1] in stops:
        ids.pop()
    return ids


def strip_stop_strings(text: str, stop_strings: Iterable[str]) -> str:
    """Cut ``text`` at the first stop string and drop leading BOS strings; whitespace stripped.

    Cutting at the first occurrence (not only a trailing one) also handles a model that ran on past its
    end-of-turn because generation stopped on a different token.
    """
    out = text.strip()
    changed = True
    while changed:
        changed = False
        for special in _LEADING_SPECIALS:
            if out.startswith(special):
                out = out[len(special):].lstrip()
                changed = True
    cut = len(out)
    for stop in stop_strings:
        if stop:
            pos = out.find(stop)
            if pos != -1:
                cut = min(cut, pos)
    return out[:cut].strip()


def split_tagged(text: str) -> tuple[list[str], str]:
    """All tagged prompts of ``text`` and the text outside them.

    Rules, in reading order: an open tag starts a prompt that runs to the next close tag, the next open
    tag or the end of the text (a reply cut short); a close tag that comes before any tag closes a prompt
    that started at the beginning (the original's rule for a missing open tag); other stray close tags
    are dropped. Empty prompts are skipped.
    """
    prompts: list[str] = []
    outside: list[str] = []
    open_at: int | None = None
    pos = 0  # start of the text not yet assigned
    seen_tag = False
    for m in _TAG.finditer(text):
        closing = m.group(1) == "/"
        if open_at is not None:
            prompts.append(text[open_at:m.start()])
            open_at = m.end() if not closing else None
        elif closing:
            if not seen_tag:
                prompts.append(text[pos:m.start()])
            else:
                outside.append(text[pos:m.start()])
        else:
            outside.append(text[pos:m.start()])
            open_at = m.end()
        pos = m.end()
        seen_tag = True
    if open_at is not None:
        prompts.append(text[open_at:])
    else:
        outside.append(text[pos:])
    clean = [p.strip() for p in prompts]
    free = " ".join(s.strip() for s in outside if s.strip())
    return [p for p in clean if p], free


def extract_prompts(decoded: str, template: str | None = None) -> Extraction:
    """Interpret a decoded answer (decoded with special tokens kept, as the original does)."""
    history = decoded.strip()
    reply = strip_stop_strings(history, stop_strings_for(template))
    prompts, free = split_tagged(reply)
    return Extraction(history_text=history, reply=reply, prompts=tuple(prompts), free_text=free)


def extract_prompts_from_ids(
    output_ids: Sequence[int],
    decode: Callable[[Sequence[int]], str],
    stop_token_ids: Iterable[int],
    template: str | None = None,
) -> Extraction:
    """Like :func:`extract_prompts` from generated ids: trailing stop ids are dropped before decoding.

    ``decode`` must keep special tokens (``tokenizer.decode``'s default), so ``history_text`` is the
    original's conversation text; the stop strings are then still cut by value as a second line.
    """
    ids = list(output_ids)
    history = decode(ids).strip()
    reply = strip_stop_strings(decode(strip_stop_ids(ids, stop_token_ids)), stop_strings_for(template))
    prompts, free = split_tagged(reply)
    return Extraction(history_text=history, reply=reply, prompts=tuple(prompts), free_text=free)
