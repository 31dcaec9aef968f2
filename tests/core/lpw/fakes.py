"""Model-free stand-ins for the LPW tests: a character tokenizer, a recording encoder, and ComfyUI's
native chunk layout written out from spec 2.5 (for the LPW-vs-native comparisons)."""

from __future__ import annotations

import torch

from llmga_core.lpw.layouts import CHUNK_BODY

BOS, EOS = 49406, 49407


def char_tokenize(text: str) -> list[int]:
    """One id per non-space character (ids 1..), so counts are easy to reason about."""
    return [ord(c) for c in text if not c.isspace()]


def native_comfy_chunks(ids: list[int], pad: int) -> list[list[int]]:
    """ComfyUI's native layout for one unweighted segment, as spec 2.5 describes it."""
    bodies = [ids[i : i + CHUNK_BODY] for i in range(0, max(len(ids), 1), CHUNK_BODY)] or [[]]
    return [[BOS, *body, EOS] + [pad] * (CHUNK_BODY - len(body)) for body in bodies]


class FakeEncoder:
    """hidden[0, j] = (id_j, j, call number, offset); pooled = hidden at position 76."""

    def __init__(self, offset: float = 0.0) -> None:
        self.calls: list[torch.Tensor] = []
        self.offset = offset

    def __call__(self, ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        assert ids.dtype == torch.long and ids.shape == (1, 77)
        self.calls.append(ids)
        n = len(self.calls)
        hidden = torch.stack(
            [ids[0].float(), torch.arange(77.0), torch.full((77,), float(n)), torch.full((77,), self.offset)], -1
        )[None]
        return hidden, hidden[:, -1]
