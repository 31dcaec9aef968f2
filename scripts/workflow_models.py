"""Write into every workflow which models its loaders name, where to get each and which folder it goes in.

Each loader node that names a known model gets `properties.models = [{name, url, directory}]` (`directory`
is ComfyUI's folder type, as in `extra_model_paths.yaml`), and the workflow's top-level `models` lists the
single files. ComfyUI's frontend reads these when a workflow opens: a missing single file (a checkpoint, a
ControlNet, the DiffRIR weights) is reported at once with its download link and folder. Model *folders* (the
LLMGA MLLM and diffusers folders) are not files the frontend checks; js/llmga.js reports those from the
same entries.

    .venv/bin/python scripts/workflow_models.py            # every workflow (new ones included)
    .venv/bin/python scripts/workflow_models.py --check    # exit 1 if any workflow is not up to date
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from llmga_core.catalog import CATALOG  # noqa: E402

WORKFLOWS = REPO / "workflows"
FOLDER_TYPES = {"llmga/mllm": "llmga_mllm", "llmga/diffrir": "llmga_diffrir", "diffusers": "diffusers"}
# Core models the workflows use besides LLMGA's: the files ComfyUI's own templates link to.
CORE_FILES = {
    "v1-5-pruned-emaonly-fp16.safetensors": (
        "https://huggingface.co/Comfy-Org/stable-diffusion-v1-5-archive/resolve/main/v1-5-pruned-emaonly-fp16.safetensors",
        "checkpoints",
    ),
    "control_v11p_sd15_canny_fp16.safetensors": (
        "https://huggingface.co/comfyanonymous/ControlNet-v1-1_fp16_safetensors/resolve/main/control_v11p_sd15_canny_fp16.safetensors",
        "controlnet",
    ),
}


def known_models() -> dict[str, dict[str, str]]:
    models = {e.name: {"name": e.name, "url": e.url, "directory": FOLDER_TYPES[e.folder]} for e in CATALOG}
    models.update({name: {"name": name, "url": url, "directory": d} for name, (url, d) in CORE_FILES.items()})
    return models


def is_file(name: str) -> bool:
    return name.lower().endswith((".safetensors", ".pth", ".ckpt", ".pt", ".bin", ".gguf"))


def with_models(workflow: dict[str, Any]) -> dict[str, Any]:
    known = known_models()
    files: list[dict[str, str]] = []
    for node in workflow["nodes"]:
        values = node.get("widgets_values") or [] if "Loader" in node["type"] else []  # not a served model's name
        named = [known[v] for v in values if isinstance(v, str) and v in known]
        if named:
            node.setdefault("properties", {})["models"] = named
            files += [m for m in named if is_file(m["name"]) and m not in files]
        elif "models" in node.get("properties", {}):
            del node["properties"]["models"]
    if files:
        workflow["models"] = files
    else:
        workflow.pop("models", None)
    return workflow


def main(argv: list[str]) -> int:
    check = "--check" in argv
    stale = []
    for path in sorted(WORKFLOWS.glob("*.json")):
        text = path.read_text()
        updated = json.dumps(with_models(json.loads(text)), indent=2, ensure_ascii=False) + "\n"
        if updated == text:
            continue
        stale.append(path.name)
        if not check:
            path.write_text(updated)
            print(f"{path.relative_to(REPO)}: model entries written")
    if check and stale:
        print(f"model entries to update (run scripts/workflow_models.py): {', '.join(stale)}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
