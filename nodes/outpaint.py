"""LLMGAOutpaintCanvas: the outpainting frame as a graph block (logic in llmga_core.outpaint)."""

from __future__ import annotations

import torch
from comfy_api.latest import io

from ..llmga_core.outpaint import FILLS, MAX_SIDE, Borders, grow_canvas
from ._errors import user_errors


def _border(name: str, side: str) -> io.Int.Input:
    return io.Int.Input(
        name,
        default=0,
        min=0,
        max=MAX_SIDE,
        step=8,
        tooltip=f"Pixels of new canvas to add on the {side}. Multiples of 8 keep the canvas encodable by SD's VAE.",
    )


class LLMGAOutpaintCanvas(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="LLMGAOutpaintCanvas",
            display_name="LLMGA Outpaint Canvas",
            category="LLMGA/image",
            description=(
                "Grows the canvas on any side for LLMGA outpainting and returns the mask of the new area "
                "(1 = generate, 0 = keep). Feed both to the LLMGA prompt node (outpainting task) and the "
                "inpaint sampler; DiffRIR then evens out the seam."
            ),
            inputs=[
                io.Image.Input("image", tooltip="The picture to extend. Batches are grown alike."),
                _border("left", "left"),
                _border("top", "top"),
                _border("right", "right"),
                _border("bottom", "bottom"),
                io.Combo.Input(
                    "fill",
                    options=list(FILLS),
                    default="black",
                    tooltip=(
                        "What the new pixels start as. black: as LLMGA's outpainting data shows the MLLM; "
                        "edge: the border pixels stretched outwards; reflect: the image mirrored."
                    ),
                ),
                io.Int.Input(
                    "feather",
                    default=0,
                    min=0,
                    max=1024,
                    tooltip=(
                        "Width in pixels of a soft ramp in the mask, inside the new area next to the original. "
                        "0 gives a hard edge; the original pixels always stay 0."
                    ),
                ),
            ],
            outputs=[
                io.Image.Output(display_name="image", tooltip="The grown canvas; original pixels unchanged."),
                io.Mask.Output(display_name="mask", tooltip="1 on the new area, 0 on the original pixels."),
            ],
        )

    @classmethod
    def execute(
        cls, image: torch.Tensor, left: int, top: int, right: int, bottom: int, fill: str, feather: int
    ) -> io.NodeOutput:
        with user_errors("LLMGA Outpaint Canvas"):
            canvas, mask = grow_canvas(image, Borders(left, top, right, bottom), fill, feather)  # type: ignore[arg-type]
        return io.NodeOutput(canvas, mask)


NODES: list[type[io.ComfyNode]] = [LLMGAOutpaintCanvas]
