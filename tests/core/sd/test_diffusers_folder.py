from __future__ import annotations

import json
from pathlib import Path

import pytest

from llmga_core.errors import LLMGAInputError
from llmga_core.sd import inspect_folder, ldm_unet_config, pick_weights

SD15 = {
    "in_channels": 4,
    "block_out_channels": [320, 640, 1280, 1280],
    "layers_per_block": 2,
    "down_block_types": ["CrossAttnDownBlock2D"] * 3 + ["DownBlock2D"],
    "up_block_types": ["UpBlock2D"] + ["CrossAttnUpBlock2D"] * 3,
    "cross_attention_dim": 768,
    "attention_head_dim": 8,
}
SDXL = {
    "in_channels": 4,
    "block_out_channels": [320, 640, 1280],
    "layers_per_block": 2,
    "down_block_types": ["DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"],
    "up_block_types": ["CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"],
    "transformer_layers_per_block": [1, 2, 10],
    "attention_head_dim": [5, 10, 20],
    "use_linear_projection": True,
    "cross_attention_dim": 2048,
    "addition_embed_type": "text_time",
    "projection_class_embeddings_input_dim": 2816,
}


def make_folder(root: Path, unet: dict | None, files: dict[str, list[str]], index: dict | None = None) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    if unet is not None:
        (root / "unet").mkdir()
        (root / "unet" / "config.json").write_text(json.dumps(unet))
    for part, names in files.items():
        (root / part).mkdir(exist_ok=True)
        for name in names:
            (root / part / name).write_bytes(b"")
    if index is not None:
        (root / "model_index.json").write_text(json.dumps(index))
    return root


def full_folder(root: Path, unet: dict, sdxl: bool = False) -> Path:
    files = {
        "unet": ["diffusion_pytorch_model.safetensors"],
        "vae": ["diffusion_pytorch_model.safetensors"],
        "text_encoder": ["model.safetensors"],
    }
    if sdxl:
        files["text_encoder_2"] = ["model.fp16.safetensors"]
    return make_folder(root, unet, files)


def test_real_sd15_and_sdxl_layouts_match_comfyui_fixed_configs() -> None:
    # the numbers ComfyUI's own diffusers table lists for SD1.5 and SDXL (comfy/model_detection.py)
    sd15 = ldm_unet_config(SD15)
    assert sd15["num_res_blocks"] == [2, 2, 2, 2] and sd15["channel_mult"] == [1, 2, 4, 4]
    assert sd15["transformer_depth"] == [1, 1, 1, 1, 1, 1, 0, 0]
    assert sd15["transformer_depth_output"] == [1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0]
    assert sd15["transformer_depth_middle"] == 1
    sdxl = ldm_unet_config(SDXL)
    assert sdxl["transformer_depth"] == [0, 0, 2, 2, 10, 10]
    assert sdxl["transformer_depth_output"] == [0, 0, 0, 2, 2, 2, 10, 10, 10]
    assert sdxl["transformer_depth_middle"] == 10 and sdxl["channel_mult"] == [1, 2, 4]


@pytest.mark.parametrize(
    ("unet", "sdxl", "kind"),
    [
        (SD15, False, "SD1.5 text-to-image (4-channel)"),
        ({**SD15, "in_channels": 9}, False, "SD1.5 inpainting (9-channel)"),
        (SDXL, True, "SDXL text-to-image (4-channel)"),
        ({**SDXL, "in_channels": 9}, True, "SDXL inpainting (9-channel)"),
    ],
)
def test_the_four_variants_are_classified(tmp_path: Path, unet: dict, sdxl: bool, kind: str) -> None:
    folder = inspect_folder(full_folder(tmp_path / "m", unet, sdxl))
    assert folder.kind == kind
    assert len(folder.text_encoders) == (2 if sdxl else 1)
    assert folder.text_encoders[-1].fp16 == sdxl


@pytest.mark.parametrize(
    ("unet", "needle"),
    [
        ({**SD15, "in_channels": 8}, "8 input channels (an InstructPix2Pix model?)"),
        ({**SD15, "cross_attention_dim": 1024, "use_linear_projection": True}, "UNet with cross_attention_dim 1024"),
        ({**SDXL, "cross_attention_dim": 1280}, "(an SDXL refiner?)"),
        ({**SD15, "attention_head_dim": 5}, "[5, 5, 5, 5] attention heads"),
        ({**SDXL, "attention_head_dim": 5}, "not 64 channels wide"),
        ({**SD15, "mid_block_type": None}, "mid block None"),
    ],
)
def test_other_unets_are_refused_naming_what_was_found(tmp_path: Path, unet: dict, needle: str) -> None:
    with pytest.raises(LLMGAInputError) as err:
        inspect_folder(full_folder(tmp_path / "m", unet))
    assert needle in str(err.value)


def test_folder_without_unet_names_its_pipeline_and_parts(tmp_path: Path) -> None:
    root = make_folder(tmp_path / "x", None, {"transformer": [], "vae": []}, {"_class_name": "FluxPipeline"})
    with pytest.raises(LLMGAInputError) as err:
        inspect_folder(root)
    assert "a FluxPipeline folder with sub-folders [transformer, vae]" in str(err.value)


def test_missing_component_is_named(tmp_path: Path) -> None:
    parts = {"unet": ["diffusion_pytorch_model.safetensors"], "text_encoder": ["model.safetensors"], "vae": []}
    root = make_folder(tmp_path / "m", SDXL, parts)
    with pytest.raises(LLMGAInputError, match=r"m/text_encoder_2 has no model\[.fp16\].safetensors"):
        inspect_folder(root)
    make_folder(root, None, {"text_encoder_2": ["model.fp16.safetensors"]})
    with pytest.raises(LLMGAInputError, match=r"m/vae has no diffusion_pytorch_model\[.fp16\].safetensors"):
        inspect_folder(root)


def test_weight_preference_order(tmp_path: Path) -> None:
    stems = ("diffusion_pytorch_model",)
    make_folder(
        tmp_path, None, {"u": ["diffusion_pytorch_model.safetensors", "diffusion_pytorch_model.fp16.safetensors"]}
    )
    full = pick_weights(tmp_path / "u", stems, "full")
    half = pick_weights(tmp_path / "u", stems, "fp16")
    assert full is not None and full.files[0].name == "diffusion_pytorch_model.safetensors" and not full.fp16
    assert half is not None and half.files[0].name == "diffusion_pytorch_model.fp16.safetensors" and half.fp16
    # safetensors of the other precision beat a pickle of the preferred one
    make_folder(tmp_path, None, {"v": ["diffusion_pytorch_model.bin", "diffusion_pytorch_model.fp16.safetensors"]})
    got = pick_weights(tmp_path / "v", stems, "full")
    assert got is not None and got.files[0].name.endswith(".fp16.safetensors") and not got.pickle
    make_folder(tmp_path, None, {"w": ["pytorch_model.bin"]})
    got = pick_weights(tmp_path / "w", ("model", "pytorch_model"))
    assert got is not None and got.pickle
    assert pick_weights(tmp_path / "nothing", stems) is None


def test_sharded_weights_follow_the_index(tmp_path: Path) -> None:
    shards = [
        "diffusion_pytorch_model-00001-of-00002.safetensors",
        "diffusion_pytorch_model-00002-of-00002.safetensors",
    ]
    make_folder(tmp_path, None, {"u": shards})
    index = {"weight_map": {"a": shards[1], "b": shards[0], "c": shards[1]}}
    (tmp_path / "u" / "diffusion_pytorch_model.safetensors.index.json").write_text(json.dumps(index))
    got = pick_weights(tmp_path / "u", ("diffusion_pytorch_model",))
    assert got is not None and [f.name for f in got.files] == shards
    (tmp_path / "u" / shards[1]).unlink()
    with pytest.raises(LLMGAInputError, match="lacks the shards"):
        pick_weights(tmp_path / "u", ("diffusion_pytorch_model",))


@pytest.mark.parametrize(
    ("config", "expected"),
    [
        ([1, 2], "unet/config.json holds a JSON list"),
        ({**SD15, "block_out_channels": []}, "block_out_channels must be a non-empty list"),
        ({**SD15, "block_out_channels": [320, "x"]}, "block_out_channels must be a non-empty list"),
        ({**SD15, "down_block_types": ["DownBlock2D"]}, "down_block_types must list one block type"),
        ({**SD15, "layers_per_block": -1}, "layers_per_block must be a positive whole number"),
        ({**SD15, "attention_head_dim": [8, 8]}, "attention_head_dim must be a positive whole number"),
        ({**SD15, "in_channels": "4"}, "in_channels must be a positive whole number"),
    ],
)
def test_hostile_unet_configs_name_the_file_and_field(tmp_path: Path, config: object, expected: str) -> None:
    root = full_folder(tmp_path / "m", SD15)
    (root / "unet" / "config.json").write_text(json.dumps(config))
    with pytest.raises(LLMGAInputError, match=expected):
        inspect_folder(root)
