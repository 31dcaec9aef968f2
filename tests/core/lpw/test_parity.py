"""Parity with LLMGA's own LPW functions (golden data in tests/golden/lpw, see PROVENANCE.md there).

The golden embeddings are float32 from one CPU: they and ours are each compared with a float64 run of our
layout on the same encoders, within the float32 bounds of tests/tolerances.py.
"""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
import torch

from llmga_core.lpw import (
    CLIP_G_TOKENS,
    CLIP_L_TOKENS,
    LPWConditioning,
    encode_sd15,
    encode_sd15_training,
    encode_sdxl,
    hf_clip_encoder,
    pair_encoders,
    plain_tokens,
    weighted_tokens,
)
from llmga_core.lpw.layouts import CHUNK_BODY, pad_to_chunks, spread_weights
from tests.core.lpw.conftest import GOLDEN_DIR
from tests.core.lpw.tiny_clip import fingerprint
from tests.tolerances import (
    FINGERPRINT_RELATIVE,
    assert_within,
    float32_bound,
    network_growth,
    renormalisation_amplification,
)

pytestmark = pytest.mark.parity

with open(GOLDEN_DIR / "lpw_parity.json", encoding="utf-8") as _f:
    CASES = json.load(_f)["cases"]


def _run(case: dict[str, Any], tokenize, encode_last, encode_xl, tokenize_g) -> LPWConditioning:
    if case["layout"] == "sd15":
        return encode_sd15(
            case["prompt"], case["negative"], tokenize=tokenize, encode=encode_last, max_chunks=case["max_chunks"]
        )
    if case["layout"] == "sd15_training":
        return encode_sd15_training(
            case["prompt"], case["negative"], tokenize=tokenize, encode=encode_last, max_chunks=case["max_chunks"]
        )
    return encode_sdxl(
        case["prompt"],
        case["negative"],
        tokenize=tokenize,
        tokenize_g=tokenize_g,
        encode_pair=encode_xl,
        max_chunks=case["max_chunks"],
    )


@pytest.fixture(scope="module")
def encoders64(clip_l: torch.nn.Module, clip_g: torch.nn.Module) -> tuple[Any, Any]:
    """The tiny encoders in float64: (SD1.5 last-layer encoder, SDXL pair encoder)."""
    l64, g64 = copy.deepcopy(clip_l).double(), copy.deepcopy(clip_g).double()
    return hf_clip_encoder(l64), pair_encoders(hf_clip_encoder(l64, -2), hf_clip_encoder(g64, -2))


def _renormalised(case: dict[str, Any], weights_key: str) -> bool:
    """Whether the SD1.5 layout rescaled this side (its prompt carries a weight other than 1)."""
    return case["layout"] == "sd15" and bool(set(case[weights_key]) - {1.0})


def test_fixture_weights_are_the_golden_ones(golden, clip_l, clip_g) -> None:
    # A mismatch here means the tiny encoders changed (e.g. a transformers rename), not the algorithm.
    assert fingerprint(clip_l) == pytest.approx(golden["fingerprints"]["clip_l"], rel=FINGERPRINT_RELATIVE)
    assert fingerprint(clip_g) == pytest.approx(golden["fingerprints"]["clip_g"], rel=FINGERPRINT_RELATIVE)


def test_golden_covers_every_layout_and_length() -> None:
    layouts = {c["layout"] for c in CASES}
    assert layouts == {"sd15", "sd15_training", "sdxl"}
    for layout in layouts:
        lengths = {c["cond_shape"][1] for c in CASES if c["layout"] == layout}
        assert len(lengths) >= 4, layout  # 1 to 4 chunks
    assert any(c["content_tokens"] > 300 for c in CASES)


@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_embeddings_match_llmga(
    case, golden, tokenize, tokenize_g, encode_last, encode_xl, encoders64, clip_l, clip_g
) -> None:
    result = _run(case, tokenize, encode_last, encode_xl, tokenize_g)
    reference = _run(case, tokenize, *encoders64, tokenize_g)
    tensors, keys = golden["tensors"], case["tensors"]
    assert result.chunks == case["chunks"]
    assert list(result.cond.shape) == case["cond_shape"]
    assert result.uncond.shape == result.cond.shape
    assert result.cond.dtype == torch.float32
    if "uncond" not in keys:
        assert case["uncond_is_zero"]
        assert not result.uncond.any()
        assert result.uncond_pooled is not None and not result.uncond_pooled.any()
    # SDXL's hidden states are CLIP-L's and CLIP-G's side by side; the larger growth covers both.
    growth = max(network_growth(clip_l), network_growth(clip_g)) if case["layout"] == "sdxl" else network_growth(clip_l)
    renormalised = {
        "cond": _renormalised(case, "weights"),
        "uncond": _renormalised(case, "uncond_weights"),
    }
    for name, key in keys.items():
        ref = getattr(reference, name)
        amplification = renormalisation_amplification(ref) if renormalised.get(name) else 0.0
        bound = float32_bound(ref, growth=growth, amplification=amplification)
        assert_within(tensors[key], ref, bound, f"{case['name']} {name} original")
        assert_within(getattr(result, name), ref, bound, f"{case['name']} {name} ours")
    # The count the node warns with: everything past the layout's cap.
    cap = CHUNK_BODY * case["max_chunks"]
    assert result.dropped == max(0, case["content_tokens"] - cap)
    if case["layout"] != "sdxl":
        assert result.uncond_dropped == max(0, case["negative_content_tokens"] - cap)


SD15_CASES = [c for c in CASES if c["layout"] == "sd15"]


@pytest.mark.parametrize("case", SD15_CASES, ids=[c["name"] for c in SD15_CASES])
def test_sd15_ids_and_weights_match_llmga(case, tokenize) -> None:
    cap, chunks = CHUNK_BODY * case["max_chunks"], case["chunks"]
    for text, ids_key, weights_key in (
        (case["prompt"], "ids", "weights"),
        (case["negative"], "uncond_ids", "uncond_weights"),
    ):
        tokens = weighted_tokens(text, tokenize, cap)
        assert pad_to_chunks(tokens.ids, chunks, CLIP_L_TOKENS) == case[ids_key]
        assert spread_weights(tokens.weights, chunks) == case[weights_key]


def test_weighted_golden_prompts_really_carry_weights() -> None:
    weighted = [c for c in SD15_CASES if "weighted" in c["name"]]
    assert weighted
    for case in weighted:
        assert {w for w in case["weights"]} - {1.0}, case["name"]


XL_CASES = [c for c in CASES if c["layout"] == "sdxl"]


@pytest.mark.parametrize("case", XL_CASES, ids=[c["name"] for c in XL_CASES])
def test_sdxl_ids_match_llmga(case, tokenize, tokenize_g) -> None:
    chunks = case["chunks"]
    tokens = plain_tokens(case["prompt"], tokenize, CHUNK_BODY * 4)
    assert pad_to_chunks(tokens.ids, chunks, CLIP_L_TOKENS) == case["ids_l"]
    assert pad_to_chunks(plain_tokens(case["prompt"], tokenize_g, 300).ids, chunks, CLIP_G_TOKENS) == case["ids_g"]
    if case["negative"] is not None:
        neg = plain_tokens(case["negative"], tokenize, CHUNK_BODY * chunks)
        assert pad_to_chunks(neg.ids, chunks, CLIP_L_TOKENS) == case["uncond_ids_l"]
        assert pad_to_chunks(neg.ids, chunks, CLIP_G_TOKENS) == case["uncond_ids_g"]


TRAIN_CASES = [c for c in CASES if c["layout"] == "sd15_training"]


@pytest.mark.parametrize("case", TRAIN_CASES, ids=[c["name"] for c in TRAIN_CASES])
def test_training_ids_match_llmga(case, tokenize) -> None:
    tokens = plain_tokens(case["prompt"], tokenize, CHUNK_BODY * 4)
    assert pad_to_chunks(tokens.ids, case["chunks"], CLIP_L_TOKENS) == case["ids"]
    assert pad_to_chunks((), case["chunks"], CLIP_L_TOKENS) == case["uncond_ids"]
