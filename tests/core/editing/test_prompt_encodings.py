"""Which encoding feeds which stage: the golden embeddings the original computed, rebuilt from the prompts.

The original encodes per stage (llmga-spec.md 3.4): mask = target and source LPW-padded to a common length
(3 chunks max), inversion = source cut at 77 tokens and a 77-token "", sampling = target LPW (4 chunks max)
with "" padded to the same length. llmga_core.lpw plus a plain 77-token cut reproduce all six exactly, so a
host can build the edit conditionings from these rules. The golden float32 embeddings and ours are both
compared with a float64 run of the same encoder (bounds: tests/tolerances.py).
"""

from __future__ import annotations

import copy

import pytest
import torch

from llmga_core.lpw import encode_sd15, hf_clip_encoder, hf_tokenize, weighted_tokens
from tests.core.editing.conftest import Golden
from tests.core.editing.tiny_models import fingerprint, tiny_clip
from tests.core.lpw.tiny_clip import load_tokenizer
from tests.tolerances import (
    FINGERPRINT_RELATIVE,
    assert_within,
    float32_bound,
    network_growth,
    renormalisation_amplification,
)

pytestmark = pytest.mark.parity


@pytest.fixture(scope="module")
def clip() -> torch.nn.Module:
    return tiny_clip()


def test_text_encoder_is_the_golden_one(golden: Golden, clip: torch.nn.Module) -> None:
    assert fingerprint(clip) == pytest.approx(golden.fingerprints["text_encoder"], rel=FINGERPRINT_RELATIVE)


def stage_encodings(clip: torch.nn.Module, cfg: dict) -> dict[str, torch.Tensor]:
    tokenizer = load_tokenizer()
    tokenize, encode = hf_tokenize(tokenizer), hf_clip_encoder(clip)
    with torch.no_grad():
        # encode_sd15 pads its two prompts to a common chunk count: exactly what the mask stage needs
        mask = encode_sd15(cfg["target_prompt"], cfg["source_prompt"], tokenize=tokenize, encode=encode, max_chunks=3)
        sampling = encode_sd15(cfg["target_prompt"], "", tokenize=tokenize, encode=encode, max_chunks=4)
        plain = [
            clip(tokenizer(p, padding="max_length", max_length=77, return_tensors="pt").input_ids[:, :77])[0]
            for p in (cfg["source_prompt"], "")
        ]
    return {
        "mask_target_cond": mask.cond,
        "mask_source_cond": mask.uncond,
        "sampling_target_cond": sampling.cond,
        "sampling_uncond": sampling.uncond,
        "inversion_source_cond": plain[0],
        "inversion_uncond": plain[1],
    }


@pytest.mark.parametrize("config", ["s10_skip25", "s20_skip36"])
def test_stage_encodings_match_the_original(golden: Golden, clip: torch.nn.Module, config: str) -> None:
    cfg = golden.configs[config]
    ours = stage_encodings(clip, cfg)
    reference = stage_encodings(copy.deepcopy(clip).double(), cfg)
    tokenize = hf_tokenize(load_tokenizer())
    prompts_used = (cfg["target_prompt"], cfg["source_prompt"])
    weighted = {p for p in prompts_used if set(weighted_tokens(p, tokenize, 300).weights) - {1.0}}
    prompts = {"mask_target_cond": cfg["target_prompt"], "mask_source_cond": cfg["source_prompt"]}
    prompts["sampling_target_cond"] = cfg["target_prompt"]
    growth = network_growth(clip)
    for name, ref in reference.items():
        # only the LPW stages renormalise, and only a prompt with weights
        renormalised = prompts.get(name) in weighted
        amplification = renormalisation_amplification(ref) if renormalised else 0.0
        bound = float32_bound(ref, growth=growth, amplification=amplification)
        assert_within(golden.get(config, name), ref, bound, f"{config} {name} original")
        assert_within(ours[name], ref, bound, f"{config} {name} ours")
