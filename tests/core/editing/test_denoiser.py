"""The denoiser wrapper: single and batched evaluation, and its errors."""

from __future__ import annotations

import pytest
import torch

from llmga_core.editing import Denoiser
from llmga_core.editing.denoiser import as_denoiser
from llmga_core.errors import LLMGAInputError


def test_batched_form_is_used_for_several_conds_only() -> None:
    log: list[str] = []

    def eps(x: torch.Tensor, t: int, cond: float) -> torch.Tensor:
        log.append("single")
        return x * cond

    def eps_batch(x: torch.Tensor, t: int, conds: list[float]) -> list[torch.Tensor]:
        log.append("batch")
        return [x * c for c in conds]

    model = Denoiser(eps, eps_batch)
    x = torch.ones(1, 4, 2, 2)
    outs = model.predict(x, 10, [2.0, 3.0])
    assert [o.mean().item() for o in outs] == [2.0, 3.0]
    model.predict(x, 10, [5.0])
    assert log == ["batch", "single"]


def test_batched_form_must_return_one_prediction_per_cond() -> None:
    model = Denoiser(lambda x, t, c: x, lambda x, t, conds: [x])
    with pytest.raises(LLMGAInputError, match="one per conditioning"):
        model.predict(torch.ones(1, 4, 2, 2), 10, ["a", "b"])


def test_plain_callables_are_wrapped_and_others_rejected() -> None:
    assert isinstance(as_denoiser(lambda x, t, c: x), Denoiser)
    with pytest.raises(LLMGAInputError, match="callable eps"):
        as_denoiser("unet")  # type: ignore[arg-type]
