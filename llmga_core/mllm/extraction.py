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
    free_text: str  # the answer outside the tagged prompts, tags removed
    untagged_caption: str | None = None  # text before a lone close tag (the original's caption[:id2])

    @property
    def prompt(self) -> str | None:
        """The first generation prompt, or ``None`` when the model asked for no image."""
        return self.prompts[0] if self.prompts else None

    @property
    def wants_image(self) -> bool:
        return bool(self.prompts)

    @property
    def prompt_or_reply(self) -> str:
        """The first prompt, else the answer as the editing CLI uses it; never contains a tag.

        Untagged answers give the whole reply (the editing CLI uses them as is); a lone close tag gives the
        text before it (the CLI's ``caption[:id2]``); an answer whose only tagged prompt is empty gives its
        free text (possibly "").
        """
        if self.prompts:
            return self.prompts[0]
        return self.untagged_caption if self.untagged_caption is not None else self.free_text


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


@dataclass(frozen=True)
class _Scan:
    prompts: list[str]  # tagged prompts, stripped, non-empty
    free: str  # the text outside them, tags removed
    lead: str | None  # text before a close tag that comes first with no open tag anywhere


def _scan(text: str) -> _Scan:
    """Read ``text`` tag by tag; the rules for malformed answers are listed on :func:`split_tagged`."""
    prompts: list[str] = []
    outside: list[str] = []
    current: list[str] | None = None  # pieces of the prompt being read, None outside a prompt
    lead: str | None = None
    pos = 0
    tags = list(_TAG.finditer(text))
    has_open = any(m.group(1) != "/" for m in tags)
    for i, m in enumerate(tags):
        closing = m.group(1) == "/"
        piece = text[pos : m.start()]
        if current is not None:
            current.append(piece)
            if closing:
                prompts.append(" ".join(p.strip() for p in current if p.strip()))
                current = None
            # an open tag inside a prompt is dropped: the prompt runs on to its close tag
        else:
            outside.append(piece)
            if not closing:
                current = []
            elif i == 0 and not has_open:
                lead = piece.strip()
        pos = m.end()
    if current is not None:  # a reply cut short: the prompt runs to the end
        current.append(text[pos:])
        prompts.append(" ".join(p.strip() for p in current if p.strip()))
    else:
        outside.append(text[pos:])
    free = " ".join(s.strip() for s in outside if s.strip())
    return _Scan([p for p in prompts if p], free, lead)


def split_tagged(text: str) -> tuple[list[str], str]:
    """All tagged prompts of ``text`` and the text outside them (tags never appear in either).

    Well-formed answers give what the original's loop gives. Malformed ones, decided case by case
    (README, "Compared with the original"):

    - an open tag starts a prompt that runs to the next close tag, or to the end of a reply cut short;
    - nested open tags: an open tag inside a prompt is dropped, so ``<gen_image> a <gen_image> b </gen_image>``
      is ``a b`` (the original's caption ``a <gen_image> b`` without the tag);
    - close tags outside a prompt are dropped: a close tag before the open tag
      (``X </gen_image> Y <gen_image> Z </gen_image>``) gives ``Z``, where the original renders an empty
      prompt; a lone close tag with no open tag at all requests no image, as in the original's CLIs
      (:attr:`Extraction.prompt_or_reply` is then the text before it, the editing CLI's caption);
    - empty prompts (``<gen_image> </gen_image>``) are skipped: no image from an empty prompt.
    """
    scan = _scan(text)
    return scan.prompts, scan.free


def extract_prompts(decoded: str, template: str | None = None) -> Extraction:
    """Interpret a decoded answer (decoded with special tokens kept, as the original does)."""
    history = decoded.strip()
    reply = strip_stop_strings(history, stop_strings_for(template))
    return _extraction(history, reply)


def _extraction(history: str, reply: str) -> Extraction:
    scan = _scan(reply)
    return Extraction(history, reply, tuple(scan.prompts), scan.free, scan.lead)


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
    return _extraction(history, reply)
