"""The user turns of LLMGA's tasks (llmga-spec §1.7), built the way the CLIs build them.

- text-to-image: a text-only turn, the user's words as typed (``cli2-*``);
- similar image / inpainting / outpainting: ``<image>\\n`` + the instruction on the turn that brings the
  image; an empty instruction falls back to a phrasing the model was trained on;
- editing: a fixed two-turn chat, ``<image>\\nGenerate a similar image`` (no period, as in the CLI)
  for the source caption, then the user's instruction for the target caption;
- chat: free text, with the image if one is given.

Each function returns a new :class:`~.conversation.Conversation` awaiting the model's reply.
"""

from __future__ import annotations

from enum import Enum

from ..errors import LLMGAInputError
from .conversation import Conversation, ImageRef

__all__ = [
    "DEFAULT_INSTRUCTIONS",
    "EDIT_SOURCE_INSTRUCTION",
    "Task",
    "add_task_turn",
    "edit_source_turn",
    "edit_target_turn",
    "task_instruction",
]


class Task(str, Enum):
    TEXT_TO_IMAGE = "text-to-image"
    SIMILAR_IMAGE = "similar image"
    INPAINTING = "inpainting"
    OUTPAINTING = "outpainting"
    CHAT = "chat"

    @property
    def needs_image(self) -> bool:
        return self in (Task.SIMILAR_IMAGE, Task.INPAINTING, Task.OUTPAINTING)


# Phrasings from LLMGA's training lists (llmga/llava/prompt_temp.py), used when the user leaves the
# instruction empty.
DEFAULT_INSTRUCTIONS: dict[Task, str] = {
    Task.SIMILAR_IMAGE: "Generate a similar image.",
    Task.INPAINTING: "Inpaint this image.",
    Task.OUTPAINTING: "Outpaint this image.",
}

# The editing CLI's fixed first turn (cli-sd15-editing.py): no final period.
EDIT_SOURCE_INSTRUCTION = "Generate a similar image"


def task_instruction(task: Task | str, instruction: str) -> str:
    """The user's words for ``task``: the instruction stripped, or the task's trained default."""
    task = Task(task)
    text = instruction.strip()
    if text:
        return text
    if task in DEFAULT_INSTRUCTIONS:
        return DEFAULT_INSTRUCTIONS[task]
    what = "a short description of the image" if task is Task.TEXT_TO_IMAGE else "a message"
    raise LLMGAInputError(f"The instruction is empty: type {what} for the {task.value} task.")


def add_task_turn(
    conversation: Conversation,
    task: Task | str,
    instruction: str,
    image: ImageRef | None = None,
) -> Conversation:
    """Append the user turn of ``task`` to ``conversation`` (awaiting the reply).

    Image tasks need an image on the conversation's first image turn; text-to-image never attaches one
    (the text-only CLI passes no image). On later turns of a conversation that already has its image,
    the image is not repeated.
    """
    task = Task(task)
    text = task_instruction(task, instruction)
    if task is Task.TEXT_TO_IMAGE:
        return conversation.ask(text, task=task.value)
    if task.needs_image and image is None and conversation.image is None:
        raise LLMGAInputError(f"The {task.value} task needs an image: connect one to the image input.")
    return conversation.ask(text, image=image, task=task.value)


def edit_source_turn(template: str, image: ImageRef, *, im_start_end: bool = False) -> Conversation:
    """Turn 1 of LLMGA's editing chat: asks for the caption of the (centre-cropped) input image."""
    fresh = Conversation(template=template, im_start_end=im_start_end)
    return fresh.ask(EDIT_SOURCE_INSTRUCTION, image=image, task="edit source")


def edit_target_turn(answered_source: Conversation, instruction: str) -> Conversation:
    """Turn 2 of the editing chat: the edit instruction, answered with the target caption."""
    text = instruction.strip()
    if not text:
        raise LLMGAInputError("The edit instruction is empty: say what to change in the image.")
    if answered_source.awaiting_reply or not answered_source.turns:
        raise LLMGAInputError("Answer the editing chat's first turn before asking for the edit.")
    return answered_source.ask(text, task="edit target")
