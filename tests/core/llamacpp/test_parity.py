"""llama.cpp in process (llmga_core.llamacpp) against the transformers path, on every tiny LLMGA family.

The f32 GGUF pair of each family (``python -m llmga_core.export gguf``, cached) runs through the ctypes
binding with an f32 KV cache; the same folder runs through ``llmga_core.mllm``. Checked:

- prompt ids: LLaVA's chunk rule over llama.cpp's tokenizer == over the HF tokenizer;
- image rows: the mmproj rebuilt in torch gives exactly the folder's projected CLIP features;
- first-step logits of a text turn and of an image turn agree to 1e-3 relative (max abs difference over
  the largest reference logit);
- greedy tokens agree up to the first step whose reference top-2 margin is a near tie.
"""

from __future__ import annotations

import inspect
from typing import Any

import numpy as np
import pytest
import torch

from llmga_core.llamacpp import LlamaCppModel, LlamaCppSettings, load_mmproj, run_gguf_turn
from llmga_core.llamacpp.generate import prefill, prompt_ids
from llmga_core.mllm.generate import SamplingSettings
from llmga_core.mllm.image_prep import clip_preprocess
from llmga_core.mllm.model import LoadedMLLM, load_mllm
from llmga_core.mllm.templates import get_template
from llmga_core.mllm.tokenize import tokenizer_input_ids
from tests.fixtures.gguf_exports import clip_vision_for, exported_gguf
from tests.fixtures.llama_server import require_llama_server
from tests.fixtures.tiny_mllm import FAMILIES, tiny_mllm_dir

require_llama_server()  # the binding lives in the xllamacpp wheel

FAMILY_NAMES = list(FAMILIES)
GREEDY = SamplingSettings(temperature=0, max_new_tokens=12, repetition_penalty=1.0)
REL_TOL = 1e-3
NEAR_TIE = 1e-3  # relative top-2 margin under which a greedy step may flip


@pytest.fixture(scope="module")
def loaded() -> dict[str, Any]:
    cache: dict[str, Any] = {}
    yield cache
    for value in cache.values():
        if isinstance(value, LlamaCppModel):
            value.close()


def _pair(cache: dict[str, Any], family: str) -> tuple[LlamaCppModel, LoadedMLLM, Any]:
    if family not in cache:
        export = exported_gguf(family)
        cache[family] = LlamaCppModel(
            export.model, LlamaCppSettings(n_ctx=1024, n_threads=2, kv_f32=True, flash_attn=False)
        )
        folder = tiny_mllm_dir(family)
        cache[family + "/ref"] = load_mllm(folder, dtype=torch.float32, clip_vision=clip_vision_for(family))
        cache[family + "/vision"] = load_mmproj(export.mmproj)
    return cache[family], cache[family + "/ref"], cache[family + "/vision"]


def _image(size: int) -> Any:
    from PIL import Image

    rng = np.random.default_rng(7)
    return Image.fromarray((rng.random((size, size, 3)) * 255).astype(np.uint8))


def _rel(got: np.ndarray, want: np.ndarray) -> float:
    return float(np.abs(got - want).max() / np.abs(want).max())


@torch.no_grad()
def _reference_greedy(ref: LoadedMLLM, embeds: torch.Tensor, steps: int) -> tuple[list[int], list[float]]:
    """Greedy ids of the transformers model and each step's relative top-2 margin."""
    lm = ref.model.language_model
    ids: list[int] = []
    margins: list[float] = []
    out = lm(inputs_embeds=embeds, use_cache=True)
    for _ in range(steps):
        logits = out.logits[0, -1]
        top = torch.topk(logits, 2).values
        margins.append(float((top[0] - top[1]) / logits.abs().max()))
        token = int(logits.argmax())
        ids.append(token)
        step = ref.model.embed_tokens(torch.tensor([[token]]))
        out = lm(inputs_embeds=step, use_cache=True, **_cache_kwargs(lm, out))
    return ids, margins


def _cache_kwargs(lm: Any, out: Any) -> dict[str, Any]:
    """The KV cache handed back to the next step (newer transformers, 5.25 here, call ``past_key_values`` ``cache``)."""
    if "cache" in inspect.signature(lm.forward).parameters:
        return {"cache": out.cache}
    return {"past_key_values": out.past_key_values}


def _assert_greedy(got: list[int], want: list[int], margins: list[float]) -> None:
    for i, (a, b) in enumerate(zip(got, want, strict=False)):
        if a != b:
            assert margins[i] < NEAR_TIE, (i, got, want, margins[i])
            return
    assert len(got) == len(want)


@pytest.mark.parametrize("family", FAMILY_NAMES)
def test_text_turn_matches_transformers(family: str, loaded: dict[str, Any]) -> None:
    model, ref, _ = _pair(loaded, family)
    prompt = get_template(exported_gguf(family).template).render(["Describe a red fox in the snow.", None])
    ids = prompt_ids(model, prompt)
    assert ids == tokenizer_input_ids(prompt, ref.tokenizer)
    prefill(model, ids)
    embeds = ref.model.build_inputs_embeds(ids)
    with torch.no_grad():
        want = ref.model(embeds).logits[0, -1].numpy()
    assert _rel(model.logits(), want) < REL_TOL
    reply = run_gguf_turn(model, prompt, None, GREEDY)
    _assert_greedy(reply.token_ids, *_reference_greedy(ref, embeds, GREEDY.max_new_tokens))


@pytest.mark.parametrize("family", FAMILY_NAMES)
def test_image_turn_matches_transformers(family: str, loaded: dict[str, Any]) -> None:
    model, ref, vision = _pair(loaded, family)
    size = ref.clip_preprocess.crop_height
    assert vision.clip_preprocess == ref.clip_preprocess
    pixels = clip_preprocess(_image(size), ref.clip_preprocess)
    rows = vision.encode(pixels)
    feats = ref.model.encode_images(pixels)[0].numpy()
    assert rows.shape == ((size // 14) ** 2, model.n_embd)
    np.testing.assert_allclose(rows, feats, rtol=0, atol=1e-6 * float(np.abs(feats).max()))
    prompt = get_template(exported_gguf(family).template).render(["<image>\nGenerate a similar image.", None])
    ids = prompt_ids(model, prompt)
    assert ids == tokenizer_input_ids(prompt, ref.tokenizer)
    prefill(model, ids, rows)
    assert model.n_past == len(ids) - 1 + rows.shape[0]
    embeds = ref.model.prepare_inputs(ids, pixels)
    with torch.no_grad():
        want = ref.model(embeds).logits[0, -1].numpy()
    assert _rel(model.logits(), want) < REL_TOL
    reply = run_gguf_turn(model, prompt, rows, GREEDY)
    _assert_greedy(reply.token_ids, *_reference_greedy(ref, embeds, GREEDY.max_new_tokens))
