"""ComfyUI glue: one module per node family, each exposing ``NODES``. Logic lives in llmga_core."""
