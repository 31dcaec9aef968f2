"""Which encoding feeds which stage: the golden embeddings the original computed, rebuilt from the prompts.

The original encodes per stage (llmga-spec.md 3.4): mask = target and source LPW-padded to a common length
(3 chunks max), inversion = source cut at 77 tokens and a 77-token "", sampling = target LPW (4 chunks max)
with "" padded to the same length. llmga_core.lpw plus a plain 77-token cut reproduce all six exactly, so a
host can build the edit conditionings from these rules.
"""

from __future__ import annotations

import pytest
import torch

from llmga_core.lpw import encode_sd15, hf_clip_encoder, hf_tokenize
from tests.core.editing.conftest import Golden
from tests.core.editing.tiny_models import fingerprint, tiny_clip
from tests.core.lpw.tiny_clip import load_tokenizer


@pytest.fixture(scope="module")
def clip() -> torch.nn.Module:
    return tiny_clip()


def test_text_encoder_is_the_golden_one(golden: Golden, clip: torch.nn.Module) -> None:
    assert fingerprint(clip) == pytest.approx(golden.fingerprints["text_encoder"], rel=1e-12)


@pytest.mark.parametrize("config", ["s10_skip25", "s20_skip36"])
def test_stage_encodings_match_the_original(golden: Golden, clip: torch.nn.Module, config: str) -> None:
    tokenizer = load_tokenizer()
    tokenize, encode = hf_tokenize(tokenizer), hf_clip_encoder(clip)
    cfg = golden.configs[config]
    with torch.no_grad():
        # encode_sd15 pads its two prompts to a common chunk count: exactly what the mask stage needs
        mask = encode_sd15(cfg["target_prompt"], cfg["source_prompt"], tokenize=tokenize, encode=encode, max_chunks=3)
        sampling = encode_sd15(cfg["target_prompt"], "", tokenize=tokenize, encode=encode, max_chunks=4)
        plain = [
            clip(tokenizer(p, padding="max_length", max_length=77, return_tensors="pt").input_ids[:, :77])[0]
            for p in (cfg["source_prompt"], "")
        ]
    expected = {
        "mask_target_cond": mask.cond,
        "mask_source_cond": mask.uncond,
        "sampling_target_cond": sampling.cond,
        "sampling_uncond": sampling.uncond,
        "inversion_source_cond": plain[0],
        "inversion_uncond": plain[1],
    }
    for name, ours in expected.items():
        torch.testing.assert_close(ours, golden.get(config, name), rtol=0, atol=1e-6, msg=name)
