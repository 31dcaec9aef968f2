"""An immutable LLMGA conversation: template name, turns, and the one image it talks about.

This is the value an ``LLMGA_CONVERSATION`` socket carries. It is frozen, so a node that continues a
conversation returns a new object and never alters one ComfyUI has cached. ``prompt()`` renders the exact
string LLMGA's CLIs feed the tokenizer (see :mod:`.templates`); ``to_dict``/``from_dict`` give a JSON
form for display and saving.

LLMGA places ``<image>\\n`` at the start of the user turn that brings the image (the first one in every
CLI) and never repeats it: later turns talk about the same image, whose pixels go to every generate call.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from ..errors import LLMGAInputError
from .templates import get_template, render_prompt

__all__ = [
    "IMAGE_TOKEN",
    "Conversation",
    "ImageRef",
    "Turn",
    "image_prefix",
]

IMAGE_TOKEN = "<image>"  # noqa: S105 (a placeholder, not a secret)
IM_START_TOKEN = "<im_start>"  # noqa: S105
IM_END_TOKEN = "<im_end>"  # noqa: S105


def image_prefix(im_start_end: bool = False) -> str:
    """The text put before the user's words in the turn that carries the image."""
    if im_start_end:  # config.mm_use_im_start_end; false for every released LLMGA model
        return f"{IM_START_TOKEN}{IMAGE_TOKEN}{IM_END_TOKEN}\n"
    return f"{IMAGE_TOKEN}\n"


@dataclass(frozen=True)
class ImageRef:
    """Which image a conversation is about.

    ``key`` identifies the image (e.g. a content hash) and is what equality and caching look at;
    ``pixels`` may carry the preprocessed tensor in-process (never compared, never serialised).
    """

    key: str
    width: int = 0
    height: int = 0
    pixels: Any = field(default=None, compare=False, repr=False)


@dataclass(frozen=True)
class Turn:
    """One user message and the model's reply (``None`` while the reply is awaited)."""

    user: str
    reply: str | None = None
    has_image: bool = False
    task: str = "chat"


@dataclass(frozen=True)
class Conversation:
    """A multi-turn LLMGA chat that renders to the exact prompt string of the original."""

    template: str
    turns: tuple[Turn, ...] = ()
    image: ImageRef | None = None
    system: str | None = None  # None: the template's own system string
    im_start_end: bool = False

    def __post_init__(self) -> None:
        get_template(self.template)  # fail early on an unknown name
        for turn in self.turns[:-1]:
            if turn.reply is None:
                raise LLMGAInputError("Only the last turn of a conversation may be waiting for a reply.")
        if sum(t.has_image for t in self.turns) > 1:
            raise LLMGAInputError("An LLMGA conversation carries one image; start a new one for another.")

    # ------------------------------------------------------------------------------ state
    @property
    def awaiting_reply(self) -> bool:
        """True when the last user turn has no reply yet (the state ``prompt()`` is generated from)."""
        return bool(self.turns) and self.turns[-1].reply is None

    @property
    def has_image_token(self) -> bool:
        return any(t.has_image for t in self.turns)

    # ------------------------------------------------------------------------------ building
    def ask(self, text: str, *, image: ImageRef | None = None, task: str = "chat") -> Conversation:
        """A copy with a new user turn awaiting the reply.

        ``image`` attaches the conversation's image to this turn if it has none yet; passing the image
        it already has again is allowed and adds nothing (the same image stays in the earlier turn).
        A literal ``<image>`` typed by the user is removed: it would splice a second, missing image.
        """
        if self.awaiting_reply:
            raise LLMGAInputError("The conversation is still waiting for a reply; answer it first.")
        text = text.replace(IMAGE_TOKEN, "")
        attach = False
        new_image = self.image
        if image is not None:
            if self.image is not None and self.image.key != image.key:
                raise LLMGAInputError(
                    "This conversation is already about another image. LLMGA keeps one image per "
                    "conversation: start a new conversation (leave the conversation input empty)."
                )
            if not self.has_image_token:
                attach, new_image = True, image
        if not text and not attach:
            raise LLMGAInputError("The message is empty: type an instruction.")
        turn = Turn(user=text, reply=None, has_image=attach, task=task)
        return replace(self, turns=(*self.turns, turn), image=new_image)

    def answer(self, reply: str) -> Conversation:
        """A copy with the awaited reply filled in (store the raw decoded text for CLI parity)."""
        if not self.awaiting_reply:
            raise LLMGAInputError("The conversation is not waiting for a reply.")
        last = replace(self.turns[-1], reply=reply)
        return replace(self, turns=(*self.turns[:-1], last))

    # ------------------------------------------------------------------------------ rendering
    def messages(self) -> list[str | None]:
        """The flat ``[user, reply, user, reply, ...]`` list the template renders."""
        out: list[str | None] = []
        prefix = image_prefix(self.im_start_end)
        for turn in self.turns:
            out.append(prefix + turn.user if turn.has_image else turn.user)
            out.append(turn.reply)
        return out

    def prompt(self) -> str:
        """The prompt string, byte-identical to LLaVA's ``Conversation.get_prompt()``."""
        return render_prompt(get_template(self.template), self.messages(), system=self.system)

    # ------------------------------------------------------------------------------ (de)serialising
    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (the image's pixels are left out; only its key and size travel)."""
        image = None
        if self.image is not None:
            image = {"key": self.image.key, "width": self.image.width, "height": self.image.height}
        return {
            "template": self.template,
            "system": self.system,
            "im_start_end": self.im_start_end,
            "image": image,
            "turns": [
                {"user": t.user, "reply": t.reply, "has_image": t.has_image, "task": t.task}
                for t in self.turns
            ],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Conversation:
        img = data.get("image")
        image = None
        if img:
            image = ImageRef(str(img["key"]), int(img.get("width", 0)), int(img.get("height", 0)))
        turns = tuple(
            Turn(str(t["user"]), t.get("reply"), bool(t.get("has_image", False)), str(t.get("task", "chat")))
            for t in data.get("turns", ())
        )
        return cls(
            template=str(data["template"]),
            turns=turns,
            image=image,
            system=data.get("system"),
            im_start_end=bool(data.get("im_start_end", False)),
        )
