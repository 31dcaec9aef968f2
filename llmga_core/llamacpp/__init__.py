"""llama.cpp in this process, through the C API of the ``xllamacpp`` wheel (ctypes; no server, no compiler).

- :mod:`.binding`: the pinned library, its struct layouts and function prototypes;
- :mod:`.model`: one GGUF text model with its context (tokenize, decode token ids or embedding rows, logits);
- :mod:`.vision`: the CLIP tower + projector of an mmproj GGUF rebuilt in torch, so image rows are LLaVA's
  own features rather than llama.cpp's CLIP graph;
- :mod:`.generate`: one LLMGA turn (LLaVA's chunk rule, image rows at ``<image>``, sampling, streaming).
"""

from __future__ import annotations

from .binding import XLLAMACPP_VERSION, pip_command
from .generate import run_gguf_turn
from .model import GGUFFileInfo, LlamaCppModel, LlamaCppSettings, inspect_gguf
from .vision import MMProjVision, load_mmproj

__all__ = [
    "XLLAMACPP_VERSION",
    "GGUFFileInfo",
    "LlamaCppModel",
    "LlamaCppSettings",
    "MMProjVision",
    "inspect_gguf",
    "load_mmproj",
    "pip_command",
    "run_gguf_turn",
]
