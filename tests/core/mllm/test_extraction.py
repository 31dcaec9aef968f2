"""<gen_image> extraction: original parity on normal answers, better on fragile ones, fuzzed."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from llmga_core.mllm import (
    TEMPLATE_NAMES,
    extract_prompts,
    extract_prompts_from_ids,
    stop_strings_for,
    strip_stop_ids,
    strip_stop_strings,
)
from tests.core.mllm.golden import load_json

GOLD = load_json("extraction.json")


@pytest.mark.parametrize("case", GOLD["normal"], ids=lambda c: c["template"])
def test_normal_answers_match_the_original_caption(case):
    ours = extract_prompts(case["decoded"], case["template"])
    orig = case["original"]
    # the CLIs render an image exactly when there is an open tag (id1 != -1)
    assert ours.wants_image == (orig["id1"] != -1)
    if "gen_image>" not in case["decoded"]:
        assert ours.reply == orig["outputs"]  # the CLI prints the stripped answer
        assert ours.prompt_or_reply == orig["caption"]  # the editing CLI's fallback
    elif not ours.wants_image:  # a lone close tag: the editing CLI's caption is the text before it
        assert ours.prompt_or_reply == orig["caption"].strip()
    else:
        # same text; the original keeps the space before </gen_image> (CLIP's tokenizers drop it)
        assert ours.prompt == orig["caption"].strip()
        assert orig["caption"] in (ours.prompt, ours.prompt + " ", ours.prompt + "\n")
    assert ours.history_text == case["decoded"].strip()


@pytest.mark.parametrize("case", GOLD["multi"], ids=["pages", "adjacent"])
def test_all_pairs_like_the_gradio_loop(case):
    ours = extract_prompts(case["decoded"])
    assert ours.prompts == tuple(c.strip() for c in case["original_gradio"])
    assert len(ours.prompts) >= 2


CAP_A = (
    "A majestic lion standing on a rocky cliff at golden hour, mane blowing in the wind, dramatic clouds, "
    "highly detailed, 8k"
)
CAP_B = "A level 100 mouse monster, glowing red eyes, armored fur, epic fantasy battlefield, digital art"
# fragile case -> (our prompts, where the original goes wrong: "caption" or only its printed "reply")
BETTER = {
    "gemma stops on <end_of_turn> (newer generation_config)": ((CAP_B,), "caption"),  # keeps '</gen' junk
    "reply cut by max_new_tokens, no stop token": (("A red vintage car parked on",), "caption"),  # eats 4 chars
    "no space after the open tag": ((CAP_A,), "caption"),  # drops the first letter
    "mistral decode without the space before </s>": ((CAP_B,), "caption"),  # breaks the close tag
    "phi-3 ends with <|end|><|endoftext|>": ((CAP_A,), "reply"),  # reply keeps '<|end|><|endo'
    "untagged qwen reply ending <|im_end|><|endoftext|>": ((), "reply"),  # keeps '<|im_end|><|e'
    "two prompts (picture book) through the CLI": ((CAP_A, CAP_B), "caption"),  # only the first
    "close tag before open tag": ((CAP_B,), "caption"),  # returns ''
    "empty tagged prompt": ((), "caption"),  # generates from an empty prompt
}


@pytest.mark.parametrize("case", GOLD["fragile"], ids=lambda c: c["case"])
def test_fragile_answers_are_handled_better(case):
    expected, where = BETTER[case["case"]]
    ours = extract_prompts(case["decoded"], case["template"])
    assert ours.prompts == expected
    orig = case["original"]
    if where == "reply":
        assert orig["outputs"] != ours.reply and re.search(r"<\|[a-z_]*$|<\|end", orig["outputs"])
    elif len(expected) > 1:
        assert orig["caption"].strip() == expected[0]  # the original finds only the first
    elif not expected:
        assert orig["id1"] != -1 and not ours.wants_image  # the original renders an image from ""
    else:
        assert orig["caption"].strip() != expected[0]
    for stop in stop_strings_for(case["template"]):
        assert stop not in ours.reply


# The four malformed shapes (README, "Compared with the original"): what the original's CLIs do with each,
# and what ours returns: (prompts, prompt_or_reply, free_text).
MALFORMED = {
    # t2i CLIs: no image (id1 == -1); editing CLI: caption = text before the tag. Ours: the same.
    "lone close tag": ("A cat on a sofa </gen_image> Enjoy.", (), "A cat on a sofa", "A cat on a sofa Enjoy."),
    # original caption "a <gen_image> b " (the tag goes to the SD prompt); ours drops the inner tag.
    "nested tags": (
        "<gen_image> a red <gen_image> car </gen_image> at night </gen_image>",
        ("a red car",),
        "a red car",
        "at night",
    ),
    # original caption "" (id2 < id1: an image from an empty prompt); ours reads the tagged prompt.
    "close before open": (
        "Here. </gen_image> Look: <gen_image> a red car </gen_image>",
        ("a red car",),
        "a red car",
        "Here. Look:",
    ),
    # original renders an image from " "; ours asks for no image and never returns the tags.
    "empty tagged prompt": ("<gen_image> </gen_image>", (), "", ""),
}


@pytest.mark.parametrize("shape", sorted(MALFORMED))
def test_malformed_shapes_are_decided(shape):
    text, prompts, prompt_or_reply, free = MALFORMED[shape]
    for template in (None, "llava_v1", "qwen_2"):
        r = extract_prompts(text + (stop_strings_for(template)[0] if template else ""), template)
        assert (r.prompts, r.prompt_or_reply, r.free_text) == (prompts, prompt_or_reply, free)
        assert r.wants_image == bool(prompts)


def test_empty_tagged_prompt_falls_back_to_free_text():
    r = extract_prompts("Sure! <gen_image>  </gen_image> Enjoy.", "llava_v1")
    assert r.prompts == () and r.prompt_or_reply == "Sure! Enjoy."


def test_free_text_and_reply():
    r = extract_prompts("Sure!\n<gen_image> a cat </gen_image>\nEnjoy.<|im_end|>", "qwen_2")
    assert r.free_text == "Sure! Enjoy." and r.reply == "Sure!\n<gen_image> a cat </gen_image>\nEnjoy."
    assert extract_prompts("<s> <gen_image> x </gen_image></s>", "llava_v1").prompts == ("x",)
    assert extract_prompts("< GEN_IMAGE > x < / gen_image >").prompts == ("x",)


def test_stop_removal_is_by_value_not_length():
    assert strip_stop_strings("abc</s>", ["</s>"]) == "abc"
    assert strip_stop_strings("abc", ["</s>"]) == "abc"  # nothing to remove: nothing removed
    assert strip_stop_strings("a<end_of_turn>\n<eos>", stop_strings_for("gemma")) == "a"
    assert strip_stop_ids([5, 6, 2, 2], {2}) == [5, 6] and strip_stop_ids([2, 5], {2}) == [2, 5]


def test_from_ids_strips_stop_tokens_by_id():
    vocab = {1: "<gen_image>", 2: " cat ", 3: "</gen_image>", 4: "<end_of_turn>", 5: "\n", 6: "<eos>"}

    def decode(ids):
        return "".join(vocab[i] for i in ids)

    r = extract_prompts_from_ids([1, 2, 3, 4, 5, 6], decode, {6, 4}, "gemma")
    assert r.prompts == ("cat",) and r.history_text == "<gen_image> cat </gen_image><end_of_turn>\n<eos>"
    r = extract_prompts_from_ids([1, 2, 3, 4], decode, {4}, None)
    assert r.prompts == ("cat",) and r.reply == "<gen_image> cat </gen_image>"


_pieces = st.sampled_from(
    [
        "<gen_image>",
        "</gen_image>",
        "<GEN_IMAGE>",
        "< gen_image>",
        "</ gen_image >",
        " ",
        "\n",
        "a",
        "cat",
        "</s>",
        "<|im_end|>",
        "<end_of_turn>",
        "<eos>",
        "<|eot_id|>",
        "<|end|>",
        "<",
        ">",
        "/",
        "gen_image",
        "é",
        "###",
        "<s>",
    ]
)
_answers = st.lists(_pieces, max_size=25).map("".join) | st.text(max_size=60)
_TAGLIKE = re.compile(r"<\s*/?\s*gen_image\s*>", re.IGNORECASE)


@settings(max_examples=400, deadline=None)
@given(text=_answers, template=st.none() | st.sampled_from(TEMPLATE_NAMES))
def test_extraction_fuzz_never_crashes_and_prompts_are_clean(text, template):
    r = extract_prompts(text, template)
    assert r.history_text == text.strip()
    for p in r.prompts:
        assert p and p == p.strip()
        assert not _TAGLIKE.search(p) and "<gen_image>" not in p and "</gen_image>" not in p
        assert all(word in r.reply for word in p.split())  # a nested tag's two sides are joined
    assert r.wants_image == bool(r.prompts)
    assert not _TAGLIKE.search(r.prompt_or_reply) and r.prompt_or_reply == r.prompt_or_reply.strip()
    if not _TAGLIKE.search(r.reply):
        assert r.prompts == () and r.free_text == r.reply
    assert not _TAGLIKE.search(r.free_text)


@settings(max_examples=200, deadline=None)
@given(
    caption=st.text(min_size=1, max_size=40).filter(
        lambda s: s.strip() and not _TAGLIKE.search(s) and "<" not in s and "#" not in s
    ),
    template=st.sampled_from(["llava_v1", "qwen_2", "gemma", "llama_3", "phi_3", "mistral_instruct"]),
)
def test_well_formed_answer_round_trips(caption, template):
    tail = stop_strings_for(template)[-1]
    r = extract_prompts(f"<gen_image> {caption} </gen_image>{tail}", template)
    assert r.prompts == (caption.strip(),)
