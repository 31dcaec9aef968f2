"""Conversation value object and the task turns (llmga-spec §1.7, §1.10)."""

from __future__ import annotations

import dataclasses

import pytest

from llmga_core.errors import LLMGAInputError
from llmga_core.mllm import (
    DEFAULT_INSTRUCTIONS,
    Conversation,
    ImageRef,
    Task,
    Turn,
    add_task_turn,
    edit_source_turn,
    edit_target_turn,
    task_instruction,
)

IMG = ImageRef("sha-1", 40, 24, pixels=object())
VICUNA_SYS = (
    "A chat between a curious human and an artificial intelligence assistant. The assistant gives helpful, "
    "detailed, and polite answers to the human's questions."
)


def test_conversation_is_immutable_and_continuing_returns_new_objects():
    c0 = Conversation("qwen_2")
    c1 = c0.ask("hello")
    c2 = c1.answer("hi<|im_end|>")
    assert c0.turns == () and c1.turns == (Turn("hello"),) and c2.turns[-1].reply == "hi<|im_end|>"
    with pytest.raises(dataclasses.FrozenInstanceError):
        c2.template = "gemma"  # type: ignore[misc]


def test_state_errors_name_the_fix():
    c = Conversation("llava_v1").ask("a")
    with pytest.raises(LLMGAInputError, match="waiting"):
        c.ask("b")
    with pytest.raises(LLMGAInputError, match="not waiting"):
        Conversation("llava_v1").answer("x")
    with pytest.raises(LLMGAInputError, match="empty"):
        Conversation("llava_v1").ask("")
    with pytest.raises(LLMGAInputError, match="Unknown conversation template"):
        Conversation("nope")
    with pytest.raises(LLMGAInputError, match="last turn"):
        Conversation("llava_v1", turns=(Turn("a"), Turn("b", "c")))


def test_image_goes_in_once_and_a_second_image_is_refused():
    c = Conversation("llava_v1").ask("first", image=IMG).answer("A</s>")
    c = c.ask("second", image=IMG)  # same image again: allowed, no second token
    assert c.prompt().count("<image>") == 1
    assert c.prompt() == f"{VICUNA_SYS} USER: <image>\nfirst ASSISTANT: A</s></s>USER: second ASSISTANT:"
    with pytest.raises(LLMGAInputError, match="another image"):
        c.answer("B").ask("third", image=ImageRef("other"))


def test_late_image_attaches_to_its_turn():
    c = Conversation("qwen_2").ask("text first").answer("ok").ask("now this", image=IMG)
    assert c.turns[1].has_image and not c.turns[0].has_image
    assert c.prompt().endswith("<|im_start|>user\n<image>\nnow this<|im_end|><|im_start|>assistant\n")


def test_typed_image_placeholder_is_removed():
    c = Conversation("phi_3").ask("a <image> b")
    assert "<image>" not in c.prompt() and c.turns[0].user == "a  b"


def test_image_only_turn_and_im_start_end_prefix():
    assert Conversation("phi_3").ask("", image=IMG).prompt() == "<|user|>\n<image>\n<|end|>\n<|assistant|>\n"
    c = Conversation("llava_v1", im_start_end=True).ask("x", image=IMG)
    assert "USER: <im_start><image><im_end>\nx ASSISTANT:" in c.prompt()


def test_system_override():
    assert Conversation("qwen_2", system="<|im_start|>system\nBe brief.").ask("q").prompt() == (
        "<|im_start|>system\nBe brief.<|im_end|><|im_start|>user\nq<|im_end|><|im_start|>assistant\n"
    )


def test_dict_round_trip_drops_pixels_keeps_everything_else():
    c = Conversation("gemma", system="S").ask("x", image=IMG, task="similar image").answer("y").ask("z")
    d = c.to_dict()
    assert d["image"] == {"key": "sha-1", "width": 40, "height": 24}
    back = Conversation.from_dict(d)
    assert back == c and back.prompt() == c.prompt() and back.image.pixels is None
    assert back.turns[0].task == "similar image"


# ------------------------------------------------------------------------------------ task turns


def test_task_defaults_are_the_trained_phrasings():
    assert task_instruction(Task.SIMILAR_IMAGE, "  ") == "Generate a similar image."
    assert task_instruction("inpainting", "") == "Inpaint this image."
    assert task_instruction("outpainting", "") == "Outpaint this image."
    assert task_instruction("inpainting", "  Fill the hole with a dog.\n") == "Fill the hole with a dog."
    assert set(DEFAULT_INSTRUCTIONS) == {Task.SIMILAR_IMAGE, Task.INPAINTING, Task.OUTPAINTING}
    with pytest.raises(LLMGAInputError, match="text-to-image"):
        task_instruction(Task.TEXT_TO_IMAGE, " ")


def test_text_to_image_is_text_only_even_with_an_image():
    c = add_task_turn(Conversation("llava_v1"), Task.TEXT_TO_IMAGE, "a cat in a hat", image=IMG)
    assert c.prompt() == f"{VICUNA_SYS} USER: a cat in a hat ASSISTANT:" and c.image is None


@pytest.mark.parametrize("task", [Task.SIMILAR_IMAGE, Task.INPAINTING, Task.OUTPAINTING])
def test_image_tasks_prefix_the_image_and_need_one(task):
    c = add_task_turn(Conversation("qwen_2"), task, "", image=IMG)
    assert c.prompt().endswith(
        f"<|im_start|>user\n<image>\n{DEFAULT_INSTRUCTIONS[task]}<|im_end|><|im_start|>assistant\n"
    )
    assert c.turns[0].task == task.value
    with pytest.raises(LLMGAInputError, match="needs an image"):
        add_task_turn(Conversation("qwen_2"), task, "")
    # later turns of the same conversation do not need the image again
    later = add_task_turn(c.answer("<gen_image> x </gen_image>"), task, "again")
    assert later.prompt().count("<image>") == 1


def test_editing_two_turn_chat_renders_like_the_cli():
    src = edit_source_turn("llava_v1", IMG)
    assert src.prompt() == f"{VICUNA_SYS} USER: <image>\nGenerate a similar image ASSISTANT:"
    tgt = edit_target_turn(src.answer("<gen_image> a dog on grass </gen_image></s>"), " make it a cat ")
    assert tgt.prompt() == (
        f"{VICUNA_SYS} USER: <image>\nGenerate a similar image ASSISTANT: <gen_image> a dog on grass "
        "</gen_image></s></s>USER: make it a cat ASSISTANT:"
    )
    with pytest.raises(LLMGAInputError):
        edit_target_turn(src, "make it a cat")  # first turn not answered
    with pytest.raises(LLMGAInputError):
        edit_target_turn(src.answer("x"), "  ")
