"""Templates: byte parity with the original get_prompt(), the spec strings, and the selection rule."""

from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from llmga_core.errors import LLMGAInputError
from llmga_core.mllm import (
    TEMPLATE_NAMES,
    Conversation,
    ImageRef,
    get_template,
    model_name_from_path,
    render_prompt,
    select_template,
    select_template_for_folder,
    template_from_folder_name,
)
from tests.core.mllm.golden import load_json

CASES = load_json("templates.json")["cases"]
IMG = ImageRef("img", 40, 24)


def _replay(case):
    conv = Conversation(get_template(case["template"]).name, system=case["system"], im_start_end=case["im_start_end"])
    for step in case["steps"]:
        if "user" in step:
            conv = conv.ask(step["user"], image=IMG if step["image"] else None)
        else:
            conv = conv.answer(step["reply"])
        yield conv


@pytest.mark.parametrize("case", CASES, ids=[f"{c['template']}-{c['name']}" for c in CASES])
def test_prompt_matches_original_get_prompt(case):
    compared = 0
    for conv, expected in zip(_replay(case), case["prompts"], strict=True):
        if isinstance(expected, dict):  # the original crashed (plain template, sep2=None); ours renders
            assert isinstance(conv.prompt(), str)
            continue
        assert conv.prompt() == expected
        compared += 1
    assert compared >= 1 or case["template"] in ("plain", "v0_plain")


def test_golden_covers_every_supported_template():
    covered = {get_template(c["template"]).name for c in CASES}
    assert covered == set(TEMPLATE_NAMES)


# The rendered strings of llmga-spec §1.6 (turn 1 = image + "Generate a similar image.", answer A, turn 2 U2).
SPEC_RENDERS = {
    "llava_v1": "A chat between a curious human and an artificial intelligence assistant. The assistant gives "
    "helpful, detailed, and polite answers to the human's questions. USER: <image>\nGenerate a similar image. "
    "ASSISTANT: A</s>USER: U2 ASSISTANT:",
    "mistral_instruct": "[INST] <<SYS>>\n\n<</SYS>>\n\n<image>\nGenerate a similar image. [/INST] A </s>"
    "<s>[INST] U2 [/INST]",
    "llama_3": "<|start_header_id|>system<|end_header_id|>\n\nYou are a helpful language and vision assistant. You "
    "are able to understand the visual content that the user provides, and assist the user with a variety of "
    "tasks using natural language.<|eot_id|><|start_header_id|>user<|end_header_id|>\n\n<image>\nGenerate a "
    "similar image.<|eot_id|><|start_header_id|>system<|end_header_id|>\n\nA<|eot_id|><|start_header_id|>user"
    "<|end_header_id|>\n\nU2<|eot_id|><|start_header_id|>system<|end_header_id|>\n\n",
    "gemma": "<start_of_turn>user\n<image>\nGenerate a similar image.<end_of_turn>\n<start_of_turn>model\nA"
    "<end_of_turn>\n<eos><start_of_turn>user\nU2<end_of_turn>\n<start_of_turn>model\n",
    "qwen_2": "<|im_start|>system\nA conversation between a user and an LLM-based AI assistant. The assistant "
    "gives helpful and honest answers.<|im_end|><|im_start|>user\n<image>\nGenerate a similar image.<|im_end|>"
    "<|im_start|>assistant\nA<|im_end|><|im_start|>user\nU2<|im_end|><|im_start|>assistant\n",
    "phi_3": "<|user|>\n<image>\nGenerate a similar image.<|end|>\n<|assistant|>\nA<|end|>\n<|user|>\nU2<|end|>\n"
    "<|assistant|>\n",
}


@pytest.mark.parametrize("name", sorted(SPEC_RENDERS))
def test_spec_rendered_strings(name):
    conv = Conversation(name).ask("Generate a similar image.", image=IMG).answer("A").ask("U2")
    assert conv.prompt() == SPEC_RENDERS[name]


def test_llava_llama_2_wraps_llmga_system_and_vicuna_v1_says_user():
    p = Conversation("llava_llama_2").ask("hi").prompt()
    assert p.startswith("[INST] <<SYS>>\nYou are LLMGA, a useful language and vision generation assistant.")
    assert p.endswith("<gen_image> DETAILED DESCRIPTION </gen_image>.\n<</SYS>>\n\nhi [/INST]")
    assert "curious user" in Conversation("v1").prompt()
    assert "curious human" in Conversation("llava_v1").prompt()


def test_llama2_style_rejects_empty_first_message():
    with pytest.raises(LLMGAInputError):
        render_prompt(get_template("mistral_instruct"), ["", None])


def test_unknown_template_names_the_choices():
    with pytest.raises(LLMGAInputError, match="llava_v1"):
        get_template("chatgpt")


# ------------------------------------------------------------------------------------ selection

RELEASED = {  # Hub folder names of the released MLLMs (README) -> template of the original's rule
    "llmga-vicuna-7b-v1.5-full-finetune": "llava_v1",
    "llmga-cn-vicuna-7b-v1.5-full-finetune": "llava_v1",
    "llmga-mistral_instruct-full-finetune": "mistral_instruct",
    "llmga-llama3-8b-it-full-finetune": "llama_3",
    "llmga-cn-llama3-8b-it-full-finetune": "llama_3",
    "llmga-Qwen2-0.5B-full-finetune": "qwen_2",
    "llmga-Qwen2-7B-full-finetune": "qwen_2",
    "llmga-Phi-3-mini-128k-full-finetune": "phi_3",
    "llmga-gemma-2b-it-full-finetune": "gemma",
    "llmga-llama-2-7b-chat-full-finetune": "llava_llama_2",
    "llava-v1.6-34b": "chatml_direct",
    "mpt-7b": "mpt",
    "something-else": "llava_v0",
}


@pytest.mark.parametrize(("folder", "expected"), sorted(RELEASED.items()))
def test_folder_name_rule(folder, expected):
    assert template_from_folder_name(folder) == expected
    assert select_template(folder).name == expected


def test_folder_rule_order_first_match_wins():
    assert template_from_folder_name("LLaMA-2-gemma-qwen2") == "llava_llama_2"
    assert template_from_folder_name("gemma-v1") == "gemma"


def test_checkpoint_folder_keeps_parent_name():
    assert model_name_from_path("/m/llmga-gemma-2b/checkpoint-500/") == "llmga-gemma-2b_checkpoint-500"
    assert model_name_from_path("C:\\models\\llmga-Qwen2-0.5B") == "llmga-Qwen2-0.5B"


def test_windows_path_is_split_into_folders():
    """A deliberate difference (README): on Linux the original reads the whole path as one name, so the
    "llama-2" of a parent folder would pick llava_llama_2 for a Phi-3 model."""
    name = model_name_from_path("C:\\llama-2-old\\llmga-Phi-3-mini-128k-full-finetune")
    assert template_from_folder_name(name) == "phi_3"
    assert template_from_folder_name("C:\\llama-2-old\\llmga-Phi-3-mini-128k-full-finetune") == "llava_llama_2"


@pytest.mark.parametrize(
    ("model_type", "expected"),
    [
        ("llava_mistral", "mistral_instruct"),
        ("llava_gemma", "gemma"),
        ("llava_Qwen2", "qwen_2"),
        ("llava_Phi3", "phi_3"),
        ("llava_mpt", "mpt"),
    ],
)
def test_config_model_type_beats_a_renamed_folder(model_type, expected):
    choice = select_template("my-model-v1", {"model_type": model_type})
    assert (choice.name, choice.source) == (expected, "config")


def test_llama_family_split_by_tokenizer_and_name():
    llama = {"model_type": "llava_llama", "vocab_size": 32000}
    assert select_template("renamed", {"model_type": "llava_llama", "vocab_size": 128256}).name == "llama_3"
    assert select_template("renamed", llama, ["<|eot_id|>"]).name == "llama_3"
    assert select_template("Meta-Llama-3-8B-llmga", llama, ["<|begin_of_text|>"]).name == "llama_3"
    assert select_template("renamed", llama).name == "llava_v1"
    assert select_template("llmga-llama3-8b-it", {"model_type": "llava_llama"}).name == "llama_3"
    assert select_template("llmga-llama-2-7b-chat", llama).name == "llava_llama_2"
    assert select_template("x", {**llama, "_name_or_path": "meta-llama/Llama-2-7b-chat-hf"}).name == "llava_llama_2"
    assert select_template("x", llama, chat_template="[INST] <<SYS>> {{ m }}").name == "llava_llama_2"


def test_override_wins_and_auto_means_rules():
    assert select_template("llmga-gemma", {"model_type": "llava_gemma"}, override="qwen_2").name == "qwen_2"
    assert select_template("llmga-gemma", override="auto").name == "gemma"
    assert select_template("llmga-x", override="v1").name == "vicuna_v1"
    with pytest.raises(LLMGAInputError):
        select_template("llmga-x", override="nope")
    assert select_template(None).source == "default"


def test_select_for_folder_reads_json_files(tmp_path):
    folder = tmp_path / "renamed-model"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({"model_type": "llava_llama", "vocab_size": 128256}))
    assert select_template_for_folder(folder).name == "llama_3"
    (folder / "config.json").write_text(json.dumps({"model_type": "llava_llama", "vocab_size": 32000}))
    (folder / "tokenizer_config.json").write_text(
        json.dumps({"added_tokens_decoder": {"128009": {"content": "<|eot_id|>"}}, "bos_token": "<s>"})
    )
    assert select_template_for_folder(folder).name == "llama_3"
    (folder / "tokenizer_config.json").unlink()
    assert select_template_for_folder(folder).name == "llava_v1"
    bare = tmp_path / "llmga-Qwen2-1.5B"
    bare.mkdir()
    assert select_template_for_folder(bare).name == "qwen_2"  # no files: folder-name rule


# ------------------------------------------------------------------------------------ fuzz

_texts = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=30)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(name=st.sampled_from(TEMPLATE_NAMES), msgs=st.lists(_texts, min_size=1, max_size=7), system=st.none() | _texts)
def test_render_never_crashes(name, msgs, system):
    tpl = get_template(name)
    msgs = [m or "x" for m in msgs[:1]] + msgs[1:]  # Llama-2 style needs a first message
    assert isinstance(render_prompt(tpl, [*msgs, None], system=system), str)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    name=st.sampled_from(TEMPLATE_NAMES),
    with_image=st.booleans(),
    turns=st.lists(st.tuples(_texts.filter(lambda s: s.replace("<image>", "") != ""), _texts), min_size=1, max_size=4),
)
def test_multi_turn_prompt_only_grows(name, with_image, turns):
    conv = Conversation(name)
    previous = conv.prompt()
    for i, (user, reply) in enumerate(turns):
        for step in ("ask", "answer"):
            conv = conv.ask(user, image=IMG if with_image and i == 0 else None) if step == "ask" else conv.answer(reply)
            current = conv.prompt()
            assert current.startswith(previous)
            previous = current
    assert previous.count("<image>") == (1 if with_image else 0) + sum(r.count("<image>") for _, r in turns)
