"""One LLMGA turn on llama.cpp: the same prompt ids, image rows and sampling settings as the transformers path.

- ids: LLaVA's chunk rule (:func:`~llmga_core.mllm.tokenize.build_input_ids`) over llama.cpp's tokenizer;
- the image: the ``(N, hidden)`` projected CLIP features from :mod:`.vision`, fed as embedding rows where
  the ``<image>`` placeholder is; text pieces are fed as token ids;
- sampling: the settings resolved exactly as the transformers path resolves them (the folder's
  ``generation_config.json``, stored in the GGUF by our exporter, overridden by the node's inputs), run by
  llama.cpp's own samplers in the same order (repetition penalty, temperature, top-k, top-p). The
  penalty sees generated tokens only, as transformers does when the prompt enters as embeddings;
- stops on the generation config's end ids (else llama.cpp's end-of-generation tokens), on a stop string,
  or at ``max_new_tokens``; ``on_token`` runs after every token (raise there to cancel) and
  ``should_stop`` aborts a long prompt evaluation inside llama.cpp.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from ..errors import LLMGAInputError
from ..mllm.generate import GenerationResult, SamplingSettings, TokenCallback, build_generation_config
from ..mllm.tokenize import IMAGE_TOKEN_INDEX, build_input_ids
from .model import LlamaCppModel

__all__ = ["prefill", "prompt_ids", "run_gguf_turn", "sampler_chain"]


def prompt_ids(model: LlamaCppModel, prompt: str) -> list[int]:
    """LLaVA's ids for a rendered prompt (``-200`` where the image goes) with llama.cpp's tokenizer."""
    if not prompt:
        raise LLMGAInputError("The prompt is empty: type an instruction.")
    return build_input_ids(prompt, lambda s: model.tokenize(s, add_special=True), model.bos if model.add_bos else None)


def prefill(model: LlamaCppModel, ids: Sequence[int], image_rows: np.ndarray | None = None) -> None:
    """Evaluate a whole prompt from an empty context, leaving the last position's logits."""
    where = [i for i, t in enumerate(ids) if t == IMAGE_TOKEN_INDEX]
    if len(where) > 1:
        raise LLMGAInputError("LLMGA shows one image per conversation; the prompt has several <image> places.")
    if where and image_rows is None:
        raise LLMGAInputError("The prompt has an <image> placeholder but no image was given.")
    total = len(ids) - len(where) + (image_rows.shape[0] if where and image_rows is not None else 0)
    if total >= model.n_ctx:
        image = f" ({image_rows.shape[0]} of them image rows)" if where and image_rows is not None else ""
        raise LLMGAInputError(
            f"{model.info.path.name}: the prompt has {total} positions{image} but the context holds {model.n_ctx}; "
            "raise context_length on the GGUF loader (LLMGA's models were trained with 2048)."
        )
    model.reset()
    if not where:
        model.feed_tokens(list(ids))
        return
    cut = where[0]
    head, tail = list(ids[:cut]), list(ids[cut + 1 :])
    if head:
        model.feed_tokens(head, want_logits=False)
    model.feed_rows(image_rows, want_logits=not tail)  # type: ignore[arg-type]
    if tail:
        model.feed_tokens(tail)


def _seed32(seed: int) -> int:
    seed &= 0xFFFFFFFF
    return seed if seed != 0xFFFFFFFF else 0x7FFFFFFF  # 0xFFFFFFFF asks llama.cpp for a random seed


def sampler_chain(model: LlamaCppModel, cfg: Any, seed: int, max_new_tokens: int) -> int:
    """A llama.cpp sampler chain for a resolved ``GenerationConfig`` (caller frees it)."""
    lib = model.lib
    chain = lib.llama_sampler_chain_init(lib.llama_sampler_chain_default_params())
    penalty = getattr(cfg, "repetition_penalty", None)
    if penalty is not None and float(penalty) != 1.0:
        lib.llama_sampler_chain_add(
            chain, lib.llama_sampler_init_penalties(model.n_vocab, max(1, max_new_tokens), float(penalty), 0.0, 0.0)
        )
    if not cfg.do_sample:
        lib.llama_sampler_chain_add(chain, lib.llama_sampler_init_greedy())
        return chain
    lib.llama_sampler_chain_add(chain, lib.llama_sampler_init_temp(float(cfg.temperature or 1.0)))
    if cfg.top_k:
        lib.llama_sampler_chain_add(chain, lib.llama_sampler_init_top_k(int(cfg.top_k)))
    if cfg.top_p is not None and float(cfg.top_p) < 1.0:
        lib.llama_sampler_chain_add(chain, lib.llama_sampler_init_top_p(float(cfg.top_p), 1))
    lib.llama_sampler_chain_add(chain, lib.llama_sampler_init_dist(_seed32(seed)))
    return chain


def _generation_defaults(model: LlamaCppModel) -> dict[str, Any]:
    raw = model.info.generation_config
    if not raw:
        return {}
    try:
        loaded = json.loads(raw)
    except ValueError:
        return {}
    return loaded if isinstance(loaded, dict) else {}


def _end_ids(cfg: Any) -> set[int]:
    eos = getattr(cfg, "eos_token_id", None)
    if eos is None:
        return set()
    return {int(e) for e in (eos if isinstance(eos, (list, tuple)) else [eos])}


def run_gguf_turn(
    model: LlamaCppModel,
    prompt: str,
    image_rows: np.ndarray | None = None,
    settings: SamplingSettings | None = None,
    *,
    stop_strings: Sequence[str] = (),
    on_token: TokenCallback | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> GenerationResult:
    """Generate the reply to a rendered ``prompt`` (see the module docstring)."""
    settings = settings or SamplingSettings()
    defaults = _generation_defaults(model)
    cfg = build_generation_config(defaults, settings)
    end_ids = _end_ids(cfg) if defaults.get("eos_token_id") is not None else set()
    stops = [s for s in stop_strings if s]
    longest = max((len(s) for s in stops), default=0)
    start = time.perf_counter()
    ids = prompt_ids(model, prompt)
    model.set_abort(should_stop)
    try:
        prefill(model, ids, image_rows)
    except InterruptedError:
        model.set_abort(None)
        raise
    model.set_abort(None)  # per token, on_token is the check: no Python call inside every graph node
    prompt_len = model.n_past
    chain = sampler_chain(model, cfg, settings.seed, settings.max_new_tokens)
    tokens: list[int] = []
    raw = b""  # pieces joined as bytes: a character may span tokens
    text = ""
    first: float | None = None
    reason = "max_new_tokens"
    try:
        while len(tokens) < settings.max_new_tokens:
            token = int(model.lib.llama_sampler_sample(chain, model._ctx(), -1))
            if first is None:
                first = time.perf_counter() - start
            tokens.append(token)
            previous = len(text)
            raw += model.piece(token)
            text = raw.decode("utf-8", "replace")
            if on_token is not None:
                on_token(token, text)
            if (token in end_ids) if end_ids else model.is_eog(token):
                reason = "eos"
                break
            if stops and any(s in text[max(0, previous - longest) :] for s in stops):
                reason = "stop_string"
                break
            if len(tokens) >= settings.max_new_tokens:
                break
            if model.n_past + 1 >= model.n_ctx:
                reason = "context_full"
                break
            model.feed_tokens([token])
    finally:
        model.lib.llama_sampler_free(chain)
    return GenerationResult(
        token_ids=tokens,
        text=text,
        stop_reason=reason,
        prompt_length=prompt_len,
        first_token_s=first,
        total_s=time.perf_counter() - start,
    )
