"""An LLMGA MLLM folder as a transformers ``LlavaForConditionalGeneration`` folder (what vLLM serves).

The key mapping is our own, from the layouts (llmga-spec 1.3): the base LLM's ``model.*`` becomes
``model.language_model.*``, the CLIP tower ``model.vision_tower.*``, the ``mlp2x_gelu`` projector
``model.multi_modal_projector.linear_{1,2}``, the head ``lm_head``. Three things keep it exact:

- an ``<image>`` token is added to the tokenizer (LLaVA splices id -200, which no engine accepts); its
  embedding row is irrelevant because image features replace it;
- Gemma: LLMGA trained with the image rows multiplied by sqrt(hidden) like the text rows. vLLM's Gemma
  multiplies every input row, image rows included, by sqrt(hidden) (GemmaModel.forward), so the vLLM
  export keeps the projector as it is; transformers' LLaVA (>= 5) does not scale spliced features, so the
  ``target="transformers"`` export folds the factor into the projector's last layer;
- the chat template is a passthrough: the pack renders LLMGA's byte-exact prompt itself.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from ..errors import LLMGAInputError
from ..mllm.conversation import IMAGE_TOKEN
from ..mllm.model import LoadedMLLM, load_mllm

PASSTHROUGH_CHAT_TEMPLATE = "{% for message in messages %}{{ message['content'] }}{% endfor %}"


TARGETS = ("vllm", "transformers")


def hf_llava_state_dict(mllm: LoadedMLLM, vocab_size: int, fold_image_scale: bool = False) -> dict[str, torch.Tensor]:
    """The LLaVA-layout tensors of a loaded LLMGA model, with the vocabulary grown to ``vocab_size``.

    ``fold_image_scale``: multiply the projector output by the model's image-row factor (Gemma's
    sqrt(hidden)), for runtimes that do not scale image rows themselves.
    """
    model = mllm.model
    if model.vision_tower is None:
        raise LLMGAInputError("Export needs the vision tower: load the folder with its CLIP weights.")
    out: dict[str, torch.Tensor] = {}
    for key, value in model.language_model.state_dict().items():
        if key.startswith("model."):
            out["model.language_model." + key[len("model.") :]] = value
        elif key == "lm_head.weight":
            out["lm_head.weight"] = value
    for key, value in model.vision_tower.state_dict().items():
        out["model.vision_tower." + key] = value
    scale = model.image_embed_scale if fold_image_scale else None
    for key, value in model.mm_projector.state_dict().items():
        index, name = key.split(".", 1)
        layer = {"0": "linear_1", "2": "linear_2"}[index]
        if layer == "linear_2" and scale is not None:
            value = value * scale.to(value.dtype)  # Gemma: LLMGA's image rows carry the sqrt(hidden) factor
        out[f"model.multi_modal_projector.{layer}.{name}"] = value
    embed = out["model.language_model.embed_tokens.weight"]
    grow = vocab_size - embed.shape[0]
    if grow < 0:
        raise LLMGAInputError(f"vocab_size {vocab_size} is smaller than the model's {embed.shape[0]}.")
    for key in ("model.language_model.embed_tokens.weight", "lm_head.weight"):
        if key in out and grow:
            out[key] = torch.cat([out[key], out[key].new_zeros(grow, out[key].shape[1])])
    if "lm_head.weight" not in out:
        out["lm_head.weight"] = out["model.language_model.embed_tokens.weight"]
    return out


def export_hf_llava(
    folder: str | Path,
    out: str | Path,
    dtype: torch.dtype = torch.float16,
    target: str = "vllm",
    clip_vision: str | Path | None = None,
) -> Path:
    """Write ``out`` as a ``LlavaForConditionalGeneration`` folder (config, safetensors, tokenizer) for
    ``target`` "vllm" (vLLM, Ray Serve) or "transformers" (transformers' own LLaVA, e.g. transformers serve).
    ``clip_vision``: the CLIP tower for a folder stored without it (the old llama-2 release)."""
    from transformers import LlavaConfig, LlavaForConditionalGeneration

    if target not in TARGETS:
        raise LLMGAInputError(f"Unknown export target {target!r}: choose one of {', '.join(TARGETS)}.")
    mllm = load_mllm(folder, dtype=torch.float32, clip_vision=clip_vision)
    tokenizer = mllm.tokenizer
    if IMAGE_TOKEN not in tokenizer.get_vocab():
        tokenizer.add_special_tokens({"additional_special_tokens": [IMAGE_TOKEN]}, replace_extra_special_tokens=False)
    if getattr(tokenizer, "image_token", IMAGE_TOKEN) != IMAGE_TOKEN:
        # e.g. a Gemma-3 vocabulary names <image_soft_token>: the processor must expand LLaVA's <image>
        tokenizer.image_token = IMAGE_TOKEN
    image_token_index = tokenizer.convert_tokens_to_ids(IMAGE_TOKEN)
    vocab_size = max(len(tokenizer), mllm.model.embed_tokens.weight.shape[0])
    text_config = mllm.model.language_model.config
    text_config.vocab_size = vocab_size
    settings = mllm.model.settings
    config = LlavaConfig(
        text_config=text_config.to_dict(),
        vision_config=mllm.model.vision_tower.config.to_dict(),
        image_token_index=image_token_index,
        vision_feature_layer=settings.select_layer,
        vision_feature_select_strategy="default" if settings.select_feature == "patch" else "full",
        projector_hidden_act="gelu",
        image_seq_length=(settings.image_size // mllm.model.vision_tower.config.patch_size) ** 2,
        tie_word_embeddings=bool(getattr(text_config, "tie_word_embeddings", False)),
    )
    llava = LlavaForConditionalGeneration(config)
    state = hf_llava_state_dict(mllm, vocab_size, fold_image_scale=target == "transformers")
    missing, unexpected = llava.load_state_dict(state, strict=False)
    missing = [k for k in missing if not (k == "lm_head.weight" and config.tie_word_embeddings)]
    if missing or unexpected:
        raise LLMGAInputError(f"Export key mapping mismatch: missing {missing[:5]}, unexpected {unexpected[:5]}.")
    out = Path(out)
    llava.to(dtype).save_pretrained(out)
    tokenizer.chat_template = PASSTHROUGH_CHAT_TEMPLATE
    _llava_processor(mllm, tokenizer, config).save_pretrained(out)
    return out


def _llava_processor(mllm: LoadedMLLM, tokenizer: Any, config: Any) -> Any:
    """The ``LlavaProcessor`` engines load with the folder (vLLM expands ``<image>`` with it): the
    checkpoint's CLIP preprocessing, and 576 image tokens (patches + CLS, minus CLS for "default")."""
    from transformers import CLIPImageProcessor, LlavaProcessor

    pre = mllm.clip_preprocess
    images = CLIPImageProcessor(
        do_resize=pre.do_resize,
        size={"shortest_edge": pre.shortest_edge},
        resample=pre.resample,
        do_center_crop=pre.do_center_crop,
        crop_size={"height": pre.crop_height, "width": pre.crop_width},
        do_rescale=pre.do_rescale,
        rescale_factor=pre.rescale_factor,
        do_normalize=pre.do_normalize,
        image_mean=list(pre.image_mean),
        image_std=list(pre.image_std),
        do_convert_rgb=True,
    )
    return LlavaProcessor(
        image_processor=images,
        tokenizer=tokenizer,
        patch_size=config.vision_config.patch_size,
        vision_feature_select_strategy=config.vision_feature_select_strategy,
        chat_template=PASSTHROUGH_CHAT_TEMPLATE,
        image_token=IMAGE_TOKEN,
        num_additional_image_tokens=1,  # CLIP's CLS token
    )
