"""The HF LLaVA export gives the same logits as our LLMGA model on the same image turn."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from llmga_core.export import IMAGE_TOKEN, PASSTHROUGH_CHAT_TEMPLATE, export_hf_llava
from llmga_core.mllm import Conversation, ImageRef, add_task_turn, select_template_for_folder
from llmga_core.mllm.image_prep import clip_preprocess
from llmga_core.mllm.model import load_mllm
from llmga_core.mllm.tokenize import IMAGE_TOKEN_INDEX, tokenizer_input_ids
from tests.fixtures.gguf_exports import clip_vision_for
from tests.fixtures.tiny_mllm import FAMILIES, tiny_mllm_dir


@pytest.mark.parametrize("family", list(FAMILIES))
def test_exported_llava_matches_our_model(family: str, tmp_path) -> None:
    from transformers import AutoProcessor, AutoTokenizer, LlavaForConditionalGeneration

    folder = tiny_mllm_dir(family)
    clip = clip_vision_for(family)
    export_hf_llava(folder, tmp_path, dtype=torch.float32, target="transformers", clip_vision=clip)
    hf = LlavaForConditionalGeneration.from_pretrained(tmp_path, dtype=torch.float32).eval()
    tokenizer = AutoTokenizer.from_pretrained(tmp_path)
    assert tokenizer.convert_tokens_to_ids(IMAGE_TOKEN) == hf.config.image_token_index
    assert tokenizer.chat_template == PASSTHROUGH_CHAT_TEMPLATE  # the pack renders LLMGA's prompt itself
    rendered = tokenizer.apply_chat_template([{"role": "user", "content": "A: <image>\nB"}], tokenize=False)
    assert rendered == "A: <image>\nB"

    ours = load_mllm(folder, dtype=torch.float32, clip_vision=clip)
    size = ours.clip_preprocess.crop_height

    # vLLM tokenises the whole rendered prompt, <image> being one added token; for LLMGA's prompts that
    # equals LLaVA's piece-by-piece rule (the text after <image> starts with a newline).
    template = select_template_for_folder(str(folder), None).name
    first = add_task_turn(Conversation(template), "similar image", "", ImageRef("k", 1, 1))
    second = add_task_turn(first.answer("<gen_image> a red fox </gen_image>"), "chat", "make it blue", None)
    image_id = tokenizer.convert_tokens_to_ids(IMAGE_TOKEN)
    for prompt in (first.prompt(), second.prompt()):
        whole = [IMAGE_TOKEN_INDEX if t == image_id else t for t in tokenizer(prompt).input_ids]
        assert whole == tokenizer_input_ids(prompt, ours.tokenizer), prompt
    # What an engine does with the folder: its LlavaProcessor expands <image> and preprocesses the PNG the
    # remote node sends (already the tower's size, so only rescale + normalise remain).
    prompt = first.prompt()
    ids = tokenizer_input_ids(prompt, ours.tokenizer)
    picture = Image.fromarray(np.random.default_rng(0).integers(0, 256, (size, size, 3), dtype=np.uint8))
    processor = AutoProcessor.from_pretrained(tmp_path)
    inputs = processor(text=prompt, images=picture, return_tensors="pt")
    assert inputs["input_ids"][0].tolist().count(image_id) == hf.config.image_seq_length
    pixels = clip_preprocess(picture, ours.clip_preprocess)
    assert (inputs["pixel_values"] - pixels).abs().max().item() < 1e-6
    with torch.no_grad():
        expected = ours.model(ours.model.prepare_inputs(ids, pixels)).logits
        got = hf(**inputs).logits[..., : expected.shape[-1]]
    assert got.shape == expected.shape
    assert (got - expected).abs().max().item() <= 1e-4


def test_vllm_target_leaves_gemma_image_rows_to_the_engine(tmp_path) -> None:
    """vLLM's Gemma scales every input row by sqrt(hidden) itself: its export must not scale them again."""
    from safetensors.torch import load_file

    folder = tiny_mllm_dir("gemma")
    ours = load_mllm(folder, dtype=torch.float32)
    assert ours.model.image_embed_scale is not None
    projector = ours.model.mm_projector.state_dict()
    for target, factor in (("vllm", 1.0), ("transformers", float(ours.model.image_embed_scale))):
        export_hf_llava(folder, tmp_path / target, dtype=torch.float32, target=target)
        weights = load_file(str(tmp_path / target / "model.safetensors"))
        assert torch.allclose(weights["multi_modal_projector.linear_2.weight"], projector["2.weight"] * factor)
        assert torch.allclose(weights["multi_modal_projector.linear_1.weight"], projector["0.weight"])
