"""The ctypes binding against the pinned xllamacpp wheel: version pin, struct layouts, native lifetime."""

from __future__ import annotations

import ctypes
import importlib.metadata
import re
from pathlib import Path

import pytest

from llmga_core.errors import LLMGAInputError
from llmga_core.llamacpp import binding
from llmga_core.llamacpp.binding import LlamaBatch, LlamaContextParams, LlamaModelParams, library
from tests.fixtures.llama_server import require_llama_server

require_llama_server()

REPO = Path(__file__).resolve().parents[3]


def test_the_bound_version_is_the_pinned_and_installed_one() -> None:
    pins = re.findall(r"^xllamacpp==(\S+)", (REPO / "requirements-test.txt").read_text(), re.M)
    assert pins == [binding.XLLAMACPP_VERSION]
    assert importlib.metadata.version("xllamacpp") == binding.XLLAMACPP_VERSION
    assert binding.XLLAMACPP_VERSION in binding.pip_command() and "-m pip install" in binding.pip_command()


def test_struct_layouts_match_the_library() -> None:
    lib = library()
    # sizes and offsets of llama.h at the pinned build (x86-64 / aarch64 LP64)
    assert ctypes.sizeof(LlamaModelParams) == 80
    assert LlamaModelParams.main_gpu.offset == 32 and LlamaModelParams.vocab_only.offset == 72
    assert ctypes.sizeof(LlamaContextParams) == 168
    assert LlamaContextParams.type_k.offset == 104 and LlamaContextParams.moe_cache_size.offset == 112
    assert LlamaContextParams.embeddings.offset == 136 and LlamaContextParams.ctx_other.offset == 160
    assert ctypes.sizeof(LlamaBatch) == 56
    binding.check_layouts(lib)  # what library() ran: the bytes written and the default values
    ctx = lib.llama_context_default_params()
    assert (ctx.n_ubatch, ctx.n_seq_max, ctx.flash_attn_type, ctx.swa_full) == (512, 1, -1, True)
    model = lib.llama_model_default_params()
    assert (model.n_gpu_layers, model.load_mode, model.main_gpu, model.vocab_only) == (-1, -1, 0, False)


def test_a_batch_round_trips_through_the_library() -> None:
    lib = library()
    batch = lib.llama_batch_init(4, 8, 1)
    try:
        for i in range(4):
            batch.pos[i] = i
            batch.embd[i * 8 + 7] = float(i)
        assert [batch.pos[i] for i in range(4)] == [0, 1, 2, 3]
        assert batch.embd[3 * 8 + 7] == 3.0
        assert not batch.token  # an embedding batch has no token array
    finally:
        lib.llama_batch_free(batch)


def test_a_wrong_wheel_version_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(binding, "XLLAMACPP_VERSION", "2000.1.1")
    with pytest.raises(LLMGAInputError, match=r"pip install xllamacpp==2000\.1\.1"):
        binding._library_path()
