"""GGUF export (python -m llmga_core.export gguf) checked through a real llama.cpp server on 127.0.0.1.

Every tiny LLMGA family is exported to f32 GGUF (cached per exporter source), served once with
``xllamacpp`` (llama.cpp's own C++ server) and compared with the pack's in-process path:

- metadata read back with ``gguf.GGUFReader``;
- ``/tokenize`` equals LLaVA's chunk rule (``tokenizer_input_ids``) for rendered LLMGA prompts;
- greedy text turns give the same token ids as ``run_turn``;
- image turns (vicuna, qwen2, gemma): see :func:`test_image_turn_parity` for the one known engine
  defect they are checked against.

Sampling note: Qwen2's ``generation_config.json`` has ``repetition_penalty`` 1.1. transformers applies it
to generated tokens only (the prompt enters as ``inputs_embeds``), llama.cpp's ``repeat_penalty`` to the
last ``repeat_last_n`` tokens *including the prompt*, so the same number does not mean the same thing:
the parity runs use penalty 1 on both sides.
"""

from __future__ import annotations

import base64
import io
import json
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from llmga_core.errors import LLMGAInputError
from llmga_core.export.__main__ import main as export_main
from llmga_core.export.gguf import TEMPLATE_KEY, export_gguf
from llmga_core.export.hf_llava import PASSTHROUGH_CHAT_TEMPLATE
from llmga_core.mllm.generate import SamplingSettings, generate_reply, run_turn
from llmga_core.mllm.image_prep import clip_preprocess
from llmga_core.mllm.model import LoadedMLLM, load_mllm
from llmga_core.mllm.templates import get_template
from llmga_core.mllm.tokenize import IMAGE_TOKEN_INDEX, tokenizer_input_ids
from tests.fixtures.gguf_exports import clip_vision_for, exported_gguf
from tests.fixtures.llama_server import LlamaServer, require_llama_server, start_llama_server
from tests.fixtures.tiny_mllm import FAMILIES, tiny_mllm_dir

# family -> (llama.cpp arch, LLMGA template, llama.cpp adds BOS)
EXPECTED = {
    "vicuna": ("llama", "llava_v1", True),
    "llama2_old": ("llama", "llava_llama_2", True),
    "llama3": ("llama", "llama_3", True),
    "mistral": ("llama", "mistral_instruct", True),
    "qwen2": ("qwen2", "qwen_2", False),
    "phi3": ("phi3", "phi_3", True),
    "gemma": ("gemma", "gemma", True),
}
IMAGE_FAMILIES = ("vicuna", "qwen2", "gemma")
GREEDY = SamplingSettings(temperature=0, max_new_tokens=16, repetition_penalty=1.0)


def _need_server() -> None:
    require_llama_server()


# ------------------------------------------------------------------------------------------ fixtures


@pytest.fixture(scope="module")
def servers() -> Iterator[dict[str, LlamaServer]]:
    """One server per family (text model + mmproj), started on first use, stopped at module end."""
    started: dict[str, LlamaServer] = {}
    yield started
    for server in started.values():
        server.stop()


@pytest.fixture(scope="module")
def models() -> dict[str, LoadedMLLM]:
    return {}


def _server(servers: dict[str, LlamaServer], family: str) -> LlamaServer:
    _need_server()
    if family not in servers:
        export = exported_gguf(family)
        servers[family] = start_llama_server(export.model, export.mmproj, n_ctx=2048, threads=2)
    return servers[family]


def _model(models: dict[str, LoadedMLLM], family: str) -> LoadedMLLM:
    if family not in models:
        models[family] = load_mllm(tiny_mllm_dir(family), dtype=torch.float32, clip_vision=clip_vision_for(family))
    return models[family]


def _post(server: LlamaServer, path: str, body: dict[str, Any]) -> Any:
    req = urllib.request.Request(
        server.url + path, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(req, timeout=120) as resp:
        return json.loads(resp.read())


def _greedy_completion(server: LlamaServer, prompt: Any, **extra: Any) -> Any:
    """A non-streamed greedy ``/completion`` of GREEDY.max_new_tokens tokens, token ids returned."""
    body = {
        "prompt": prompt,
        "temperature": 0,
        "seed": 0,
        "n_predict": GREEDY.max_new_tokens,
        "cache_prompt": False,
        "return_tokens": True,
        "repeat_penalty": 1.0,
        **extra,
    }
    return _post(server, "/completion", body)


def _prompts(template: str) -> list[str]:
    """Rendered LLMGA prompts: a T2I turn, a multi-turn chat with tags and odd spacing, an image turn."""
    t = get_template(template)
    return [
        t.render(["Describe a red fox in the snow.", None]),
        t.render(["A cat", "<gen_image> a cat </gen_image>", "make it blue  and\n\nbig", None]),
        t.render(["<image>\nGenerate a similar image.", None]),
    ]


# ------------------------------------------------------------------------------------------ metadata


def _field(reader: Any, key: str) -> Any:
    field = reader.fields[key]
    return field.contents()


@pytest.mark.parametrize("family", list(EXPECTED))
def test_export_metadata(family: str) -> None:
    from gguf import GGUFReader

    arch, template, add_bos = EXPECTED[family]
    export = exported_gguf(family)
    assert export.template == template
    mllm_cfg = json.loads((tiny_mllm_dir(family) / "config.json").read_text())
    text = GGUFReader(export.model)
    assert _field(text, "general.architecture") == arch
    assert _field(text, f"{arch}.block_count") == mllm_cfg["num_hidden_layers"]
    assert _field(text, f"{arch}.attention.head_count") == mllm_cfg["num_attention_heads"]
    assert _field(text, f"{arch}.attention.head_count_kv") == mllm_cfg["num_key_value_heads"]
    assert _field(text, f"{arch}.embedding_length") == mllm_cfg["hidden_size"]
    assert _field(text, TEMPLATE_KEY) == template
    assert _field(text, "tokenizer.chat_template") == PASSTHROUGH_CHAT_TEMPLATE
    assert _field(text, "tokenizer.ggml.add_bos_token") is add_bos
    tokens = _field(text, "tokenizer.ggml.tokens")
    embd = next(t for t in text.tensors if t.name == "token_embd.weight")
    # the vocab-shrink quirk: Qwen2/Phi-3's padded rows are gone, tokens == rows == len(tokenizer)
    assert len(tokens) == int(embd.shape[1]) == _field(text, f"{arch}.vocab_size")
    if FAMILIES[family].vocab_size is not None:
        assert len(tokens) < FAMILIES[family].vocab_size
    names = {t.name for t in text.tensors}
    assert ("output.weight" in names) is (not FAMILIES[family].tied)
    if family == "gemma":
        # GemmaRMSNorm's (1 + w) is stored as 1 + w (the fixture's w is 1 +- 0.05 noise)
        norm = next(t for t in text.tensors if t.name == "output_norm.weight").data
        assert 1.8 < float(np.mean(norm)) < 2.2
    if family == "phi3":
        assert {"rope_factors_short.weight", "rope_factors_long.weight", "blk.0.attn_qkv.weight"} <= names
        assert _field(text, "phi3.rope.scaling.original_context_length") == 4096
    proj = GGUFReader(export.mmproj)
    assert _field(proj, "clip.projector_type") == "mlp"
    # select layer -2 of a 2-block tower: the first block's output, stored explicitly
    assert _field(proj, "clip.vision.feature_layer") == [1]
    assert _field(proj, "clip.vision.block_count") == 1
    assert _field(proj, "clip.vision.image_size") == FAMILIES[family].image_size
    pnames = {t.name for t in proj.tensors}
    assert {"mm.0.weight", "mm.2.bias", "v.class_embd", "v.blk.0.ffn_up.weight"} <= pnames
    assert not any(n.startswith(("v.blk.1.", "v.post_ln")) for n in pnames)


def test_f16_export_keeps_vectors_f32(tmp_path: Path) -> None:
    from gguf import GGMLQuantizationType, GGUFReader

    export = export_gguf(tiny_mllm_dir("vicuna"), tmp_path, "f16")
    types = {t.name: t.tensor_type for t in GGUFReader(export.model).tensors}
    assert types["blk.0.attn_q.weight"] == GGMLQuantizationType.F16
    assert types["blk.0.attn_norm.weight"] == GGMLQuantizationType.F32
    assert {t.name: t.tensor_type for t in GGUFReader(export.mmproj).tensors}["mm.0.bias"] == GGMLQuantizationType.F32


def test_bad_inputs_are_clear(tmp_path: Path) -> None:
    with pytest.raises(LLMGAInputError, match="dtype"):
        export_gguf(tiny_mllm_dir("vicuna"), tmp_path, "q4")
    # the old llama-2 release has no tower in the checkpoint and no local mm_vision_tower folder
    with pytest.raises(LLMGAInputError, match="vision tower"):
        export_gguf(tiny_mllm_dir("llama2_old"), tmp_path, "f32")


def test_cli_writes_the_pair(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert export_main(["gguf", str(tiny_mllm_dir("qwen2")), str(tmp_path), "--dtype", "f32"]) == 0
    out = capsys.readouterr().out
    assert "template: qwen_2" in out
    assert sorted(p.name for p in tmp_path.glob("*.gguf")) == [
        "llmga-Qwen2-0.5B-full-finetune-f32.gguf",
        "mmproj-llmga-Qwen2-0.5B-full-finetune-f32.gguf",
    ]


# ------------------------------------------------------------------------------------------ tokenization


@pytest.mark.parametrize("family", list(EXPECTED))
def test_tokenize_matches_llava_chunks(family: str, servers: dict, models: dict) -> None:
    server = _server(servers, family)
    mllm = _model(models, family)
    for prompt in _prompts(exported_gguf(family).template):
        ours = tokenizer_input_ids(prompt, mllm.tokenizer)
        if IMAGE_TOKEN_INDEX not in ours:
            theirs = _post(server, "/tokenize", {"content": prompt, "add_special": True, "parse_special": True})
            assert theirs["tokens"] == ours, prompt
            continue
        # mtmd tokenizes each side of the image marker on its own and adds one BOS in front
        cut = ours.index(IMAGE_TOKEN_INDEX)
        before, after = prompt.split("<image>", 1)
        head = _post(server, "/tokenize", {"content": before, "add_special": True, "parse_special": True})
        tail = _post(server, "/tokenize", {"content": after, "add_special": False, "parse_special": True})
        assert head["tokens"] == ours[:cut], prompt
        assert tail["tokens"] == ours[cut + 1 :], prompt


# ------------------------------------------------------------------------------------------ generation


@pytest.mark.parametrize("family", list(EXPECTED))
def test_text_turn_greedy_parity(family: str, servers: dict, models: dict) -> None:
    server = _server(servers, family)
    mllm = _model(models, family)
    prompt = _prompts(exported_gguf(family).template)[0]
    reply = _greedy_completion(server, prompt)
    ours = run_turn(mllm, prompt, None, GREEDY)
    assert reply["tokens"] == ours.token_ids


def _png(seed: int = 0) -> tuple[Any, str]:
    """A random 336x336 RGB image (already the tower's size: no resize on either side) and its PNG."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    image = Image.fromarray((rng.random((336, 336, 3)) * 255).astype(np.uint8))
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return image, base64.b64encode(buf.getvalue()).decode()


@torch.no_grad()
def _cls_last_features(mllm: LoadedMLLM, pixels: torch.Tensor) -> torch.Tensor:
    """Image features as llama.cpp's llava graph computes them (issue ggml-org/llama.cpp#25814): the class
    embedding is appended *after* the patches while positions stay 0..N, and rows 1..N are kept, so every
    patch gets its neighbour's position row, patch 0 is dropped and the CLS output is the last image token.
    The projector's GELU is ggml's tanh form."""
    model = mllm.model
    tower = getattr(model.vision_tower, "vision_model", model.vision_tower)
    emb = tower.embeddings
    patches = emb.patch_embedding(pixels).flatten(2).transpose(1, 2)
    seq = torch.cat([patches, emb.class_embedding.expand(1, 1, -1)], 1) + emb.position_embedding.weight[None]
    hidden = tower.pre_layrnorm(seq)
    blocks = len(tower.encoder.layers) + 1 + model.settings.select_layer
    for layer in tower.encoder.layers[:blocks]:
        out = layer(hidden, None)
        hidden = out[0] if isinstance(out, tuple) else out
    first, second = [m for m in model.mm_projector if isinstance(m, torch.nn.Linear)]
    return second(torch.nn.functional.gelu(first(hidden[:, 1:]), approximate="tanh"))


@pytest.mark.parametrize("family", IMAGE_FAMILIES)
def test_image_turn_parity(family: str, servers: dict, models: dict) -> None:
    """llama.cpp's image turn equals the pack's, up to llama.cpp's own CLIP-graph defect.

    The xllamacpp build under test (2026.10.11549) still has llama.cpp#25814 (fix proposed in PR #25844,
    not merged): see :func:`_cls_last_features`. No weight layout can undo it (the selected rows always
    include the CLS output and never patch 0), so the export stays faithful and this test checks
    llama.cpp against a reference of that exact graph; once llama.cpp orders CLS first it matches the
    faithful reference instead, which this test also accepts. The ``gemma`` case only matches because
    llama.cpp multiplies the image rows by sqrt(n_embd) like the text rows (LLMGA's training-time Gemma).
    The first 8 greedy tokens are compared: later ones can flip on near ties from ggml's tanh GELU.
    """
    server = _server(servers, family)
    mllm = _model(models, family)
    prompt = _prompts(exported_gguf(family).template)[2]
    image, png = _png()
    marker = json.loads(urllib.request.urlopen(server.url + "/props", timeout=30).read())["media_marker"]
    reply = _greedy_completion(
        server, {"prompt_string": prompt.replace("<image>", marker), "multimodal_data": [png]}, n_probs=1
    )
    ids = tokenizer_input_ids(prompt, mllm.tokenizer)
    pixels = clip_preprocess(image, mllm.clip_preprocess)
    n_patches = (336 // 14) ** 2
    assert reply["tokens_evaluated"] == len(ids) - 1 + n_patches
    faithful = run_turn(mllm, prompt, image, GREEDY)
    embeds = mllm.model.build_inputs_embeds(ids, _cls_last_features(mllm, pixels))
    cls_last = generate_reply(mllm.model, mllm.tokenizer, embeds, GREEDY)
    got = reply["tokens"][:8]
    if got == faithful.token_ids[:8]:
        return  # llama.cpp fixed its CLS order
    assert got == cls_last.token_ids[:8], (got, cls_last.token_ids, faithful.token_ids)
    with torch.no_grad():
        logprobs = torch.log_softmax(mllm.model(embeds).logits[0, -1], -1)
    first = reply["completion_probabilities"][0]["top_logprobs"][0]
    assert abs(first["logprob"] - logprobs[first["id"]].item()) < 2e-2
