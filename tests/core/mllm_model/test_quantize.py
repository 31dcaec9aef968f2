"""Quantised and reduced-precision MLLMs: every choice loads every family and generates; the vision tower
and projector stay unquantised; sizes, precision rule and errors."""

from __future__ import annotations

from functools import cache

import pytest
import torch
from torch import nn

from llmga_core.errors import LLMGAInputError
from llmga_core.mllm import quantize
from llmga_core.mllm.checkpoint import inspect_folder, tensor_shapes
from llmga_core.mllm.generate import SamplingSettings, prepare_turn, run_turn
from llmga_core.mllm.model import load_mllm
from llmga_core.mllm.quantize import FP8, FP8Linear, Int8Embedding, Int8Head, llm_dtype, weight_bytes
from tests.fixtures.tiny_mllm import FAMILIES, tiny_clip_vision_dir

from .conftest import golden_pixels, loaded, tiny_folder

bnb = pytest.importorskip("bitsandbytes")
pytest.importorskip("accelerate")

CHOICES = (FP8, "8-bit", "4-bit")
PROMPT = "<image>\nGenerate a similar image."
GREEDY = SamplingSettings(temperature=0, max_new_tokens=6, repetition_penalty=1.0)


@cache
def _quantised(name: str, choice: str, dtype: torch.dtype = torch.float32):
    clip = tiny_clip_vision_dir(name) if name == "llama2_old" else None
    return load_mllm(tiny_folder(name), dtype=dtype, clip_vision=clip, quantization=choice)


def _decoder_linears(model: nn.Module) -> list[nn.Module]:
    layers = model.language_model.model.layers
    return [m for m in layers.modules() if isinstance(m, nn.Linear)]


@pytest.mark.parametrize("choice", CHOICES)
@pytest.mark.parametrize("name", sorted(FAMILIES))
def test_every_family_generates_with_every_choice(name: str, choice: str) -> None:
    mllm = _quantised(name, choice)
    kind = {FP8: FP8Linear, "8-bit": bnb.nn.Linear8bitLt, "4-bit": bnb.nn.Linear4bit}[choice]
    linears = _decoder_linears(mllm.model)
    assert linears and all(type(m) is kind for m in linears)
    # the tower and the projector keep the model dtype; the embedding table and the head are int8 rows,
    # one table when the checkpoint ties them
    assert all(type(m) is nn.Linear and m.weight.dtype == torch.float32 for m in mllm.model.mm_projector.modules()
               if isinstance(m, nn.Linear))
    assert {p.dtype for p in mllm.model.vision_tower.parameters()} == {torch.float32}
    lm = mllm.model.language_model
    embed, head = lm.get_input_embeddings(), lm.lm_head
    assert type(embed) is Int8Embedding and embed.weight.dtype == torch.int8
    assert type(head) is Int8Head and (head.tied is embed) == bool(lm.config.tie_word_embeddings)
    assert mllm.model.llm_dtype == torch.float32
    size = mllm.model.settings.image_size
    image_turn = run_turn(mllm, PROMPT, golden_pixels(size), GREEDY)
    text_turn = run_turn(mllm, "Please design an image of a fox.", None, GREEDY)
    for result in (image_turn, text_turn):
        assert len(result.token_ids) == 6 or result.stop_reason == "eos"
        assert isinstance(result.text, str)


def _first_token_margin(name: str) -> tuple[int, float]:
    """Greedy first token of the unquantised model and its logit lead over the runner-up, relative to
    the logits' spread."""
    mllm = loaded(name)
    embeds = prepare_turn(mllm, PROMPT, golden_pixels(mllm.model.settings.image_size))
    with torch.no_grad():
        logits = mllm.model.language_model(inputs_embeds=embeds).logits[0, -1].float()
    top = logits.topk(2)
    return int(top.indices[0]), float((top.values[0] - top.values[1]) / logits.std())


@pytest.mark.parametrize("choice", [FP8, "8-bit"])
def test_first_token_agrees_with_none_where_it_is_not_near_tied(choice: str) -> None:
    """fp8 and LLM.int8 keep the greedy first token wherever the unquantised model's choice leads the
    runner-up clearly (0.5 logit standard deviations); near-ties may flip and are not asserted."""
    checked = 0
    for name in sorted(FAMILIES):
        token, margin = _first_token_margin(name)
        if margin < 0.5:
            continue
        mllm = _quantised(name, choice)
        ids = run_turn(mllm, PROMPT, golden_pixels(mllm.model.settings.image_size), GREEDY).token_ids
        assert ids[0] == token, (name, margin)
        checked += 1
    assert checked >= 3


def test_quantised_llm_is_smaller() -> None:
    """On a layer wide enough for the formats' blocks the stored bytes follow the format."""
    torch.manual_seed(0)
    dense = nn.Linear(1024, 1024, bias=False)
    fp8 = nn.Sequential(nn.Linear(1024, 1024, bias=False))
    fp8[0].load_state_dict(dense.state_dict())
    quantize.quantize_fp8_(fp8)
    assert type(fp8[0]) is FP8Linear
    ratio = weight_bytes(fp8) / weight_bytes(dense)
    assert 0.25 <= ratio < 0.26  # 1 byte per weight + one float32 scale per row, against 4 bytes
    x = torch.randn(3, 1024)
    err = (fp8(x) - dense(x)).abs().max() / dense(x).abs().max()
    assert err < 0.05


def test_int8_tables_serve_lookup_and_head_and_a_tied_table_is_stored_once() -> None:
    """A tied embedding/head becomes one int8 table (1 byte per weight + a float32 scale per row) that
    serves both the lookup and the logits within int8 rounding; gemma's embedding scale is kept."""
    dense = loaded("qwen2").model.language_model
    mllm = _quantised("qwen2", FP8)
    lm = mllm.model.language_model
    embed, head = lm.get_input_embeddings(), lm.lm_head
    assert head.tied is embed and not list(head.parameters())
    rows, width = embed.weight.shape
    assert weight_bytes(embed) + weight_bytes(head) == rows * width + 4 * rows
    ids = torch.tensor([[0, 5, rows - 1, 17]])
    ref = dense.get_input_embeddings()(ids)
    assert embed(ids).dtype == ref.dtype and torch.allclose(embed(ids), ref, atol=ref.abs().max().item() / 127)
    x = torch.randn(1, 3, width)
    logits, ref_logits = head(x), dense.lm_head(x)
    assert (logits - ref_logits).abs().max() < 0.02 * ref_logits.abs().max()
    gemma = _quantised("gemma", FP8).model
    ref_gemma = loaded("gemma").model
    assert gemma.image_embed_scale is not None and float(gemma.image_embed_scale) == float(ref_gemma.image_embed_scale)
    scaled = ref_gemma.embed_tokens(ids)
    assert torch.allclose(gemma.embed_tokens(ids), scaled, atol=scaled.abs().max().item() / 100)


def test_tied_weights_are_counted_once() -> None:
    mllm = loaded("qwen2")
    lm = mllm.model.language_model
    assert lm.lm_head.weight is lm.get_input_embeddings().weight
    per_tensor = sum(t.nbytes for t in lm.state_dict().values())  # lists the tied tensor twice
    rotary = sum(b.nbytes for b in lm.model.rotary_emb.buffers())  # not in the state dict
    assert weight_bytes(lm) == per_tensor - lm.lm_head.weight.nbytes + rotary


def test_bf16_is_honoured_on_cpu() -> None:
    mllm = _quantised("qwen2", "none", torch.bfloat16)
    assert {p.dtype for p in mllm.model.language_model.parameters()} == {torch.bfloat16}
    assert weight_bytes(mllm.model) * 2 == pytest.approx(weight_bytes(loaded("qwen2").model), rel=0.01)
    assert run_turn(mllm, PROMPT, golden_pixels(), GREEDY).token_ids


def test_precision_rule() -> None:
    gib = 2**30
    assert llm_dtype("bf16", "cpu", 30 * gib, 64 * gib, torch.float16)[0] == torch.bfloat16
    assert llm_dtype("fp16", "cpu", 1, 64 * gib, torch.float16)[0] == torch.float16
    assert llm_dtype("auto", "cpu", 4 * gib, 16 * gib, torch.float16)[0] == torch.float32
    dtype, why = llm_dtype("auto", "cpu", 28 * gib, 24 * gib, torch.float16)  # a 7B model on a 24 GB machine
    assert dtype == torch.bfloat16 and "bf16" in why and "RAM" in why
    assert llm_dtype("auto", "cuda", 28 * gib, None, torch.float16)[0] == torch.float16


def test_estimate_matches_the_built_layout() -> None:
    """The size estimate from the file headers equals the parameter count of the loaded LLM."""
    folder = inspect_folder(tiny_folder("vicuna"))
    shapes = {k: v for k, v in tensor_shapes(folder).items() if k.startswith(("model.layers", "model.embed",
                                                                             "model.norm", "lm_head"))}
    estimate = quantize.estimate_bytes(shapes)
    lm = loaded("vicuna").model.language_model
    assert estimate.linear_params + estimate.other_params + estimate.table_params == sum(
        p.numel() for p in lm.parameters()
    )
    assert estimate.llm_bytes("4-bit") < estimate.llm_bytes(FP8) < estimate.llm_bytes("none")
    # the fp8 LLM as loaded weighs what the estimate says (fp32 norms, rotary buffers aside)
    fp8 = _quantised("vicuna", FP8).model.language_model
    rotary = sum(b.nbytes for b in fp8.model.rotary_emb.buffers())
    row_scales = 4 * sum(m.out_features for m in fp8.modules() if isinstance(m, FP8Linear))  # per-row, tiny here
    assert weight_bytes(fp8) - rotary - row_scales == estimate.llm_bytes(FP8, 4)


def test_missing_package_names_the_pip_command(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(quantize.BNB_REQUIREMENTS, "llmga_no_such_package", "llmga_no_such_package>=1")
    with pytest.raises(LLMGAInputError) as info:
        load_mllm(tiny_folder("qwen2"), quantization="4-bit", python="/opt/comfy/python")
    message = str(info.value)
    assert '"/opt/comfy/python" -m pip install "llmga_no_such_package>=1"' in message
    assert "fp8" in message
