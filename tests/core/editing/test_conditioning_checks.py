"""check_conditioning: what the edit accepts from a graph, and what it says when the conditioning cannot serve
the model (token width of another family, SDXL without its pooled vector, nothing connected)."""

from __future__ import annotations

import pytest
import torch

from llmga_core.editing import check_conditioning
from llmga_core.editing.conditioning import ModelConds
from llmga_core.errors import LLMGAInputError

SDXL = ModelConds(family="SDXL", context_dim=2048, needs_pooled=True)
SD15 = ModelConds(family="SD1.5", context_dim=768, needs_pooled=False)


def cond(width: int, pooled: int | None = None, tokens: int = 77) -> list:
    extras = {} if pooled is None else {"pooled_output": torch.zeros(1, pooled)}
    return [[torch.zeros(1, tokens, width), extras]]


def test_a_fitting_conditioning_is_returned_as_it_is() -> None:
    sdxl = cond(2048, pooled=1280, tokens=154)
    assert check_conditioning("source", sdxl, SDXL) is sdxl
    sd15 = cond(768)
    assert check_conditioning("target", sd15, SD15) is sd15
    assert check_conditioning("target", cond(4096), None)  # no model to check against: only the shape


def test_sd15_tokens_into_sdxl_name_both_families_and_the_fix() -> None:
    with pytest.raises(LLMGAInputError) as err:
        check_conditioning("source", cond(768), SDXL)
    message = str(err.value)
    assert "source conditioning has 768-wide tokens (SD1.5)" in message
    assert "this SDXL model takes 2048-wide tokens" in message and "CLIP of the same checkpoint" in message


def test_an_unknown_width_is_named_by_its_number() -> None:
    with pytest.raises(LLMGAInputError, match="512-wide tokens \\(a 512-wide text encoder\\)"):
        check_conditioning("negative", cond(512), SD15)


def test_sdxl_without_its_pooled_vector_says_which_encoders_give_one() -> None:
    with pytest.raises(LLMGAInputError) as err:
        check_conditioning("target", cond(2048), SDXL)
    message = str(err.value)
    assert "target conditioning has no pooled text vector" in message and "CLIP Text Encode (SDXL)" in message
    assert check_conditioning("target", cond(768), SD15)  # SD1.5 needs none


@pytest.mark.parametrize("bad", [None, [], [[torch.zeros(77, 768), {}]], [["text", {}]], "a cat"])
def test_nothing_usable_connected_is_an_empty_conditioning(bad: object) -> None:
    with pytest.raises(LLMGAInputError, match="the source conditioning is empty; connect a text encode node"):
        check_conditioning("source", bad, SD15)
