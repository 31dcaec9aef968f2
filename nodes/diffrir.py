"""DiffRIR restoration nodes: load the released x1 weights, restore an inpainted/outpainted image."""

from __future__ import annotations

from dataclasses import dataclass

import comfy.model_patcher
import folder_paths
import torch
from comfy_api.latest import io

from ..llmga_core.diffrir import AUTO_TILE_ABOVE, DEFAULT_TILE_OVERLAP, DEFAULT_TILE_SIZE, restore
from ..llmga_core.diffrir.checkpoint import DiffRIRCheckpointError, load_diffrir
from . import _downloads, runtime
from ._errors import user_errors
from ._inputs import precision_input, seed_input
from .model_folders import DIFFRIR

DiffRIRSocket = io.Custom("LLMGA_DIFFRIR")


@dataclass(frozen=True)
class DiffRIRModel:
    """What travels on an LLMGA_DIFFRIR socket: the network under ComfyUI's memory manager."""

    patcher: comfy.model_patcher.ModelPatcher
    name: str


class LLMGADiffRIRLoader(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="LLMGADiffRIRLoader",
            display_name="LLMGA DiffRIR Loader",
            category="LLMGA/loaders",
            description=(
                "Loads DiffRIR x1 restoration weights (the released net_g .pth, or a .safetensors copy) from "
                "models/llmga/diffrir. Files are read without pickle code execution and checked strictly."
            ),
            inputs=[
                io.Combo.Input(
                    "weights",
                    options=_downloads.with_downloads(folder_paths.get_filename_list(DIFFRIR), "llmga/diffrir"),
                    tooltip=(
                        "A DiffRIR x1 S2 checkpoint in models/llmga/diffrir (from the DiffRIR README's Google "
                        "Drive folder, e.g. the x1 net_g_latest.pth)."
                    ),
                ),
            ],
            outputs=[DiffRIRSocket.Output(display_name="diffrir", tooltip="The restoration network.")],
        )

    @classmethod
    def execute(cls, weights: str) -> io.NodeOutput:
        weights = _downloads.resolve(weights, "LLMGA DiffRIR Loader")
        path = folder_paths.get_full_path_or_raise(DIFFRIR, weights)
        with user_errors("LLMGA DiffRIR Loader", DiffRIRCheckpointError):
            net = load_diffrir(path)
        return io.NodeOutput(DiffRIRModel(runtime.managed(net), weights))


class LLMGADiffRIRRestore(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="LLMGADiffRIRRestore",
            display_name="LLMGA DiffRIR Restore",
            category="LLMGA/image",
            description=(
                "Removes the brightness, contrast and texture seams between the generated region of an "
                "inpainted or outpainted image and the kept original, using the original as reference. "
                "Outside the mask the result is exactly the original."
            ),
            inputs=[
                DiffRIRSocket.Input("diffrir", tooltip="From LLMGA DiffRIR Loader."),
                io.Image.Input(
                    "generated",
                    tooltip="The inpainting/outpainting result (SD output); resized to the original's size if needed.",
                ),
                io.Image.Input(
                    "original",
                    tooltip="The picture before inpainting (for outpainting: the grown canvas). Only its pixels "
                    "outside the mask are used.",
                ),
                io.Mask.Input("mask", tooltip="1 (white) where content was generated, 0 where the original is kept."),
                seed_input("Seeds the restoration prior's starting noise (the original left it unseeded)."),
                io.Combo.Input(
                    "tiling",
                    options=["auto", "off", "on"],
                    default="auto",
                    tooltip=f"Run in overlapping tiles to bound memory. auto tiles images larger than "
                    f"{AUTO_TILE_ABOVE} px a side; the global prior is still computed on the whole image.",
                ),
                io.Int.Input(
                    "tile_size",
                    default=DEFAULT_TILE_SIZE,
                    min=64,
                    max=4096,
                    step=32,
                    tooltip="Tile side in pixels when tiling (multiple of 32).",
                ),
                precision_input(),
            ],
            outputs=[io.Image.Output(display_name="image", tooltip="The restored image, composited.")],
        )

    @classmethod
    def execute(
        cls,
        diffrir: DiffRIRModel,
        generated: torch.Tensor,
        original: torch.Tensor,
        mask: torch.Tensor,
        seed: int,
        tiling: str,
        tile_size: int,
        precision: str,
    ) -> io.NodeOutput:
        device = runtime.load_to_device(diffrir.patcher)
        reference = original[..., :3].movedim(-1, 1)
        generated_nchw = generated[..., :3].movedim(-1, 1)
        height, width = reference.shape[-2:]
        tile = None
        if tiling == "on" or (tiling == "auto" and max(height, width) > AUTO_TILE_ABOVE):
            tile = tile_size
        with user_errors("LLMGA DiffRIR Restore"):
            out = restore(
                diffrir.patcher.model,
                generated_nchw.to(device),
                reference.to(device),
                mask.to(device),
                seed=seed,
                tile_size=tile,
                tile_overlap=min(DEFAULT_TILE_OVERLAP, (tile_size // 2) // 32 * 32),
                dtype=runtime.compute_dtype(precision, device),
                progress=runtime.progress_callback(1),
                check_interrupt=runtime.check_interrupt,
            )
        return io.NodeOutput(runtime.intermediate(out.movedim(1, -1)))


NODES: list[type[io.ComfyNode]] = [LLMGADiffRIRLoader, LLMGADiffRIRRestore]
