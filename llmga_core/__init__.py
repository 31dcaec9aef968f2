"""LLMGA and DiffRIR inference as a plain library (torch, transformers, diffusers).

Nothing in this package imports ComfyUI: the node glue in ``nodes/`` turns it into graph blocks.
"""

from __future__ import annotations
