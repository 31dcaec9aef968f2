"""LLMGACheckpointLoader: LLMGA's diffusers folders (SD1.5/SDXL, T2I and 9-channel inpainting) as MODEL/CLIP/VAE.

Which files to read and the UNet layout come from llmga_core.sd (configs only); the weights go through
ComfyUI's own converters and loaders: diffusers UNet keys are renamed with ``comfy.utils.unet_to_diffusers``
for the folder's actual layout and ComfyUI re-detects the model from them; text encoders load like
CLIPLoader's, the VAE like VAELoader's. So LoRA, ControlNet, offloading and every sampler work as usual.
"""

from __future__ import annotations

import os
import pickle
import zipfile
from pathlib import Path
from typing import Any

import comfy.sd
import comfy.supported_models
import comfy.utils
import folder_paths
import torch
from comfy_api.latest import io

from ..llmga_core.errors import LLMGAInputError, clean_message, pickle_refusal
from ..llmga_core.sd import SDFolder, WeightFiles, inspect_folder, ldm_unet_config
from . import _downloads
from ._errors import user_errors
from .model_folders import allowed_roots, find_model_dir, is_plain_name, list_model_dirs

FOLDER_TYPE = "diffusers"  # ComfyUI's own models/diffusers (extra_model_paths.yaml key: diffusers)
MARKERS = ("model_index.json", os.path.join("unet", "config.json"))
WEIGHTS = {"full precision first": "full", "fp16 first": "fp16"}
_TITLE = "LLMGA Checkpoint Loader"


def list_folders() -> list[str]:
    """Model folders (one level deep) in every ``diffusers`` path that look like diffusers pipelines."""
    return list_model_dirs(FOLDER_TYPE, MARKERS)


def resolve_folder(name: str) -> Path:
    """The folder ``name`` inside a registered diffusers path; nothing outside them is ever opened."""
    if not is_plain_name(name):
        raise LLMGAInputError(f"{name!r} is not a folder name; pick one of the folders in models/diffusers.")
    found = find_model_dir(FOLDER_TYPE, name)
    if found is not None:
        return Path(os.path.abspath(found))
    raise LLMGAInputError(
        f"no folder {name!r} in models/diffusers; put LLMGA's SD folder (e.g. llmga-sd15-inpainting-v2) there."
    )


def _read(weights: WeightFiles) -> dict[str, torch.Tensor]:
    state: dict[str, torch.Tensor] = {}
    for file in weights.files:
        where = f"{file.parent.parent.name}/{file.parent.name}/{file.name}"
        try:
            state.update(comfy.utils.load_torch_file(str(file), safe_load=True))  # .bin: weights_only
        except pickle.UnpicklingError as err:
            raise pickle_refusal(where, err) from None
        except (OSError, RuntimeError, ValueError, EOFError, zipfile.BadZipFile) as err:
            raise LLMGAInputError(
                f"{where} cannot be read ({type(err).__name__}: {clean_message(str(err))[:160]}); it is corrupt or "
                "truncated: download that file again."
            ) from None
    return state


def load_unet(folder: SDFolder) -> Any:
    """Rename the diffusers UNet keys to LDM for this folder's layout and let ComfyUI detect the model."""
    diffusers_sd = _read(folder.unet)
    names = comfy.utils.unet_to_diffusers(ldm_unet_config(folder.unet_config))
    unknown = sorted(k for k in diffusers_sd if k not in names)
    if unknown:
        raise LLMGAInputError(
            f"{folder.path.name}/unet has weights its config does not describe ({', '.join(unknown[:3])}, …); "
            "the folder's config.json and weights do not belong together."
        )
    ldm_sd = {f"model.diffusion_model.{names[k]}": v for k, v in diffusers_sd.items()}
    model = comfy.sd.load_diffusion_model_state_dict(ldm_sd)
    if model is None:
        raise LLMGAInputError(f"ComfyUI does not recognise the UNet of {folder.path.name} ({folder.kind}).")
    config = model.model.model_config
    is_sdxl = isinstance(config, comfy.supported_models.SDXL)
    if is_sdxl != (folder.family == "sdxl"):
        raise LLMGAInputError(
            f"{folder.path.name}: its config says {folder.kind} but ComfyUI detected {type(config).__name__}."
        )
    return model


def load_folder(path: Path, prefer: str = "full") -> tuple[Any, Any, Any]:
    """MODEL, CLIP and VAE of an LLMGA diffusers folder (the safety checker and scheduler are ignored)."""
    folder = inspect_folder(path, prefer, allowed_roots(FOLDER_TYPE))  # type: ignore[arg-type]
    model = load_unet(folder)
    clip = comfy.sd.load_text_encoder_state_dicts(
        [_read(w) for w in folder.text_encoders],
        embedding_directory=folder_paths.get_folder_paths("embeddings"),
        clip_type=comfy.sd.CLIPType.STABLE_DIFFUSION,
    )
    vae = comfy.sd.VAE(sd=_read(folder.vae))
    return model, clip, vae


class LLMGACheckpointLoader(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="LLMGACheckpointLoader",
            display_name="LLMGA Checkpoint Loader (diffusers folder)",
            category="LLMGA/loaders",
            description=(
                "Loads LLMGA's Stable Diffusion models as published: diffusers folders in models/diffusers "
                "(llmga-sd15-t2i-v2, llmga-sd15-inpainting-v2, llmga-sdxl-t2i, llmga-sdxl-inpainting-v2). "
                "Detects SD1.5 or SDXL and text-to-image or 9-channel inpainting from unet/config.json and "
                "loads through ComfyUI's own loaders, so LoRA, ControlNet and every sampler work."
            ),
            inputs=[
                io.Combo.Input(
                    "folder",
                    options=_downloads.with_downloads(list_folders(), "diffusers"),
                    tooltip=(
                        "A diffusers folder in models/diffusers (one with model_index.json or unet/config.json). "
                        "The safety checker, tokenizer and scheduler sub-folders are not used."
                    ),
                ),
                io.Combo.Input(
                    "weights",
                    options=list(WEIGHTS),
                    default="full precision first",
                    tooltip=(
                        "Which files to read where a folder has both: full precision (*.safetensors; lossless, "
                        "ComfyUI casts to its compute dtype) or the fp16 variant (*.fp16.safetensors; half the "
                        "disk reads). The other is used when only one exists; .bin files load weights-only."
                    ),
                ),
            ],
            outputs=[
                io.Model.Output(display_name="MODEL", tooltip="The UNet (9-channel for the inpainting models)."),
                io.Clip.Output(display_name="CLIP", tooltip="CLIP-L for SD1.5; CLIP-L + CLIP-G for SDXL."),
                io.Vae.Output(display_name="VAE", tooltip="The folder's VAE."),
            ],
        )

    @classmethod
    def execute(cls, folder: str, weights: str) -> io.NodeOutput:
        folder = _downloads.resolve(folder, _TITLE)
        with user_errors(_TITLE):
            if weights not in WEIGHTS:
                raise LLMGAInputError(f"weights must be one of {', '.join(WEIGHTS)}.")
            model, clip, vae = load_folder(resolve_folder(folder), WEIGHTS[weights])
        return io.NodeOutput(model, clip, vae)


NODES: list[type[io.ComfyNode]] = [LLMGACheckpointLoader]
