"""The edit's per-stage encodings from the caption text (llmga_core.editing.stage_prompts / conditioning).

Checked against the LPW layouts (themselves parity-tested against the original in tests/core/lpw) and the
original's token rules: the mask stage is the 3-chunk LPW encoding of target and source padded to a common
chunk count before the weights are renormalised; the inversion is the plain 77-id cut (BOS + 76 ids, no EOS
for captions over 75 tokens, brackets literal).
"""

from __future__ import annotations

import pytest
import torch

from llmga_core.editing import stage_conditionings
from llmga_core.editing.stage_prompts import STAGE_KEY, encode_stage_prompt, inversion_ids, mask_pair
from llmga_core.lpw import ChunkEncoder, Tokenize, encode_sd15, hf_clip_encoder, hf_tokenize
from tests.core.lpw.tiny_clip import load_tokenizer, tiny_clip_l

WORDS = "cat dog red blue green sofa chair table lamp window door wall floor roof tree house".split()


def caption(n: int, weighted: bool) -> str:
    """About ``n`` tokens of plain words; weighted: a (…:1.3) run early and a [...] run late."""
    words = [WORDS[i % len(WORDS)] for i in range(n)]
    if weighted:
        words[1] = f"({words[1]} {words[2]}:1.3)"
        del words[2]
        words[-2] = f"[{words[-2]}]"
    return " ".join(words)


@pytest.fixture(scope="module")
def tokenize() -> Tokenize:
    return hf_tokenize(load_tokenizer())


@pytest.fixture(scope="module")
def encode_last() -> ChunkEncoder:
    return hf_clip_encoder(tiny_clip_l())  # SD1.5: last layer after the final layer norm


CASES = [(n, w) for n in (10, 90, 300) for w in (False, True)]


@pytest.mark.parametrize(("source_len", "weighted"), CASES)
def test_mask_pair_is_the_three_chunk_lpw_encoding_of_both_prompts(tokenize, encode_last, source_len, weighted):
    source, target = caption(source_len, weighted), caption(90, not weighted)
    src = encode_stage_prompt(source, tokenize, encode_last)
    tgt = encode_stage_prompt(target, tokenize, encode_last)
    mask_target, mask_source = mask_pair(tgt, src)
    lpw = encode_sd15(target, source, tokenize=tokenize, encode=encode_last, max_chunks=3)
    assert mask_target.shape == lpw.cond.shape and mask_source.shape == lpw.uncond.shape
    assert torch.equal(mask_target, lpw.cond)
    assert torch.equal(mask_source, lpw.uncond)


@pytest.mark.parametrize(("source_len", "weighted"), CASES)
def test_inversion_is_the_plain_77_id_cut(tokenize, encode_last, source_len, weighted):
    text = caption(source_len, weighted)
    ids = inversion_ids(text, tokenize)
    content = list(tokenize(text))
    assert len(ids) == 77 and ids[0] == 49406
    assert ids[1 : 1 + min(76, len(content))] == content[:76]  # brackets tokenised as text, no weights
    if len(content) >= 76:
        assert 49407 not in ids  # the cut drops the EOS, as the original's truncation does
    else:
        assert ids[1 + len(content) :] == [49407] * (76 - len(content))
    stage = encode_stage_prompt(text, tokenize, encode_last)
    expected, _ = encode_last(torch.tensor([ids]))
    assert torch.equal(stage.inversion, expected)


def test_stage_conditionings_use_the_text_stages_when_every_prompt_has_them(tokenize, encode_last):
    source, target = caption(90, True), caption(10, False)
    lpw = encode_sd15(target, "", tokenize=tokenize, encode=encode_last, max_chunks=4)
    src_lpw = encode_sd15(source, "", tokenize=tokenize, encode=encode_last, max_chunks=4)
    src, tgt, neg = (encode_stage_prompt(t, tokenize, encode_last) for t in (source, target, ""))
    conds = stage_conditionings(
        [[src_lpw.cond, {STAGE_KEY: src}]], [[lpw.cond, {STAGE_KEY: tgt}]], [[lpw.uncond, {STAGE_KEY: neg}]]
    )
    mask_target, mask_source = mask_pair(tgt, src)
    assert torch.equal(conds["positive"][0][0], lpw.cond) and torch.equal(conds["negative"][0][0], lpw.uncond)
    assert torch.equal(conds["source"][0][0], src.inversion)
    assert torch.equal(conds["inversion_negative"][0][0], neg.inversion)
    assert torch.equal(conds["mask_target"][0][0], mask_target)
    assert torch.equal(conds["mask_source"][0][0], mask_source)
    # without the text stages (another encoder): the tensor rules, which differ for this weighted source
    plain = stage_conditionings([[src_lpw.cond, {}]], [[lpw.cond, {}]], [[lpw.uncond, {}]])
    assert not torch.equal(plain["source"][0][0], src.inversion)
