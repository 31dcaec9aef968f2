"""A Hugging Face tokenizer as llama.cpp's GGUF vocabulary (``tokenizer.ggml.*``).

Two kinds occur among the LLMGA backbones:

- SentencePiece-derived BPE with byte fallback (vicuna, Llama-2, Mistral, Phi-3, Gemma): written as
  llama.cpp's ``"llama"`` (SPM) model. That tokenizer merges the best-*scoring* adjacent pair whose
  concatenation is a vocabulary token, so each token's score is minus the rank of the first merge that
  produces it: the same order the ``tokenizer.json`` merges apply in (a flat score, as gguf's
  ``LlamaHfVocab`` writes, would merge left to right instead);
- byte-level BPE (Llama-3, Qwen2): ``"gpt2"`` with the merges and a pre-tokenizer name that selects
  llama.cpp's split regex (``llama-bpe``, ``qwen2``).

Token types decide how llama.cpp matches text: special added tokens are CONTROL (parsed from text only
when special parsing is on, as the server does for prompts), other added tokens USER_DEFINED (always
matched, as transformers always matches added tokens), ``<0xNN>`` pieces BYTE.

BOS/EOS: ``add_bos_token`` is read off the tokenizer's own output (does encoding "a" start with BOS?),
which is exactly the condition under which LLaVA's chunk rule keeps a BOS.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

import gguf

from ..errors import LLMGAInputError

__all__ = ["GGUFVocab", "llama_cpp_model_name", "vocab_from_tokenizer"]

_BYTE_PIECE = re.compile(r"<0x[0-9A-Fa-f]{2}>")
# llama.cpp picks its pre-tokenizer regex by name; the two byte-level vocabularies LLMGA uses.
_PRE_BY_MARKER = (("<|begin_of_text|>", "llama-bpe"), ("<|im_start|>", "qwen2"))


@dataclass
class GGUFVocab:
    """Everything ``tokenizer.ggml.*`` needs."""

    model: str  # "llama" (SentencePiece) or "gpt2" (byte-level BPE)
    tokens: list[str]
    scores: list[float]
    types: list[int]
    merges: list[str] = field(default_factory=list)
    pre: str | None = None
    add_space_prefix: bool | None = None
    special_ids: dict[str, int] = field(default_factory=dict)  # bos/eos/unk/pad
    add_bos: bool = False
    add_eos: bool = False
    rstrip_special: bool = False  # the tokenizer eats whitespace after its special tokens (Phi-3)

    def write(self, writer: gguf.GGUFWriter) -> None:
        writer.add_tokenizer_model(self.model)
        if self.pre is not None:
            writer.add_tokenizer_pre(self.pre)
        writer.add_token_list(self.tokens)
        writer.add_token_scores(self.scores)
        writer.add_token_types(self.types)
        if self.merges:
            writer.add_token_merges(self.merges)
        if self.add_space_prefix is not None:
            writer.add_add_space_prefix(self.add_space_prefix)
        for kind, token_id in self.special_ids.items():
            getattr(writer, f"add_{kind}_token_id")(token_id)
        writer.add_add_bos_token(self.add_bos)
        writer.add_add_eos_token(self.add_eos)


def _merge_pairs(model: dict[str, Any]) -> list[tuple[str, str]]:
    pairs = []
    for merge in model.get("merges") or []:
        left, right = merge.split(" ", 1) if isinstance(merge, str) else merge
        pairs.append((left, right))
    return pairs


def _spm_kind(backend: dict[str, Any]) -> bool:
    """SentencePiece-style: a BPE model with byte fallback and ``▁`` for spaces."""
    model = backend["model"]
    return model.get("type") == "BPE" and bool(model.get("byte_fallback"))


def _adds_space_prefix(backend: dict[str, Any]) -> bool:
    """Does the tokenizer prepend ``▁`` to text (SentencePiece's add_dummy_prefix)?"""
    text = json.dumps([backend.get("normalizer"), backend.get("pre_tokenizer")])
    if '"Prepend"' in text:
        return True
    return '"Metaspace"' in text and '"prepend_scheme": "never"' not in text


def _token_table(tokenizer: Any, size: int) -> tuple[list[str], dict[int, Any], dict[str, int]]:
    """Token strings by id (gaps filled with ``[PADn]``), the added-token records by id, and the vocabulary."""
    vocab = tokenizer.get_vocab()
    tokens = [f"[PAD{i}]" for i in range(size)]
    for text, token_id in vocab.items():
        if 0 <= token_id < size:
            tokens[token_id] = text
    added = {int(i): tok for i, tok in tokenizer.added_tokens_decoder.items() if 0 <= int(i) < size}
    return tokens, added, vocab


def vocab_from_tokenizer(tokenizer: Any, size: int, bos_fallback: int | None = None) -> GGUFVocab:
    """The GGUF vocabulary of a fast Hugging Face tokenizer, with exactly ``size`` entries (the model's
    embedding rows, which LLMGA's loader makes equal to ``len(tokenizer)``)."""
    backend_tok = getattr(tokenizer, "backend_tokenizer", None)
    if backend_tok is None:
        raise LLMGAInputError("GGUF export needs a fast tokenizer (tokenizer.json or vocab.json + merges.txt).")
    backend = json.loads(backend_tok.to_str())
    if backend["model"].get("type") != "BPE":
        raise LLMGAInputError(f"GGUF export supports BPE tokenizers only, not {backend['model'].get('type')}.")
    tokens, added, vocab = _token_table(tokenizer, size)
    spm = _spm_kind(backend)
    unk = tokenizer.unk_token
    unused = {i for i, t in enumerate(tokens) if t == f"[PAD{i}]" and vocab.get(t) != i}
    pairs = _merge_pairs(backend["model"])
    types: list[int] = []
    for i, text in enumerate(tokens):
        record = added.get(i)
        if i in unused:
            types.append(gguf.TokenType.UNUSED)
        elif record is not None and record.special:
            types.append(gguf.TokenType.CONTROL)
        elif record is not None:
            types.append(gguf.TokenType.USER_DEFINED)
        elif spm and _BYTE_PIECE.fullmatch(text):
            types.append(gguf.TokenType.BYTE)
        elif text == unk:
            types.append(gguf.TokenType.UNKNOWN)
        else:
            types.append(gguf.TokenType.NORMAL)
    specials = {
        kind: token_id
        for kind in ("bos", "eos", "unk", "pad")
        if isinstance(token_id := getattr(tokenizer, f"{kind}_token_id", None), int) and 0 <= token_id < size
    }
    if "bos" not in specials and bos_fallback is not None and 0 <= bos_fallback < size:
        specials["bos"] = bos_fallback  # Qwen2: no BOS is added, but llama.cpp wants an id
    probe = list(tokenizer("a").input_ids)
    add_bos = bool(probe) and tokenizer.bos_token_id is not None and probe[0] == tokenizer.bos_token_id
    add_eos = bool(probe) and tokenizer.eos_token_id is not None and probe[-1] == tokenizer.eos_token_id

    rstrip = any(tok.rstrip for tok in added.values())
    if spm:
        rank: dict[str, int] = {}
        for n, (left, right) in enumerate(pairs):
            rank.setdefault(left + right, n)
        # Tokens no merge produces are never merge candidates; their score only has to rank below all.
        floor = -float(len(pairs) + 1)
        scores = [-float(rank[t]) if t in rank else floor for t in tokens]
        return GGUFVocab(
            model="llama",
            tokens=tokens,
            scores=scores,
            types=[int(t) for t in types],
            add_space_prefix=_adds_space_prefix(backend),
            special_ids=specials,
            add_bos=add_bos,
            add_eos=add_eos,
            rstrip_special=rstrip,
        )

    pre = next((name for marker, name in _PRE_BY_MARKER if marker in vocab), None)
    if pre is None:
        raise LLMGAInputError(
            "GGUF export: this byte-level BPE vocabulary is neither Llama-3's nor Qwen2's, so llama.cpp's "
            "pre-tokenizer for it is unknown."
        )
    # llama.cpp splits a merge on its first space; a literal space inside a piece is stored as U+0120+...
    merges = [" ".join("".join(chr(ord(c) + 256) if c == " " else c for c in p) for p in pair) for pair in pairs]
    return GGUFVocab(
        model="gpt2",
        tokens=tokens,
        scores=[0.0] * size,
        types=[int(t) for t in types],
        merges=merges,
        pre=pre,
        special_ids=specials,
        add_bos=add_bos,
        add_eos=add_eos,
        rstrip_special=rstrip,
    )


def llama_cpp_model_name(name: str, rstrip_special: bool) -> str:
    """``general.name`` such that llama.cpp strips whitespace after special tokens iff the tokenizer does.

    llama.cpp has no per-token strip flag in GGUF; it sets "rstrip" on every special token except
    ``<unk>``, ``<s>``, ``<|endoftext|>`` when the lowercased model name contains "phi-3" or "phi3"
    (``llama-vocab.cpp``), which is what the released Phi-3 tokenizer does. A Phi-3 folder whose tokenizer
    keeps that whitespace gets the marker taken out of its name; any other that strips gets it added.
    """
    low = name.lower()
    marked = "phi-3" in low or "phi3" in low
    if rstrip_special and not marked:
        return f"{name} (phi3 tokenizer)"
    if not rstrip_special and marked:
        return re.sub(r"(?i)phi-?3", lambda m: m.group(0)[:3] + "_3", name)
    return name
