"""Building the model: LLM + tower + projector, and LLaVA's embedding splice (parity with the original)."""

from __future__ import annotations

import copy
import json
import math
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from torch import nn

from llmga_core.errors import LLMGAInputError
from llmga_core.mllm.model import LLMGAModel, vision_config_from_weights
from llmga_core.mllm.tokenize import IMAGE_TOKEN_INDEX, tokenizer_input_ids
from tests.fixtures.tiny_mllm import FAMILIES
from tests.tolerances import assert_same_draws, assert_within, float32_bound, network_growth

from .conftest import golden_pixels, loaded

GOLDEN = Path(__file__).resolve().parents[2] / "golden" / "mllm_model"
ORIG = load_file(str(GOLDEN / "orig_splice.safetensors"))
ORIG_META = json.loads((GOLDEN / "orig_splice.json").read_text(encoding="utf-8"))["families"]


@pytest.mark.parametrize("name", sorted(FAMILIES))
def test_every_family_loads_into_a_plain_module(name: str) -> None:
    mllm = loaded(name)
    model = mllm.model
    assert type(model) is LLMGAModel and isinstance(model, nn.Module)
    assert "device" not in type(model).__dict__  # hosts set/read .device freely on a plain module
    assert not any(p.requires_grad for p in model.parameters())
    size = 224 if name == "llama2_old" else 336
    assert model.settings.image_size == size
    feats = model.encode_images(golden_pixels(size))
    assert feats.shape == (1, (size // 14) ** 2, 32)
    assert model.language_model.config.model_type == FAMILIES[name].model_type.split("_")[1].lower()


@pytest.mark.parametrize(("name", "tied"), [("qwen2", True), ("gemma", True), ("vicuna", False), ("phi3", False)])
def test_heads_tied_or_not(name: str, tied: bool) -> None:
    lm = loaded(name).model.language_model
    same = lm.get_output_embeddings().weight.data_ptr() == lm.get_input_embeddings().weight.data_ptr()
    assert same is tied


@pytest.mark.parametrize(("name", "rows"), [("qwen2", 151669), ("phi3", 32011), ("vicuna", 32000)])
def test_vocab_resized_to_tokenizer_like_llmga(name: str, rows: int) -> None:
    mllm = loaded(name)
    assert len(mllm.tokenizer) == rows
    assert mllm.model.language_model.get_input_embeddings().weight.shape[0] == rows
    assert mllm.model.language_model.get_output_embeddings().weight.shape[0] == rows


def test_tower_features_are_penultimate_patch_rows() -> None:
    model = loaded("qwen2").model
    px = golden_pixels()
    hidden = model.vision_tower(px, output_hidden_states=True).hidden_states
    expected = model.mm_projector(hidden[-2][:, 1:])
    assert torch.equal(model.encode_images(px), expected)
    assert not torch.allclose(hidden[-1][:, 1:], hidden[-2][:, 1:])  # the choice of layer matters here


def test_tower_from_clip_vision_folder() -> None:
    mllm = loaded("llama2_old")
    assert mllm.vision_source.endswith("clip_vision")
    assert mllm.model.encode_images(golden_pixels(224)).shape == (1, 256, 32)


def test_a_chosen_tower_beside_the_checkpoints_own_is_named_in_the_log(caplog: pytest.LogCaptureFixture) -> None:
    from llmga_core.mllm.model import load_mllm
    from tests.fixtures.tiny_mllm import tiny_clip_vision_dir, tiny_mllm_dir

    with caplog.at_level("WARNING", logger="llmga_core.mllm.model"):
        mllm = load_mllm(tiny_mllm_dir("qwen2"), clip_vision=tiny_clip_vision_dir())
    assert mllm.vision_source == "checkpoint"
    messages = [r.getMessage() for r in caplog.records]
    assert any("holds its own vision tower" in m and "clip_vision" in m for m in messages), messages


def test_vision_config_read_off_shapes() -> None:
    model = loaded("qwen2").model
    state = {f"vision_model.{k}": v for k, v in model.vision_tower.state_dict().items()}
    cfg = vision_config_from_weights(state)
    assert (cfg["hidden_size"], cfg["image_size"], cfg["patch_size"], cfg["num_hidden_layers"]) == (32, 336, 14, 2)
    assert cfg["intermediate_size"] == 64 and cfg["num_attention_heads"] == 1


@pytest.mark.parity
@pytest.mark.parametrize("name", ["qwen2", "vicuna", "llama3", "mistral"])
def test_splice_equals_original_llava(name: str) -> None:
    """inputs_embeds equal those of the original ``prepare_inputs_labels_for_multimodal`` (golden).

    Text rows are the seeded embedding weights themselves; image rows go through the tower and projector,
    compared with a float64 run of both within the float32 bound (tests/tolerances.py).
    """
    mllm = loaded(name)
    prompt = ORIG_META[name]["prompt"]
    ids = tokenizer_input_ids(prompt, mllm.tokenizer)
    assert ids == ORIG[f"{name}.input_ids"].tolist()
    embeds = mllm.model.prepare_inputs(ids, golden_pixels())
    golden = ORIG[f"{name}.inputs_embeds"]
    assert embeds.shape[1:] == golden.shape
    at = ids.index(IMAGE_TOKEN_INDEX)
    text_rows = torch.cat([embeds[0, :at], embeds[0, at + 576 :]])
    assert_same_draws(text_rows, torch.cat([golden[:at], golden[at + 576 :]]), f"{name} text rows")
    tower, projector = mllm.model.vision_tower, mllm.model.mm_projector
    model64 = copy.deepcopy(mllm.model).double()
    reference = model64.encode_images(golden_pixels().double())[0]
    bound = float32_bound(reference, growth=math.hypot(network_growth(tower), network_growth(projector)))
    assert_within(golden[at : at + 576], reference, bound, f"{name} image rows original")
    assert_within(embeds[0, at : at + 576], reference, bound, f"{name} image rows ours")


def test_splice_layout() -> None:
    model = loaded("qwen2").model
    feats = model.encode_images(golden_pixels())
    ids = [11, 12, IMAGE_TOKEN_INDEX, 13]
    out = model.build_inputs_embeds(ids, feats)[0]
    text = model.embed_tokens(torch.tensor([11, 12, 13]))
    assert out.shape == (3 + 576, 32)
    assert torch.equal(out[:2], text[:2]) and torch.equal(out[2:578], feats[0]) and torch.equal(out[578], text[2])


def test_gemma_image_rows_scaled_like_training() -> None:
    """Gemma multiplied the whole inputs_embeds by sqrt(hidden) when LLMGA was trained (spec §1.3)."""
    model = loaded("gemma").model
    feats = model.encode_images(golden_pixels())
    out = model.build_inputs_embeds([2, IMAGE_TOKEN_INDEX, 9], feats)[0]
    raw = model.language_model.get_input_embeddings().weight
    scale = torch.tensor(32**0.5)
    torch.testing.assert_close(out[0], raw[2] * scale)
    torch.testing.assert_close(out[1:577], feats[0] * scale)


def test_splice_errors() -> None:
    model = loaded("qwen2").model
    with pytest.raises(LLMGAInputError, match="no image"):
        model.build_inputs_embeds([1, IMAGE_TOKEN_INDEX])
    with pytest.raises(LLMGAInputError, match=r"\(B, 3, 336, 336\)"):
        model.encode_images(torch.zeros(1, 3, 64, 64))


def test_text_only_turn_is_plain_embedding() -> None:
    model = loaded("llama3").model
    out = model.prepare_inputs([128000, 5, 6])
    assert torch.equal(out[0], model.embed_tokens(torch.tensor([128000, 5, 6])))


def test_moves_and_casts_as_one_module() -> None:
    model = loaded("mistral").model
    half = [p.dtype for p in model.to(torch.bfloat16).parameters()]
    model.to(torch.float32)
    assert set(half) == {torch.bfloat16}
    assert model.llm_dtype == torch.float32


def test_checkpoint_tower_wins_over_fallback_and_text_only_load() -> None:
    from llmga_core.mllm.model import load_mllm
    from tests.fixtures.tiny_mllm import tiny_clip_vision_dir

    from .conftest import tiny_folder

    folder = tiny_folder("mistral")
    mllm = load_mllm(folder, clip_vision=tiny_clip_vision_dir("llama2_old"))
    assert mllm.vision_source == "checkpoint" and mllm.model.settings.image_size == 336
    text_only = load_mllm(folder, with_vision=False)
    assert text_only.model.vision_tower is None and text_only.vision_source == "none"
    with pytest.raises(LLMGAInputError, match="without a vision tower"):
        text_only.model.encode_images(golden_pixels())


def test_corrupt_clip_vision_file_names_the_file(tmp_path) -> None:
    from llmga_core.mllm.model import load_mllm
    from tests.fixtures.tiny_mllm import tiny_clip_vision_dir, tiny_mllm_dir

    clip = tmp_path / "clip-vit-large-patch14-336"
    clip.mkdir()
    good = tiny_clip_vision_dir("llama2_old")
    (clip / "config.json").write_bytes((good / "config.json").read_bytes())
    (clip / "model.safetensors").write_bytes((good / "model.safetensors").read_bytes()[:100])
    with pytest.raises(LLMGAInputError, match=r"model\.safetensors is corrupt or truncated.*download that file again"):
        load_mllm(tiny_mllm_dir("llama2_old"), clip_vision=clip)
