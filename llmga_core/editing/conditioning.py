"""Which conditioning each stage of the edit sees (mask, inversion, sampling), and checks that they fit the model.

A conditioning here is ComfyUI's CONDITIONING value: a list of ``[tokens, extras]`` pairs, ``tokens`` a
[B, T, D] tensor and ``extras`` a dict (``pooled_output``, SDXL sizes, ControlNet …). It is plain Python and
torch, so these rules need no ComfyUI.

Token alignment per model family (docs/editing.md):

* **SD1.5 family** (768-wide CLIP-L tokens, what LLMGA edits with): the original's rules (llmga-spec.md 3.4).
  Sampling: target and negative as given. When the conditionings carry the text-derived stage encodings
  (LLMGA Long Prompt Encode, sd15 layout; :mod:`.stage_prompts`) the inversion and the mask use them, which
  is exactly what the original feeds those stages. Otherwise (any other text encoder) they are approximated
  from the tensors: inversion with source and negative cut to their first 77 tokens, mask with target and
  source cut to at most 3 chunks and the shorter one padded with the negative's first chunk (the encoding of
  "", what LPW pads with).
* **SDXL and other families** (no original to follow): every stage uses the conditionings whole, each prompt
  with its own pooled vector and size embeddings. The mask compares source and target at their own lengths:
  LPW's SDXL layout gives 75m+2 tokens, which whole-chunk padding cannot reach, and ComfyUI evaluates
  conditionings of different lengths either in separate batches or repeated to a common length, which leaves
  cross-attention unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from ..errors import LLMGAInputError
from .stage_prompts import STAGE_KEY, StagePrompt, mask_pair

Conditioning = list[list[Any]]  # [[tokens [B, T, D], {extras}], ...]

CHUNK = 77  # CLIP tokens per conditioning chunk
MASK_MAX_CHUNKS = 3  # the original's mask stage encodes both prompts with at most 3 LPW chunks
SD15_CONTEXT_DIM = 768

# Token widths of the text encoders, to name a conditioning's family in error messages.
FAMILY_OF_WIDTH = {768: "SD1.5", 1024: "SD2.x", 2048: "SDXL", 4096: "SD3/T5", 1280: "Stable Cascade"}


@dataclass(frozen=True)
class ModelConds:
    """What a model expects of a conditioning: token width and whether it needs a pooled vector (SDXL's ADM)."""

    family: str  # human name, e.g. "SDXL"
    context_dim: int | None
    needs_pooled: bool

    @property
    def original_rules(self) -> bool:
        """Whether LLMGA's own per-stage truncation applies (it edits with SD1.5)."""
        return self.context_dim == SD15_CONTEXT_DIM


def token_count(cond: Conditioning) -> int:
    return max(int(entry[0].shape[1]) for entry in cond)


def cut_tokens(cond: Conditioning, length: int) -> Conditioning:
    """Keep the first ``length`` tokens of every entry (the original's plain 77-token truncation)."""
    return [[entry[0][:, :length], entry[1]] for entry in cond]


def pad_tokens(cond: Conditioning, length: int, filler: torch.Tensor) -> Conditioning:
    """Append copies of the 77-token ``filler`` chunk until every entry has ``length`` tokens.

    LLMGA pads the shorter mask prompt with empty chunks (BOS + 75 padding + EOS, i.e. the encoding of ""), so
    the first chunk of an empty negative prompt is exactly that chunk. Entries whose gap is not whole chunks
    are left alone: ComfyUI batches different lengths by itself.
    """
    out = []
    for tensor, extras in cond:
        gap = length - int(tensor.shape[1])
        if gap > 0 and gap % CHUNK == 0 and filler.shape[1] == CHUNK:
            fill = filler.to(device=tensor.device, dtype=tensor.dtype).expand(tensor.shape[0], -1, -1)
            tensor = torch.cat([tensor, *([fill] * (gap // CHUNK))], dim=1)
        out.append([tensor, extras])
    return out


def check_conditioning(name: str, cond: Any, model: ModelConds | None = None) -> Conditioning:
    """A non-empty CONDITIONING whose token width (and pooled vector) fit ``model``; else a clear error."""
    if (
        not isinstance(cond, list)
        or not cond
        or not all(
            isinstance(e, list | tuple) and len(e) == 2 and isinstance(e[0], torch.Tensor) and e[0].ndim == 3
            for e in cond
        )
    ):
        raise LLMGAInputError(f"the {name} conditioning is empty; connect a text encode node to it.")
    if model is None:
        return cond
    for tokens, extras in cond:
        width = int(tokens.shape[-1])
        if model.context_dim is not None and width != model.context_dim:
            made_by = FAMILY_OF_WIDTH.get(width, f"a {width}-wide text encoder")
            raise LLMGAInputError(
                f"the {name} conditioning has {width}-wide tokens ({made_by}), but this {model.family} model "
                f"takes {model.context_dim}-wide tokens: encode the prompts with the CLIP of the same checkpoint "
                "as the model."
            )
        if model.needs_pooled and not isinstance(extras.get("pooled_output"), torch.Tensor):
            raise LLMGAInputError(
                f"the {name} conditioning has no pooled text vector, which this {model.family} model needs: encode "
                "it with CLIP Text Encode (SDXL), CLIP Text Encode or LLMGA Long Prompt Encode on this checkpoint's "
                "CLIP."
            )
    return cond


def stage_conditionings(
    source: Conditioning, target: Conditioning, negative: Conditioning, model: ModelConds | None = None
) -> dict[str, Conditioning]:
    """The six conditionings of the edit, keyed by the names of ``nodes``' ``STAGE_CONDS``.

    ``model`` None or an SD1.5-family model: the original's per-stage rules; any other family: every stage
    uses the conditionings whole (module docstring).
    """
    for name, cond in (("source", source), ("target", target), ("negative", negative)):
        check_conditioning(name, cond, model)
    if model is not None and not model.original_rules:
        return {
            "positive": target,
            "negative": negative,
            "source": source,
            "inversion_negative": negative,
            "mask_target": target,
            "mask_source": source,
        }
    text_stages = _text_stages(source, target, negative)
    if text_stages is not None:
        return {"positive": target, "negative": negative, **text_stages}
    mask_length = min(max(token_count(source), token_count(target)), MASK_MAX_CHUNKS * CHUNK)
    filler = negative[0][0][:1, :CHUNK]
    return {
        "positive": target,
        "negative": negative,
        "source": cut_tokens(source, CHUNK),
        "inversion_negative": cut_tokens(negative, CHUNK),
        "mask_target": pad_tokens(cut_tokens(target, mask_length), mask_length, filler),
        "mask_source": pad_tokens(cut_tokens(source, mask_length), mask_length, filler),
    }


def _stage_prompt(cond: Conditioning) -> StagePrompt | None:
    if len(cond) != 1:
        return None
    found = cond[0][1].get(STAGE_KEY)
    return found if isinstance(found, StagePrompt) else None


def _text_stages(source: Conditioning, target: Conditioning, negative: Conditioning) -> dict[str, Conditioning] | None:
    """The inversion and mask conditionings from the encoders' text-derived stage encodings, when all are there."""
    src, tgt, neg = _stage_prompt(source), _stage_prompt(target), _stage_prompt(negative)
    if src is None or tgt is None:
        return None
    mask_target, mask_source = mask_pair(tgt, src)
    (src_tokens, src_extras), (tgt_tokens, tgt_extras) = source[0], target[0]

    def like(tensor: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
        return tensor.to(device=tokens.device, dtype=tokens.dtype).expand(tokens.shape[0], -1, -1)

    uncond = neg.inversion if neg is not None else src.empty_chunk
    return {
        "source": [[like(src.inversion, src_tokens), src_extras]],
        "inversion_negative": [[like(uncond, negative[0][0]), negative[0][1]]],
        "mask_target": [[like(mask_target, tgt_tokens), tgt_extras]],
        "mask_source": [[like(mask_source, src_tokens), src_extras]],
    }
