"""LLMGA's chat templates and the rule that picks one for a model folder.

Every template renders byte-for-byte the prompt string LLMGA's CLIs build (LLaVA's conversation
renderer, llmga-spec §1.6), including its oddities: the Llama-3 assistant header is ``system``, the
Mistral prompt wraps an empty system block, Qwen2's ChatML has no newline after ``<|im_end|>``, Gemma
writes ``<eos>`` after each model turn. Those strings are what the models were fine-tuned on, so they
are reproduced, not "fixed".

Rendering works on a flat message list ``[user, assistant, user, assistant, ...]`` where ``None`` marks
the reply being awaited. Like the original, an empty string counts as "no message".
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import Enum
from pathlib import Path

from ..errors import LLMGAInputError

__all__ = [
    "ALIASES",
    "TEMPLATES",
    "TEMPLATE_NAMES",
    "ChatTemplate",
    "SeparatorStyle",
    "TemplateChoice",
    "get_template",
    "model_name_from_path",
    "render_prompt",
    "select_template",
    "select_template_for_folder",
    "template_from_folder_name",
]


class SeparatorStyle(str, Enum):
    """How turns are joined; one renderer per style."""

    SINGLE = "single"  # "{sys}###Human: msg###Assistant:"
    TWO = "two"  # vicuna: sep after user turns, sep2 after assistant turns
    MPT = "mpt"  # ChatML-like: role strings carry their own tags
    PLAIN = "plain"  # bare messages
    LLAMA_2 = "llama_2"  # [INST] <<SYS>> ... [/INST]
    LLAMA_3 = "llama_3"
    GEMMA = "gemma"
    PHI_3 = "phi_3"
    QWEN_2 = "qwen_2"


@dataclass(frozen=True)
class ChatTemplate:
    """One conversation template: the strings the renderer glues messages with.

    ``stop_strings`` are the end-of-reply strings the model emits at the end of an answer under this
    template (what LLMGA's CLIs cut off by character count); extraction removes them by value.
    """

    name: str
    style: SeparatorStyle
    system: str
    roles: tuple[str, str]
    sep: str
    sep2: str | None = None
    stop_strings: tuple[str, ...] = ()
    # A few-shot exchange rendered before the conversation (alternating user/assistant), as the original's
    # pre-filled ``messages`` (only vicuna_v0 has one).
    examples: tuple[str, ...] = ()

    def render(self, messages: Sequence[str | None], system: str | None = None) -> str:
        """The prompt string for ``messages`` (alternating user/assistant, ``None`` = awaited)."""
        return render_prompt(self, messages, system=system)


_VICUNA_HUMAN_SYSTEM = (
    "A chat between a curious human and an artificial intelligence assistant. "
    "The assistant gives helpful, detailed, and polite answers to the human's questions."
)
# The one-shot exchange of the original's vicuna_v0 ("default"/"v0") template, verbatim.
_VICUNA_V0_EXAMPLE = (
    "What are the key differences between renewable and non-renewable energy sources?",
    "Renewable energy sources are those that can be replenished naturally in a relatively "
    "short amount of time, such as solar, wind, hydro, geothermal, and biomass. "
    "Non-renewable energy sources, on the other hand, are finite and will eventually be "
    "depleted, such as coal, oil, and natural gas. Here are some key differences between "
    "renewable and non-renewable energy sources:\n"
    "1. Availability: Renewable energy sources are virtually inexhaustible, while non-renewable "
    "energy sources are finite and will eventually run out.\n"
    "2. Environmental impact: Renewable energy sources have a much lower environmental impact "
    "than non-renewable sources, which can lead to air and water pollution, greenhouse gas emissions, "
    "and other negative effects.\n"
    "3. Cost: Renewable energy sources can be more expensive to initially set up, but they typically "
    "have lower operational costs than non-renewable sources.\n"
    "4. Reliability: Renewable energy sources are often more reliable and can be used in more remote "
    "locations than non-renewable sources.\n"
    "5. Flexibility: Renewable energy sources are often more flexible and can be adapted to different "
    "situations and needs, while non-renewable sources are more rigid and inflexible.\n"
    "6. Sustainability: Renewable energy sources are more sustainable over the long term, while "
    "non-renewable sources are not, and their depletion can lead to economic and social instability.\n",
)
_VICUNA_USER_SYSTEM = (
    "A chat between a curious user and an artificial intelligence assistant. "
    "The assistant gives helpful, detailed, and polite answers to the user's questions."
)
# The missing space after "language." is in the original string; the model saw it that way.
_MMTAG_SYSTEM = (
    "A chat between a curious user and an artificial intelligence assistant. "
    "The assistant is able to understand the visual content that the user provides, and assist the user "
    "with a variety of tasks using natural language."
    "The visual content will be provided with the following format: <Image>visual content</Image>."
)
_LLAMA2_DEFAULT_SYSTEM = (
    "You are a helpful, respectful and honest assistant. Always answer as helpfully as possible, while "
    "being safe.  Your answers should not include any harmful, unethical, racist, sexist, toxic, dangerous, "
    "or illegal content. Please ensure that your responses are socially unbiased and positive in nature."
    "\n\nIf a question does not make any sense, or is not factually coherent, explain why instead of "
    "answering something not correct. If you don't know the answer to a question, please don't share "
    "false information."
)
_LLMGA_LLAMA2_SYSTEM = (
    "You are LLMGA, a useful language and vision generation assistant. You can generate images according "
    "to the user's requirements. If the user wants you to inpaint or outpaint images, please imagine what "
    "is in the black mask parts of the image. If image generation is required, please provide a detailed "
    "description of the generated images in the form of <gen_image> DETAILED DESCRIPTION </gen_image>."
)
_LLAMA3_SYSTEM = (
    "<|start_header_id|>system<|end_header_id|>\n\nYou are a helpful language and vision assistant. "
    "You are able to understand the visual content that the user provides, "
    "and assist the user with a variety of tasks using natural language."
)
_CHATML_ROLES = ("<|im_start|>user\n", "<|im_start|>assistant\n")
_CHATML_LLM_SYSTEM = (
    "<|im_start|>system\nA conversation between a user and an LLM-based AI assistant. "
    "The assistant gives helpful and honest answers."
)

_S = SeparatorStyle
_ALL = (
    # The templates LLMGA's auto-selection can reach come first (the order of spec §1.6).
    ChatTemplate("llava_v1", _S.TWO, _VICUNA_HUMAN_SYSTEM, ("USER", "ASSISTANT"), " ", "</s>", ("</s>",)),
    ChatTemplate("llama_3", _S.LLAMA_3, _LLAMA3_SYSTEM,
                 ("<|start_header_id|>user<|end_header_id|>\n\n",
                  "<|start_header_id|>system<|end_header_id|>\n\n"),
                 "<|eot_id|>", None, ("<|eot_id|>", "<|end_of_text|>")),
    ChatTemplate("mistral_instruct", _S.LLAMA_2, "", ("USER", "ASSISTANT"), "<s>", "</s>", ("</s>",)),
    ChatTemplate("gemma", _S.GEMMA, "", ("user", "model"), "", "<eos>", ("<end_of_turn>", "<eos>")),
    ChatTemplate("qwen_2", _S.QWEN_2, _CHATML_LLM_SYSTEM, _CHATML_ROLES, "<|im_end|>", None,
                 ("<|im_end|>", "<|endoftext|>")),
    ChatTemplate("phi_3", _S.PHI_3, "", ("<|user|>", "<|assistant|>"), "<|end|>", None,
                 ("<|end|>", "<|endoftext|>")),
    ChatTemplate("llava_llama_2", _S.LLAMA_2, _LLMGA_LLAMA2_SYSTEM, ("USER", "ASSISTANT"), "<s>", "</s>",
                 ("</s>",)),
    ChatTemplate("chatml_direct", _S.MPT, "<|im_start|>system\nAnswer the questions.", _CHATML_ROLES,
                 "<|im_end|>", None, ("<|im_end|>",)),
    ChatTemplate("mpt", _S.MPT, _CHATML_LLM_SYSTEM, _CHATML_ROLES, "<|im_end|>", None, ("<|im_end|>",)),
    ChatTemplate("llava_v0", _S.SINGLE, _VICUNA_HUMAN_SYSTEM, ("Human", "Assistant"), "###", None,
                 ("###", "</s>")),
    # Reachable only by explicit choice (training-time or LLaVA legacy templates).
    ChatTemplate("vicuna_v1", _S.TWO, _VICUNA_USER_SYSTEM, ("USER", "ASSISTANT"), " ", "</s>", ("</s>",)),
    ChatTemplate("llama_2", _S.LLAMA_2, _LLAMA2_DEFAULT_SYSTEM, ("USER", "ASSISTANT"), "<s>", "</s>",
                 ("</s>",)),
    ChatTemplate("v0_mmtag", _S.SINGLE, _MMTAG_SYSTEM, ("Human", "Assistant"), "###", None, ("###", "</s>")),
    ChatTemplate("v1_mmtag", _S.TWO, _MMTAG_SYSTEM, ("USER", "ASSISTANT"), " ", "</s>", ("</s>",)),
    ChatTemplate("plain", _S.PLAIN, "", ("", ""), "\n", None, ("</s>",)),
    # The original's "default"/"v0": FastChat's one-shot vicuna_v0 prompt (no LLMGA model uses it).
    ChatTemplate("vicuna_v0", _S.SINGLE, _VICUNA_HUMAN_SYSTEM, ("Human", "Assistant"), "###", None,
                 ("###", "</s>"), _VICUNA_V0_EXAMPLE),
)

TEMPLATES: dict[str, ChatTemplate] = {t.name: t for t in _ALL}
"""Canonical name -> template."""

ALIASES: dict[str, str] = {
    "default": "vicuna_v0",
    "v0": "vicuna_v0",
    "v1": "vicuna_v1",  # the name LLaVA's training scripts use
    "mistral_direct": "chatml_direct",
    "v0_plain": "plain",
}
"""Other names the original registry accepts for the same template."""

TEMPLATE_NAMES: tuple[str, ...] = tuple(TEMPLATES)
"""Canonical names, LLMGA's auto-selectable ones first (for a UI choice list)."""


def get_template(name: str) -> ChatTemplate:
    """The template called ``name`` (canonical name or alias)."""
    key = ALIASES.get(name, name)
    try:
        return TEMPLATES[key]
    except KeyError:
        raise LLMGAInputError(
            f"Unknown conversation template {name!r}. Choose one of: {', '.join(TEMPLATE_NAMES)}."
        ) from None


# ----------------------------------------------------------------------------------------- rendering


def render_prompt(template: ChatTemplate, messages: Sequence[str | None], system: str | None = None) -> str:
    """Render alternating ``[user, assistant, ...]`` messages exactly as LLaVA's ``get_prompt`` does.

    ``None`` or ``""`` means "no message": for an assistant slot that is the reply being awaited and
    renders the open role header. ``system`` overrides the template's system string.
    """
    sys_text = template.system if system is None else system
    messages = [*template.examples, *messages]
    style = template.style
    user_role, bot_role = template.roles
    parts: list[str] = []
    if style is SeparatorStyle.LLAMA_2:
        return _render_llama2(template, messages, sys_text)
    if style is SeparatorStyle.PHI_3:
        # Phi-3's renderer has no system slot at all.
        for i, msg in enumerate(messages):
            role = bot_role if i % 2 else user_role
            parts.append(f"{role}\n{msg}{template.sep}\n" if msg else f"{role}\n")
        return "".join(parts)
    if style is SeparatorStyle.PLAIN:
        parts.append(sys_text)
        for i, msg in enumerate(messages):
            if msg:
                parts.append(msg + _sep(template, i))
        return "".join(parts)
    if style is SeparatorStyle.GEMMA:
        parts.append(sys_text + template.sep)
        for i, msg in enumerate(messages):
            role = bot_role if i % 2 else user_role
            if msg:
                parts.append(f"<start_of_turn>{role}\n{msg}<end_of_turn>\n{_sep(template, i)}")
            else:
                parts.append(f"<start_of_turn>{role}\n")
        return "".join(parts)
    parts.append(sys_text + template.sep)
    for i, msg in enumerate(messages):
        role = bot_role if i % 2 else user_role
        if style is SeparatorStyle.SINGLE:
            parts.append(f"{role}: {msg}{template.sep}" if msg else f"{role}:")
        elif style is SeparatorStyle.TWO:
            parts.append(f"{role}: {msg}{_sep(template, i)}" if msg else f"{role}:")
        else:  # MPT, LLAMA_3, QWEN_2: the role strings already carry the header tags
            parts.append(f"{role}{msg}{template.sep}" if msg else role)
    return "".join(parts)


def _sep(template: ChatTemplate, index: int) -> str:
    # sep after user messages, sep2 after assistant ones; a missing sep2 renders as nothing
    return template.sep if index % 2 == 0 else (template.sep2 or "")


def _render_llama2(template: ChatTemplate, messages: Sequence[str | None], sys_text: str) -> str:
    if messages and not messages[0]:
        raise LLMGAInputError("The first message of a Llama-2/Mistral style conversation must not be empty.")
    out: list[str] = []
    for i, msg in enumerate(messages):
        if not msg:
            continue
        if i == 0:
            msg = f"<<SYS>>\n{sys_text}\n<</SYS>>\n\n{msg}"
        if i % 2 == 0:
            # Every user turn opens with the BOS text "<s>" except the very first one (the tokenizer adds
            # that BOS itself).
            out.append(("" if i == 0 else template.sep) + f"[INST] {msg} [/INST]")
        else:
            out.append(f" {msg} {template.sep2}")
    return "".join(out)


# ----------------------------------------------------------------------------------------- selection


@dataclass(frozen=True)
class TemplateChoice:
    """The template picked for a model and why (shown to the user when "auto" is chosen)."""

    name: str
    source: str  # "override", "config", "tokenizer", "folder name" or "default"
    reason: str


# The original's rule (spec §1.6, §7.1): lowercased folder name, first substring match wins.
_FOLDER_RULES: tuple[tuple[str, str], ...] = (
    ("llama-2", "llava_llama_2"),
    ("llama3", "llama_3"),
    ("gemma", "gemma"),
    ("qwen2", "qwen_2"),
    ("phi-3", "phi_3"),
    ("mistral", "mistral_instruct"),
    ("v1.6-34b", "chatml_direct"),
    ("v1", "llava_v1"),
    ("mpt", "mpt"),
)
_FOLDER_DEFAULT = "llava_v0"

# model_type values the LLMGA/LLaVA classes register (and the plain base types), lowercased.
_MODEL_TYPE_TEMPLATES: dict[str, str] = {
    "llava_mistral": "mistral_instruct",
    "mistral": "mistral_instruct",
    "llava_gemma": "gemma",
    "gemma": "gemma",
    "llava_qwen2": "qwen_2",
    "qwen2": "qwen_2",
    "llava_phi3": "phi_3",
    "phi3": "phi_3",
    "llava_mpt": "mpt",
    "mpt": "mpt",
}
_LLAMA_TYPES = frozenset({"llava_llama", "llama"})
_LLAMA3_MARKERS = ("<|eot_id|>", "<|begin_of_text|>", "<|start_header_id|>")


def model_name_from_path(path: str | Path) -> str:
    """The model name LLaVA derives from a folder path (``checkpoint-N`` folders keep their parent)."""
    parts = [p for p in str(path).replace("\\", "/").strip("/").split("/") if p]
    if not parts:
        return ""
    if parts[-1].startswith("checkpoint-") and len(parts) > 1:
        return f"{parts[-2]}_{parts[-1]}"
    return parts[-1]


def template_from_folder_name(model_name: str) -> str:
    """The original CLIs' choice: first substring rule that matches the lowercased name."""
    low = model_name.lower()
    for needle, name in _FOLDER_RULES:
        if needle in low:
            return name
    return _FOLDER_DEFAULT


def select_template(
    model_name: str | None = None,
    config: Mapping[str, object] | None = None,
    tokenizer_tokens: Iterable[str] = (),
    chat_template: str | None = None,
    override: str | None = None,
) -> TemplateChoice:
    """Pick the conversation template for a model.

    Order: an explicit ``override`` (anything but ``None``/``"auto"``); then facts of the checkpoint
    (``config.json``'s ``model_type``, the tokenizer's special tokens / vocabulary size / chat template);
    then the original's folder-name rule. Facts come first because a renamed folder should keep working;
    on the released folders both agree.

    ``tokenizer_tokens`` are the tokenizer's special/added token strings; ``chat_template`` is the
    tokenizer's Jinja chat template, if any.
    """
    if override not in (None, "", "auto"):
        return TemplateChoice(get_template(override).name, "override", f"chosen explicitly: {override}")

    by_name = template_from_folder_name(model_name) if model_name else None
    cfg = dict(config or {})
    model_type = str(cfg.get("model_type", "")).lower()
    tokens = set(tokenizer_tokens)

    if model_type in _MODEL_TYPE_TEMPLATES:
        name = _MODEL_TYPE_TEMPLATES[model_type]
        return TemplateChoice(name, "config", f"config.json model_type={cfg.get('model_type')!r}")

    if model_type in _LLAMA_TYPES or (not model_type and tokens):
        vocab = cfg.get("vocab_size")
        if any(m in tokens for m in _LLAMA3_MARKERS) or (isinstance(vocab, int) and vocab >= 128000):
            return TemplateChoice("llama_3", "tokenizer", "Llama-3 vocabulary (<|eot_id|> / 128k tokens)")
        if model_type:
            # No Llama-3 facts (config without vocab_size, no tokenizer files): trust a Llama-family folder
            # name; otherwise a 32k SentencePiece Llama is vicuna (llava_v1) or the old Llama-2-chat.
            if by_name in ("llava_llama_2", "llava_v1", "llama_3"):
                return TemplateChoice(by_name, "folder name", f"Llama family; folder name {model_name!r}")
            base = str(cfg.get("_name_or_path", "")).lower()
            if "llama-2" in base or (chat_template and "<<SYS>>" in chat_template):
                return TemplateChoice("llava_llama_2", "config", "Llama-2-chat base model")
            return TemplateChoice("llava_v1", "config", "Llama family with a 32k vocabulary (vicuna)")

    if by_name is not None:
        return TemplateChoice(by_name, "folder name", f"folder name {model_name!r}")
    return TemplateChoice(_FOLDER_DEFAULT, "default", "no model facts available")


_TOKEN_KEYS = ("bos_token", "eos_token", "unk_token", "pad_token")


def select_template_for_folder(folder: str | Path, override: str | None = None) -> TemplateChoice:
    """:func:`select_template` reading the facts from a model folder's JSON files (no model load)."""
    folder = Path(folder)
    config = _read_json(folder / "config.json")
    tok_cfg = _read_json(folder / "tokenizer_config.json")
    tokens: set[str] = set()
    for key in _TOKEN_KEYS:
        tokens.update(_token_strings(tok_cfg.get(key)))
    for entry in (tok_cfg.get("added_tokens_decoder") or {}).values():
        tokens.update(_token_strings(entry))
    tokens.update(str(k) for k in _read_json(folder / "added_tokens.json"))
    for entry in _read_json(folder / "special_tokens_map.json").values():
        tokens.update(_token_strings(entry))
    chat = tok_cfg.get("chat_template")
    return select_template(
        model_name_from_path(folder),
        config,
        tokens,
        chat if isinstance(chat, str) else None,
        override,
    )


def _read_json(path: Path) -> dict:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _token_strings(value: object) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, Mapping) and isinstance(value.get("content"), str):
        return [value["content"]]
    if isinstance(value, list):
        return [s for v in value for s in _token_strings(v)]
    return []

