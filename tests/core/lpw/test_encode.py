"""Behaviour of the LPW encoders: lengths, negatives, pooled choice, weighting, and spec 2.5 facts."""

from __future__ import annotations

import pytest
import torch

from llmga_core.errors import LLMGAInputError
from llmga_core.lpw import (
    CLIP_G_TOKENS,
    CLIP_L_TOKENS,
    encode_sd15,
    encode_sd15_training,
    encode_sdxl,
    pair_encoders,
    renormalised_weighting,
)
from llmga_core.lpw.layouts import chunk_windows, pad_to_chunks
from tests.core.lpw.fakes import EOS, FakeEncoder, char_tokenize, native_comfy_chunks


def fake_pair() -> tuple[FakeEncoder, FakeEncoder, object]:
    enc_l, enc_g = FakeEncoder(1.0), FakeEncoder(2.0)
    return enc_l, enc_g, pair_encoders(enc_l, enc_g)


# --- lengths, negatives, pooled


@pytest.mark.parametrize(("pos", "neg", "chunks"), [(10, 0, 1), (80, 0, 2), (10, 160, 3), (200, 80, 3), (400, 0, 3)])
def test_sd15_pos_and_neg_share_m_and_length(pos: int, neg: int, chunks: int) -> None:
    enc = FakeEncoder()
    out = encode_sd15("x" * pos, "y" * neg, tokenize=char_tokenize, encode=enc, max_chunks=3)
    assert out.chunks == chunks
    assert out.cond.shape == out.uncond.shape == (1, 77 * chunks, 4)
    assert len(enc.calls) == 2 * chunks
    assert out.dropped == max(0, pos - 225) and out.uncond_dropped == max(0, neg - 225)


@pytest.mark.parametrize(("pos", "neg", "chunks"), [(10, 0, 1), (80, 0, 2), (10, 160, 3), (320, 0, 4)])
def test_training_layout_is_75m_plus_2(pos: int, neg: int, chunks: int) -> None:
    out = encode_sd15_training("x" * pos, "y" * neg, tokenize=char_tokenize, encode=FakeEncoder())
    assert out.chunks == chunks
    assert out.cond.shape == out.uncond.shape == (1, 75 * chunks + 2, 4)
    assert out.dropped == max(0, pos - 300)


def test_sd15_pooled_is_the_first_chunk() -> None:
    out = encode_sd15("x" * 100, tokenize=char_tokenize, encode=FakeEncoder())
    assert out.pooled is not None and out.pooled[0, 2] == 1.0  # call number 1


@pytest.mark.parametrize("empty", ["", "   "])
def test_empty_positive_is_allowed(empty: str) -> None:
    sd15 = encode_sd15(empty, tokenize=char_tokenize, encode=FakeEncoder())
    assert sd15.cond.shape == (1, 77, 4)
    assert sd15.cond[0, 1:, 0].eq(EOS).all()  # BOS + EOS x 76
    _, _, pair = fake_pair()
    xl = encode_sdxl(empty, tokenize=char_tokenize, encode_pair=pair)
    assert xl.cond.shape == (1, 77, 8) and xl.chunks == 1
    assert xl.cond[0, 1:76, 4].eq(0).all() and xl.cond[0, 76, 4] == EOS  # clip_g: "!" then EOS


def test_sdxl_pooled_is_the_last_chunk_of_clip_g() -> None:
    _, enc_g, pair = fake_pair()
    out = encode_sdxl("x" * 200, tokenize=char_tokenize, encode_pair=pair)
    assert out.chunks == 3 and len(enc_g.calls) == 3
    assert out.pooled is not None
    assert out.pooled[0, 2] == 3.0 and out.pooled[0, 3] == 2.0  # third call, CLIP-G
    assert out.cond.shape == (1, 227, 8)
    assert out.cond[0, :, 3].eq(1.0).all() and out.cond[0, :, 7].eq(2.0).all()  # CLIP-L features first


@pytest.mark.parametrize("negative", [None, "", "  \n"])
def test_sdxl_absent_negative_is_zero(negative) -> None:
    _, enc_g, pair = fake_pair()
    out = encode_sdxl("x" * 100, negative, tokenize=char_tokenize, encode_pair=pair)
    assert len(enc_g.calls) == 2  # the negative is not encoded
    assert out.uncond.shape == out.cond.shape and not out.uncond.any()
    assert out.uncond_pooled is not None and out.uncond_pooled.shape == out.pooled.shape
    assert not out.uncond_pooled.any()


def test_sdxl_empty_negative_can_be_encoded_like_the_original_explicit_empty_string() -> None:
    _, _, pair = fake_pair()
    out = encode_sdxl("x" * 100, "", tokenize=char_tokenize, encode_pair=pair, zero_empty_negative=False)
    assert out.uncond.any() and out.uncond.shape == out.cond.shape
    assert out.uncond[0, 1:-1, 0].eq(EOS).all() and out.uncond[0, 1:-1, 4].eq(0).all()


def test_sdxl_negative_follows_the_positive_chunk_count() -> None:
    _, _, pair = fake_pair()
    alone = encode_sdxl("x" * 80, tokenize=char_tokenize, encode_pair=pair)
    _, _, pair = fake_pair()
    longer = encode_sdxl("x" * 80, "y" * 200, tokenize=char_tokenize, encode_pair=pair)
    assert longer.chunks == alone.chunks == 2
    assert longer.uncond.shape == longer.cond.shape == (1, 152, 8)
    assert longer.uncond_dropped == 50
    assert torch.equal(longer.cond[..., :2], alone.cond[..., :2])  # ids and positions unchanged
    _, _, pair = fake_pair()
    shorter = encode_sdxl("x" * 200, "y" * 10, tokenize=char_tokenize, encode_pair=pair)
    assert shorter.uncond.shape == shorter.cond.shape == (1, 227, 8)
    assert shorter.uncond_dropped == 0


def test_sd15_none_negative_is_the_empty_prompt() -> None:
    a = encode_sd15("x" * 100, None, tokenize=char_tokenize, encode=FakeEncoder())
    b = encode_sd15("x" * 100, "", tokenize=char_tokenize, encode=FakeEncoder())
    assert torch.equal(a.uncond[..., :2], b.uncond[..., :2])
    c = encode_sd15_training("x", None, tokenize=char_tokenize, encode=FakeEncoder())
    assert c.uncond.shape == c.cond.shape


def test_non_text_prompt_is_a_clear_error() -> None:
    with pytest.raises(LLMGAInputError, match="positive prompt must be text"):
        encode_sd15(None, tokenize=char_tokenize, encode=FakeEncoder())  # type: ignore[arg-type]
    _, _, pair = fake_pair()
    with pytest.raises(LLMGAInputError, match="negative prompt must be text"):
        encode_sdxl("a", 3, tokenize=char_tokenize, encode_pair=pair)  # type: ignore[arg-type]


def test_separate_clip_g_tokenizer_is_used_for_clip_g() -> None:
    enc_l, enc_g, pair = fake_pair()
    encode_sdxl("ab", tokenize=char_tokenize, tokenize_g=lambda t: [7] * len(t), encode_pair=pair)
    assert enc_l.calls[0][0, 1:3].tolist() == [ord("a"), ord("b")]
    assert enc_g.calls[0][0, 1:3].tolist() == [7, 7]


# --- weighting


def test_renormalised_weighting_keeps_the_mean_and_scales_weighted_tokens() -> None:
    hidden = torch.rand(1, 77, 8) + 0.5
    weights = [1.0] * 77
    weights[3:6] = [1.5, 0.5, 2.0]
    out = renormalised_weighting(hidden, weights)
    assert torch.allclose(out.mean(), hidden.mean(), atol=1e-6)
    ratio = out / hidden
    scale = ratio[0, 0, 0]
    assert torch.allclose(ratio[0, :, 0], torch.tensor(weights) * scale, atol=1e-6)
    assert torch.allclose(ratio, ratio[..., :1].expand_as(ratio), atol=1e-6)  # same factor on every channel


def test_unit_weights_leave_the_embedding_untouched() -> None:
    hidden = torch.rand(1, 154, 4)
    assert renormalised_weighting(hidden, [1.0] * 154) is hidden


def test_weights_that_cancel_the_mean_are_a_clear_error() -> None:
    hidden = torch.ones(1, 2, 1)
    with pytest.raises(LLMGAInputError, match="weights"):
        renormalised_weighting(hidden, [1.0, -1.0])


def test_sd15_weights_land_on_the_weighted_tokens() -> None:
    plain = encode_sd15("ab cd", tokenize=char_tokenize, encode=FakeEncoder())
    weighted = encode_sd15("ab (cd:2)", tokenize=char_tokenize, encode=FakeEncoder())
    ratio = weighted.cond[0, :, 1] / plain.cond[0, :, 1].clamp(min=1)  # position channel, 0 at BOS
    scale = ratio[1]
    assert torch.allclose(ratio[3:5], 2 * scale.expand(2))
    assert torch.allclose(ratio[1:3], scale.expand(2)) and torch.allclose(ratio[5:], scale.expand(72))
    assert torch.equal(weighted.uncond, plain.uncond)


# --- spec 2.5 with the tiny encoders: what coincides with ComfyUI's native chunking


@pytest.mark.parametrize("words", [12, 60, 150])
def test_sd15_unweighted_equals_native_chunk_encoding(words: int, tokenize, encode_last) -> None:
    prompt = " ".join(["harbor", "lights", "at", "dusk"] * (words // 4))
    ids = list(tokenize(prompt))
    assert len(ids) <= 225
    out = encode_sd15(prompt, tokenize=tokenize, encode=encode_last)
    native = torch.cat([encode_last(torch.tensor([w]))[0] for w in native_comfy_chunks(ids, EOS)], dim=1)
    assert out.dropped == 0
    assert out.cond.shape == native.shape
    assert torch.allclose(out.cond, native, atol=1e-6)


def test_training_and_inference_sd15_agree_up_to_75_tokens(tokenize, encode_last) -> None:
    short = "a lighthouse on a rocky point at dawn"
    assert torch.equal(
        encode_sd15(short, tokenize=tokenize, encode=encode_last).cond,
        encode_sd15_training(short, tokenize=tokenize, encode=encode_last).cond,
    )
    long = " ".join(["lighthouse"] * 90)
    assert encode_sd15(long, tokenize=tokenize, encode=encode_last).cond.shape[1] == 154
    assert encode_sd15_training(long, tokenize=tokenize, encode=encode_last).cond.shape[1] == 152


def test_sd15_empty_negative_equals_native_repeat_to_lcm(tokenize, encode_last) -> None:
    long = " ".join(["lighthouse"] * 160)
    out = encode_sd15(long, tokenize=tokenize, encode=encode_last)
    one_chunk = encode_sd15("", tokenize=tokenize, encode=encode_last).cond
    assert out.chunks == 3
    assert torch.equal(out.uncond, one_chunk.repeat(1, 3, 1))


def test_sd15_short_non_empty_negative_differs_from_native_repeat(tokenize, encode_last) -> None:
    long = " ".join(["lighthouse"] * 160)
    out = encode_sd15(long, "blurry", tokenize=tokenize, encode=encode_last)
    own = encode_sd15("blurry", tokenize=tokenize, encode=encode_last).cond
    assert torch.equal(out.uncond[:, :77], own)  # first chunk is the negative itself
    assert not torch.allclose(out.uncond, own.repeat(1, 3, 1))  # LPW pads with empty chunks instead


def test_sdxl_short_prompt_text_positions_match_native_but_pooled_differs(tokenize, clip_g) -> None:
    from llmga_core.lpw import hf_clip_encoder

    encode_g = hf_clip_encoder(clip_g, -2)
    ids = list(tokenize("a lighthouse on a rocky point at dawn"))
    n = len(ids)
    (lpw_window,) = chunk_windows(pad_to_chunks(ids, 1, CLIP_G_TOKENS), CLIP_G_TOKENS)
    (native_window,) = native_comfy_chunks(ids, pad=0)
    lpw_hidden, lpw_pooled = encode_g(torch.tensor([lpw_window]))
    native_hidden, native_pooled = encode_g(torch.tensor([native_window]))
    # causal attention: BOS and text positions see the same prefix
    assert torch.allclose(lpw_hidden[:, : n + 1], native_hidden[:, : n + 1], atol=1e-6)
    assert not torch.allclose(lpw_hidden[:, n + 1 :], native_hidden[:, n + 1 :], atol=1e-3)
    assert not torch.allclose(lpw_pooled, native_pooled, atol=1e-3)


def test_sdxl_long_prompt_length_and_pooled_chunk_differ_from_native(tokenize, encode_xl, clip_g) -> None:
    from llmga_core.lpw import hf_clip_encoder

    prompt = " ".join(["lighthouse", "rocks", "dawn"] * 40)
    out = encode_sdxl(prompt, tokenize=tokenize, encode_pair=encode_xl)
    assert out.chunks == 2 and out.cond.shape[1] == 152  # native would be 154
    windows = chunk_windows(pad_to_chunks(list(tokenize(prompt)), 2, CLIP_G_TOKENS), CLIP_G_TOKENS)
    encode_g = hf_clip_encoder(clip_g, -2)
    first, last = (encode_g(torch.tensor([w]))[1] for w in windows)
    assert torch.allclose(out.pooled, last, atol=1e-6)
    assert not torch.allclose(out.pooled, first, atol=1e-3)  # native reports the first chunk's


def test_sdxl_brackets_are_literal(tokenize, encode_xl) -> None:
    bracketed = encode_sdxl("a (lighthouse:1.5)", tokenize=tokenize, encode_pair=encode_xl)
    ids = list(tokenize("a (lighthouse:1.5)"))
    assert len(ids) > len(list(tokenize("a lighthouse")))
    assert bracketed.cond.shape == (1, 77, 36)
    plain = encode_sdxl("a lighthouse", tokenize=tokenize, encode_pair=encode_xl)
    assert not torch.allclose(bracketed.cond, plain.cond)


def test_encoders_run_without_autograd(tokenize, encode_last) -> None:
    out = encode_sd15("a lighthouse", tokenize=tokenize, encode=encode_last)
    assert not out.cond.requires_grad


def test_special_token_defaults() -> None:
    assert (CLIP_L_TOKENS.bos, CLIP_L_TOKENS.eos, CLIP_L_TOKENS.pad) == (49406, 49407, 49407)
    assert CLIP_G_TOKENS.pad == 0


# --- the batched encoder protocol gives the same conditioning as per-chunk calls


def _batched_from(encode):
    from llmga_core.lpw import Batched

    def fn(ids: torch.Tensor, pooled_row: int) -> tuple[torch.Tensor, torch.Tensor | None]:
        outs = [encode(ids[i : i + 1]) for i in range(ids.shape[0])]
        return torch.cat([h for h, _ in outs]), outs[pooled_row][1]

    return Batched(fn)


@pytest.mark.parametrize("words", [5, 100])
def test_batched_sd15_equals_per_chunk(words: int, tokenize, encode_last) -> None:
    prompt = " ".join(["(harbor:1.2)", "lights", "[at]", "dusk"] * words)
    for fn in (encode_sd15, encode_sd15_training):
        one = fn(prompt, "blurry", tokenize=tokenize, encode=encode_last, max_chunks=4)
        batch = fn(prompt, "blurry", tokenize=tokenize, encode=_batched_from(encode_last), max_chunks=4)
        assert torch.equal(one.cond, batch.cond) and torch.equal(one.uncond, batch.uncond)
        assert torch.equal(one.pooled, batch.pooled)


def test_batched_sdxl_equals_per_chunk_including_the_last_chunks_pooled(tokenize, encode_xl) -> None:
    from llmga_core.lpw import Batched

    def fn(ids_l: torch.Tensor, ids_g: torch.Tensor, pooled_row: int) -> tuple[torch.Tensor, torch.Tensor | None]:
        outs = [encode_xl(ids_l[i : i + 1], ids_g[i : i + 1]) for i in range(ids_l.shape[0])]
        return torch.cat([h for h, _ in outs]), outs[pooled_row][1]

    prompt = " ".join(["lighthouse", "rocks", "dawn"] * 70)
    one = encode_sdxl(prompt, "grainy", tokenize=tokenize, encode_pair=encode_xl)
    batch = encode_sdxl(prompt, "grainy", tokenize=tokenize, encode_pair=Batched(fn))
    assert one.chunks == 3
    assert torch.equal(one.cond, batch.cond) and torch.equal(one.uncond, batch.uncond)
    assert torch.equal(one.pooled, batch.pooled) and torch.equal(one.uncond_pooled, batch.uncond_pooled)
