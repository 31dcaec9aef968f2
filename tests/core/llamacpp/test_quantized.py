"""Quantised exports (``python -m llmga_core.export gguf --dtype q8_0|q4_0``) load and stay close to f32,
and bad files and a missing wheel are refused with what to do."""

from __future__ import annotations

from pathlib import Path

import pytest

from llmga_core.errors import LLMGAInputError
from llmga_core.llamacpp import LlamaCppModel, binding, inspect_gguf
from tests.fixtures.gguf_exports import exported_gguf, first_step_cosine
from tests.fixtures.llama_server import require_llama_server

require_llama_server()

FAMILY = "vicuna"
# cosine of the first-step logits with the f32 export's (tiny random model: quantisation noise is large)
MIN_COSINE = {"q8_0": 0.99, "q4_0": 0.9}


@pytest.mark.parametrize("dtype", ["q8_0", "q4_0"])
def test_quantised_export_loads_and_stays_close(dtype: str) -> None:
    from gguf import GGMLQuantizationType as Q
    from gguf import GGUFReader

    export = exported_gguf(FAMILY, dtype)
    assert export.model.name.endswith(f"-{dtype}.gguf") and export.mmproj.name.endswith("-f16.gguf")
    types = {t.name: Q(int(t.tensor_type)) for t in GGUFReader(export.model).tensors}
    assert types["blk.0.attn_q.weight"] == (Q.Q8_0 if dtype == "q8_0" else Q.Q4_0)
    assert types["token_embd.weight"] == Q.Q8_0 and types["blk.0.attn_norm.weight"] == Q.F32
    assert inspect_gguf(export.model).file_type == (7 if dtype == "q8_0" else 2)
    cosine = first_step_cosine(export.model, exported_gguf(FAMILY).model, export.template)
    assert cosine > MIN_COSINE[dtype], cosine


def test_bad_files_are_refused_before_loading(tmp_path: Path) -> None:
    text = tmp_path / "notes.gguf"
    text.write_text("not weights")
    with pytest.raises(LLMGAInputError, match="is not a GGUF file"):
        inspect_gguf(text)
    data = exported_gguf(FAMILY).model.read_bytes()
    cut = tmp_path / "cut.gguf"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(LLMGAInputError, match="truncated"):
        LlamaCppModel(cut)
    with pytest.raises(LLMGAInputError, match="mmproj"):
        inspect_gguf(exported_gguf(FAMILY).mmproj)


def test_a_missing_wheel_names_the_pip_command(monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "xllamacpp" else real(name, *a))
    with pytest.raises(LLMGAInputError, match=r"-m pip install xllamacpp==2026\.10\.11549"):
        binding._library_path()
