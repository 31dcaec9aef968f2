"""Regenerate workflows/<name>.jpg: a screenshot of each workflow loaded in the real frontend.

ComfyUI's template browser shows `/api/workflow_templates/<pack>/<name>.jpg` next to each workflow. The
pictures are real screenshots (headless Chromium, the host from tests/harness/server.py, no models needed
to show a graph), fitted to the view, cropped to 16:10, scaled to 512x320 and saved as JPEG.

    .venv/bin/python scripts/make_thumbnails.py            # every workflow
    .venv/bin/python scripts/make_thumbnails.py t2i_llmga  # only some
"""

from __future__ import annotations

import io
import json
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.conftest import png_bytes  # noqa: E402
from tests.e2e.browser import load_workflow, open_frontend  # noqa: E402
from tests.harness.client import ComfyClient  # noqa: E402
from tests.harness.server import ComfyServer  # noqa: E402

WORKFLOWS = REPO / "workflows"
SIZE = (512, 320)
VIEW = (2560, 1600)
QUALITY = 80
MAX_BYTES = 60_000
# Empty stand-ins named as the workflows name their models, so no "missing model" marks show on the nodes.
PLACEHOLDER_FILES = {
    "checkpoints": ["v1-5-pruned-emaonly-fp16.safetensors"],
    "controlnet": ["control_v11p_sd15_canny_fp16.safetensors"],
    "llmga_diffrir": ["DiffRIR_x1_S2GAN.pth"],
    "llmga_gguf": ["llmga-Qwen2-0.5B-full-finetune-q8_0.gguf", "mmproj-llmga-Qwen2-0.5B-full-finetune-f16.gguf"],
}
PLACEHOLDER_DIRS = {
    "llmga_mllm": ["llmga-Qwen2-0.5B-full-finetune"],
    "diffusers": ["llmga-sd15-t2i-v2", "llmga-sd15-inpainting-v2", "llmga-sdxl-t2i"],
}
HIDE_OVERLAYS = (
    ".p-toast, .comfyui-menu, .side-tool-bar-container, .minimap-main-container, .graph-canvas-menu,"
    " .actionbar, .workflow-tabs-container, .p-panel, .comfy-menu-button-wrapper { display: none !important; }"
)


def fit_to_view(page: object) -> None:
    """Centre the whole graph in the window at the largest scale that shows all of it."""
    page.evaluate(  # type: ignore[attr-defined]
        """() => {
            const app = window.app, ds = app.canvas.ds, c = app.canvas.canvas.getBoundingClientRect();
            const title = window.LiteGraph.NODE_TITLE_HEIGHT ?? 30, nodes = app.graph._nodes;
            const x0 = Math.min(...nodes.map((n) => n.pos[0]));
            const y0 = Math.min(...nodes.map((n) => n.pos[1] - title));
            const x1 = Math.max(...nodes.map((n) => n.pos[0] + n.size[0]));
            const y1 = Math.max(...nodes.map((n) => n.pos[1] + n.size[1]));
            const s = Math.min(window.innerWidth / (x1 - x0), window.innerHeight / (y1 - y0)) * 0.94;
            ds.scale = s;
            ds.offset = [(window.innerWidth / s - (x1 - x0)) / 2 - x0 - c.left / s,
                         (window.innerHeight / s - (y1 - y0)) / 2 - y0 - c.top / s];
            app.graph.setDirtyCanvas(true, true);
        }"""
    )
    page.wait_for_timeout(500)  # type: ignore[attr-defined]


def thumbnail(png: bytes) -> bytes:
    """Centre-crop to the thumbnail's aspect ratio, scale down, JPEG-encode small enough."""
    from PIL import Image

    image = Image.open(io.BytesIO(png)).convert("RGB")
    width, height = image.size
    aspect = SIZE[0] / SIZE[1]
    if width / height > aspect:
        crop_w = round(height * aspect)
        box = ((width - crop_w) // 2, 0, (width + crop_w) // 2, height)
    else:
        crop_h = round(width / aspect)
        box = (0, (height - crop_h) // 2, width, (height + crop_h) // 2)
    image = image.crop(box).resize(SIZE, Image.Resampling.LANCZOS)
    for quality in (QUALITY, 70, 60, 50):
        out = io.BytesIO()
        image.save(out, format="JPEG", quality=quality, optimize=True)
        if out.tell() < MAX_BYTES:
            return out.getvalue()
    raise RuntimeError("the thumbnail does not fit in 60 KB")


def placeholder_models(root: Path) -> dict[str, Path | list[Path]]:
    models: dict[str, Path | list[Path]] = {}
    for folder_type, names in {**PLACEHOLDER_FILES, **PLACEHOLDER_DIRS}.items():
        folder = root / "placeholders" / folder_type
        for name in names:
            if folder_type in PLACEHOLDER_DIRS:
                for marker in ("config.json", "model_index.json"):
                    (folder / name).mkdir(parents=True, exist_ok=True)
                    (folder / name / marker).write_text("{}")
            else:
                folder.mkdir(parents=True, exist_ok=True)
                (folder / name).write_bytes(b"")
        models[folder_type] = folder
    return models


def main(names: list[str]) -> None:
    paths = [WORKFLOWS / f"{n}.json" for n in names] if names else sorted(WORKFLOWS.glob("*.json"))
    with tempfile.TemporaryDirectory() as root:
        server = ComfyServer(root=Path(root), models=placeholder_models(Path(root)))
        server.start()
        try:
            ComfyClient(server.url).upload_image("example.png", png_bytes(64, 64, seed=5))
            with open_frontend(server.url) as page:
                page.add_style_tag(content=HIDE_OVERLAYS)
                # 16:10 like the thumbnail, large enough that the graph draws at full detail (scale >= 0.6)
                page.set_viewport_size({"width": VIEW[0], "height": VIEW[1]})
                for path in paths:
                    missing = load_workflow(page, json.loads(path.read_text()))
                    if missing:
                        raise SystemExit(f"{path.name}: the frontend does not know {missing}")
                    fit_to_view(page)
                    jpg = thumbnail(page.screenshot())
                    path.with_suffix(".jpg").write_bytes(jpg)
                    print(f"{path.with_suffix('.jpg').relative_to(REPO)}: {len(jpg) // 1024} KB")
        finally:
            server.stop()


if __name__ == "__main__":
    main(sys.argv[1:])
