"""Token generation for one LLMGA turn (llmga-spec §1.9, §1.10).

Generation is transformers' own ``generate`` on the spliced ``inputs_embeds`` (what the original
``Llava*ForCausalLM.generate`` calls), so greedy output is token-for-token that of ``generate`` and the
KV cache, logits processors and speed are transformers'. Three things are added through one
``StoppingCriteria`` that runs after every token:

- ``on_token(token_id, text_so_far)``: called for every generated token (end token included); anything
  it raises propagates out of ``generate`` right away, which is how a host interrupts;
- stop strings: generation ends once the decoded reply contains one (the original relies on the
  end-of-turn token only; stop strings make templates whose end is several tokens stop cleanly);
- timing of the first token.

Sampling follows the original CLI: ``do_sample = temperature > 0``; values the caller leaves ``None``
(top_p, top_k, repetition_penalty) come from the folder's ``generation_config.json`` as they do there.
``seed`` seeds a forked RNG, so the host's global RNG state is left as it was.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from ..errors import LLMGAInputError, clean_message
from .model import LLMGAModel, LoadedMLLM
from .quantize import quiet_bnb
from .tokenize import tokenizer_input_ids

__all__ = [
    "GenerationResult",
    "SamplingSettings",
    "TokenCallback",
    "build_generation_config",
    "generate_reply",
    "prepare_turn",
    "run_turn",
]

TokenCallback = Callable[[int, str], None]


@dataclass(frozen=True)
class SamplingSettings:
    """User-facing generation settings; ``None`` means "as the checkpoint's generation_config.json"."""

    seed: int = 0
    temperature: float = 0.2  # the original CLIs' default; 0 = greedy
    top_p: float | None = None
    top_k: int | None = None
    max_new_tokens: int = 512
    repetition_penalty: float | None = None

    def __post_init__(self) -> None:
        if self.temperature < 0:
            raise LLMGAInputError("temperature must be 0 (greedy) or positive.")
        if self.top_p is not None and not 0 < self.top_p <= 1:
            raise LLMGAInputError("top_p must be in (0, 1].")
        if self.max_new_tokens < 1:
            raise LLMGAInputError("max_new_tokens must be at least 1.")
        if self.repetition_penalty is not None and self.repetition_penalty <= 0:
            raise LLMGAInputError("repetition_penalty must be positive (1 = off).")


@dataclass
class GenerationResult:
    """One reply."""

    token_ids: list[int]  # generated ids, end token included when one was produced
    text: str  # decoded with special tokens kept, as the original decodes before stripping
    stop_reason: str  # "eos" | "stop_string" | "max_new_tokens"
    prompt_length: int  # positions in inputs_embeds (image features included)
    first_token_s: float | None = None
    total_s: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def tokens_per_s(self) -> float:
        """Decode speed after the first token."""
        if self.first_token_s is None or len(self.token_ids) < 2 or self.total_s <= self.first_token_s:
            return 0.0
        return (len(self.token_ids) - 1) / (self.total_s - self.first_token_s)


def _eos_ids(config: Any) -> list[int]:
    eos = getattr(config, "eos_token_id", None)
    if eos is None:
        return []
    return [int(e) for e in (eos if isinstance(eos, (list, tuple)) else [eos])]


def build_generation_config(
    defaults: Mapping[str, Any], settings: SamplingSettings, tokenizer: Any | None = None
) -> Any:
    """A ``GenerationConfig``: the folder's defaults overridden by ``settings`` (the CLI's rule)."""
    from transformers import GenerationConfig

    known = {k: v for k, v in defaults.items() if k not in ("transformers_version", "_from_model_config")}
    try:
        cfg = GenerationConfig(**known)
    except (ValueError, TypeError) as exc:
        raise LLMGAInputError(
            f"The model folder's generation_config.json is not valid ({clean_message(str(exc))[:200]}); correct or "
            "delete that file."
        ) from None
    cfg.max_length = None  # max_new_tokens rules; a stored max_length (e.g. 4096) must not cut earlier
    cfg.max_new_tokens = settings.max_new_tokens
    cfg.use_cache = True
    cfg.num_beams = 1
    if settings.temperature > 0:
        cfg.do_sample = True
        cfg.temperature = float(settings.temperature)
        if settings.top_p is not None:
            cfg.top_p = float(settings.top_p)
        if settings.top_k is not None:
            cfg.top_k = int(settings.top_k)
    else:
        cfg.do_sample = False
        cfg.temperature = None
        cfg.top_p = None
        cfg.top_k = None
    if settings.repetition_penalty is not None:
        cfg.repetition_penalty = float(settings.repetition_penalty)
    if cfg.eos_token_id is None and tokenizer is not None and tokenizer.eos_token_id is not None:
        cfg.eos_token_id = tokenizer.eos_token_id
    if cfg.pad_token_id is None:
        eos = _eos_ids(cfg)
        cfg.pad_token_id = eos[0] if eos else 0  # the CLI passes pad_token_id=eos
    return cfg


class _TokenWatcher:
    """StoppingCriteria: callback per token, stop strings, first-token time."""

    def __init__(
        self,
        tokenizer: Any,
        stop_strings: Sequence[str],
        on_token: TokenCallback | None,
        eos_ids: Sequence[int],
        start: float,
    ) -> None:
        self.tokenizer = tokenizer
        self.stop_strings = [s for s in stop_strings if s]
        self.longest_stop = max((len(s) for s in self.stop_strings), default=0)
        self.on_token = on_token
        self.eos_ids = set(eos_ids)
        self.start = start
        self.ids: list[int] = []
        self.text = ""
        self.first_token_s: float | None = None
        self.stopped_by_string = False

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor, **kwargs: Any) -> torch.BoolTensor:
        token = int(input_ids[0, -1])
        if self.first_token_s is None:
            self.first_token_s = time.perf_counter() - self.start
        self.ids.append(token)
        previous = len(self.text)
        if self.on_token is not None or self.stop_strings:
            self.text = self.tokenizer.decode(self.ids, skip_special_tokens=False)
        if self.on_token is not None:
            self.on_token(token, self.text)
        done = False
        if self.stop_strings and token not in self.eos_ids:
            tail = self.text[max(0, previous - self.longest_stop) :]
            if any(s in tail for s in self.stop_strings):
                self.stopped_by_string = done = True
        return torch.full((input_ids.shape[0],), done, dtype=torch.bool, device=input_ids.device)


@torch.inference_mode()
def generate_reply(
    model: LLMGAModel,
    tokenizer: Any,
    inputs_embeds: torch.Tensor,
    settings: SamplingSettings | None = None,
    *,
    generation_defaults: Mapping[str, Any] | None = None,
    stop_strings: Sequence[str] = (),
    on_token: TokenCallback | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> GenerationResult:
    """Generate from spliced ``inputs_embeds`` (1, L, hidden). See the module docstring.

    ``overrides`` are extra ``GenerationConfig`` fields set last (e.g. ``{"cache_implementation":
    "static"}`` for a fixed-shape cache that ``torch.compile`` can specialise on).
    """
    from transformers import StoppingCriteriaList

    settings = settings or SamplingSettings()
    gen_cfg = build_generation_config(generation_defaults or {}, settings, tokenizer)
    for key, value in (overrides or {}).items():
        setattr(gen_cfg, key, value)
    lm = model.language_model
    embeds = inputs_embeds.to(device=model.llm_device, dtype=model.llm_dtype)
    attention = torch.ones(embeds.shape[:2], dtype=torch.long, device=embeds.device)
    start = time.perf_counter()
    watcher = _TokenWatcher(tokenizer, stop_strings, on_token, _eos_ids(gen_cfg), start)
    devices = [embeds.device] if embeds.device.type != "cpu" else []
    with (
        torch.random.fork_rng(devices=devices, device_type=embeds.device.type if devices else "cuda"),
        warnings.catch_warnings(),
        quiet_bnb(),  # LLM.int8 casts activations through fp16 by design and logs it on every call
    ):
        # The original also passes inputs_embeds, so the penalty covers generated tokens only, as here.
        warnings.filterwarnings("ignore", message=".*repetition_penalty.*inputs_embeds.*")
        torch.manual_seed(settings.seed)
        out = lm.generate(
            inputs_embeds=embeds,
            attention_mask=attention,
            generation_config=gen_cfg,
            stopping_criteria=StoppingCriteriaList([watcher]),
        )
    total = time.perf_counter() - start
    ids = [int(t) for t in out[0, -len(watcher.ids) :]] if watcher.ids else []
    eos = watcher.eos_ids
    if watcher.stopped_by_string:
        reason = "stop_string"
    elif ids and ids[-1] in eos:
        reason = "eos"
    else:
        reason = "max_new_tokens"
    watched = watcher.ids and (on_token is not None or stop_strings)
    text = watcher.text if watched else tokenizer.decode(ids, skip_special_tokens=False)
    return GenerationResult(
        token_ids=ids,
        text=text,
        stop_reason=reason,
        prompt_length=int(embeds.shape[1]),
        first_token_s=watcher.first_token_s,
        total_s=total,
    )


def _pixel_values(mllm: LoadedMLLM, image: Any) -> torch.Tensor | None:
    """Pixels from an ``MLLMImage``, a tensor, or a PIL image (stretched to a square, CLIP-processed)."""
    if image is None:
        return None
    if isinstance(image, torch.Tensor):
        return image if image.ndim == 4 else image[None]
    pixels = getattr(image, "pixel_values", None)
    if isinstance(pixels, torch.Tensor):
        return pixels
    from .image_prep import clip_preprocess, stretch_to_square, to_pil_rgb

    return clip_preprocess(stretch_to_square(to_pil_rgb(image)), mllm.clip_preprocess)


@torch.inference_mode()
def prepare_turn(mllm: LoadedMLLM, prompt: str, image: Any = None) -> torch.Tensor:
    """``inputs_embeds`` for a rendered prompt (with ``<image>`` where the image goes) and its image."""
    if not prompt:
        raise LLMGAInputError("The prompt is empty: type an instruction.")
    ids = tokenizer_input_ids(prompt, mllm.tokenizer)
    return mllm.model.prepare_inputs(ids, _pixel_values(mllm, image))


def run_turn(
    mllm: LoadedMLLM,
    prompt: str,
    image: Any = None,
    settings: SamplingSettings | None = None,
    *,
    stop_strings: Sequence[str] = (),
    on_token: TokenCallback | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> GenerationResult:
    """One LLMGA turn: tokenize the rendered ``prompt`` with LLaVA's chunk rule, splice ``image``
    (``MLLMImage`` from ``prepare_mllm_image``, a (1,3,S,S) tensor, or a PIL image), generate."""
    start = time.perf_counter()
    embeds = prepare_turn(mllm, prompt, image)
    prep = time.perf_counter() - start
    result = generate_reply(
        mllm.model,
        mllm.tokenizer,
        embeds,
        settings,
        generation_defaults=mllm.folder.generation_config,
        stop_strings=stop_strings,
        on_token=on_token,
        overrides=overrides,
    )
    result.extra["prepare_s"] = prep
    if result.first_token_s is not None:
        result.first_token_s += prep
    result.total_s += prep
    return result
