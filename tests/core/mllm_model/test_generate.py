"""Generation: greedy parity with transformers' generate and the original, stop strings, seeds, callback."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from llmga_core.errors import LLMGAInputError
from llmga_core.mllm.generate import (
    SamplingSettings,
    build_generation_config,
    generate_reply,
    prepare_turn,
    run_turn,
)
from tests.fixtures.tiny_mllm import FAMILIES

from .conftest import golden_pixels, loaded

GOLDEN = Path(__file__).resolve().parents[2] / "golden" / "mllm_model"
ORIG = load_file(str(GOLDEN / "orig_splice.safetensors"))
ORIG_META = json.loads((GOLDEN / "orig_splice.json").read_text(encoding="utf-8"))["families"]
PROMPT = "<image>\nGenerate a similar image."
GREEDY = SamplingSettings(temperature=0, max_new_tokens=12)


def _embeds(name: str) -> torch.Tensor:
    mllm = loaded(name)
    size = mllm.model.settings.image_size
    return prepare_turn(mllm, PROMPT, golden_pixels(size))


@pytest.mark.parametrize("name", sorted(FAMILIES))
def test_greedy_equals_transformers_generate(name: str) -> None:
    mllm = loaded(name)
    embeds = _embeds(name)
    ours = generate_reply(mllm.model, mllm.tokenizer, embeds, GREEDY, generation_defaults=mllm.folder.generation_config)
    cfg = build_generation_config(mllm.folder.generation_config, GREEDY, mllm.tokenizer)
    ref = mllm.model.language_model.generate(
        inputs_embeds=embeds, attention_mask=torch.ones(embeds.shape[:2], dtype=torch.long), generation_config=cfg
    )
    assert ours.token_ids == ref[0].tolist()
    assert len(ours.token_ids) == 12 or ours.stop_reason == "eos"


@pytest.mark.parametrize("name", ["qwen2", "llama3", "gemma"])
def test_kv_cache_decoding_equals_full_recompute(name: str) -> None:
    """Greedy through the cache equals an argmax loop that re-runs the whole sequence each step."""
    mllm = loaded(name)
    embeds = _embeds(name)
    settings = SamplingSettings(temperature=0, max_new_tokens=8, repetition_penalty=1.0)
    ours = generate_reply(mllm.model, mllm.tokenizer, embeds, settings).token_ids
    lm = mllm.model.language_model
    seq, ids = embeds, []
    with torch.no_grad():
        for _ in range(8):
            nxt = int(lm(inputs_embeds=seq, use_cache=False, logits_to_keep=1).logits[0, -1].argmax())
            ids.append(nxt)
            seq = torch.cat([seq, mllm.model.embed_tokens(torch.tensor([[nxt]]))], dim=1)
    assert ours == ids


@pytest.mark.parity
@pytest.mark.parametrize("name", ["qwen2", "vicuna", "llama3", "mistral"])
def test_greedy_equals_original_llmga_generate(name: str) -> None:
    """The original ``Llava*ForCausalLM.generate(ids, images=...)`` (transformers 4.37.2, folder's
    generation_config, do_sample=False) produced these ids; run_turn reproduces them."""
    mllm = loaded(name)
    n = ORIG_META[name]["greedy_new_tokens"]
    result = run_turn(
        mllm, ORIG_META[name]["prompt"], golden_pixels(), SamplingSettings(temperature=0, max_new_tokens=n)
    )
    assert result.token_ids == ORIG[f"{name}.greedy_ids"].tolist()[-n:]


def test_stop_string_ends_generation() -> None:
    mllm = loaded("llama3")
    embeds = _embeds("llama3")
    full = generate_reply(mllm.model, mllm.tokenizer, embeds, GREEDY)
    k = next(  # the first token whose text is new in the reply
        i
        for i in range(1, len(full.token_ids))
        if mllm.tokenizer.decode(full.token_ids[i : i + 1]).strip()
        and mllm.tokenizer.decode(full.token_ids[i : i + 1]) not in mllm.tokenizer.decode(full.token_ids[:i])
    )
    stop = mllm.tokenizer.decode(full.token_ids[k : k + 1])
    cut = generate_reply(mllm.model, mllm.tokenizer, embeds, GREEDY, stop_strings=["<never>", stop])
    assert cut.stop_reason == "stop_string"
    assert cut.token_ids == full.token_ids[: k + 1]
    assert cut.text.endswith(stop)


def test_eos_from_generation_config_ends_generation() -> None:
    mllm = loaded("llama3")
    embeds = _embeds("llama3")
    first = generate_reply(mllm.model, mllm.tokenizer, embeds, GREEDY).token_ids[0]
    res = generate_reply(mllm.model, mllm.tokenizer, embeds, GREEDY, generation_defaults={"eos_token_id": [first]})
    assert res.token_ids == [first] and res.stop_reason == "eos"


def test_seed_makes_sampling_deterministic_and_leaves_global_rng() -> None:
    mllm = loaded("qwen2")
    embeds = _embeds("qwen2")
    before = torch.get_rng_state()

    def sample(seed: int) -> list[int]:
        s = SamplingSettings(seed=seed, temperature=1.5, top_p=1.0, top_k=0, max_new_tokens=10)
        return generate_reply(mllm.model, mllm.tokenizer, embeds, s).token_ids

    a, b, c = sample(7), sample(7), sample(8)
    assert a == b
    assert a != c
    assert torch.equal(torch.get_rng_state(), before)


def test_callback_sees_every_token_and_can_interrupt() -> None:
    mllm = loaded("vicuna")
    embeds = _embeds("vicuna")
    seen: list[tuple[int, str]] = []
    res = generate_reply(mllm.model, mllm.tokenizer, embeds, GREEDY, on_token=lambda t, s: seen.append((t, s)))
    assert [t for t, _ in seen] == res.token_ids
    assert seen[-1][1] == res.text == mllm.tokenizer.decode(res.token_ids, skip_special_tokens=False)

    class Interrupted(Exception):
        pass

    calls: list[int] = []

    def stop_at_three(token: int, text: str) -> None:
        calls.append(token)
        if len(calls) == 3:
            raise Interrupted

    with pytest.raises(Interrupted):
        generate_reply(mllm.model, mllm.tokenizer, embeds, GREEDY, on_token=stop_at_three)
    assert calls == res.token_ids[:3]


def test_text_only_turn_and_timings() -> None:
    mllm = loaded("gemma")
    res = run_turn(mllm, "<start_of_turn>user\nhello<end_of_turn>\n<start_of_turn>model\n", None, GREEDY)
    assert 1 <= len(res.token_ids) <= 12
    assert res.first_token_s is not None and 0 < res.first_token_s <= res.total_s
    assert res.prompt_length < 30  # no image rows


def test_pil_image_accepted() -> None:
    from PIL import Image

    mllm = loaded("qwen2")
    img = Image.new("RGB", (48, 32), (200, 40, 10))
    res = run_turn(mllm, PROMPT, img, SamplingSettings(temperature=0, max_new_tokens=2))
    assert res.prompt_length == 576 + len(mllm.tokenizer("\nGenerate a similar image.").input_ids)


@pytest.mark.parametrize(
    "kwargs", [{"temperature": -1.0}, {"top_p": 0.0}, {"max_new_tokens": 0}, {"repetition_penalty": 0.0}]
)
def test_bad_settings(kwargs: dict) -> None:
    with pytest.raises(LLMGAInputError):
        SamplingSettings(**kwargs)


def test_empty_prompt() -> None:
    with pytest.raises(LLMGAInputError, match="empty"):
        run_turn(loaded("qwen2"), "")


def test_greedy_config_follows_the_cli_rule() -> None:
    defaults = loaded("qwen2").folder.generation_config
    greedy = build_generation_config(defaults, GREEDY)
    assert greedy.do_sample is False and greedy.repetition_penalty == 1.1  # the folder's penalty applies
    sampled = build_generation_config(defaults, SamplingSettings(temperature=0.2, top_p=0.5))
    assert (sampled.do_sample, sampled.temperature, sampled.top_p, sampled.top_k) == (True, 0.2, 0.5, 20)
    assert sampled.max_new_tokens == 512 and sampled.eos_token_id == [151645, 151643]
