"""The pack loads into a real ComfyUI and shows users what they expect."""

from __future__ import annotations

import json
from pathlib import Path

from tests.harness.client import ComfyClient
from tests.harness.server import PACK_FOLDER, ComfyServer

REPO_ROOT = Path(__file__).resolve().parents[2]


def test_pack_imports_cleanly(comfy_server: ComfyServer, comfy: ComfyClient) -> None:
    comfy.object_info("LLMGAOutpaintCanvas")  # the server has finished loading custom nodes
    log = comfy_server.log_text()
    assert PACK_FOLDER in log
    failed = [line for line in log.splitlines() if "IMPORT FAILED" in line]
    assert not failed, failed
    assert "failed to import" not in log


def test_every_node_has_description_tooltips_and_category(comfy: ComfyClient) -> None:
    ours = {name: info for name, info in comfy.object_info().items() if name.startswith("LLMGA")}
    assert "LLMGAOutpaintCanvas" in ours
    for name, info in ours.items():
        assert info["python_module"] == f"custom_nodes.{PACK_FOLDER}", name
        assert info["category"].startswith("LLMGA/"), name
        assert len(info["description"]) > 40, name
        assert info["display_name"] != name, name
        for section in ("required", "optional"):
            for input_name, spec in info["input"].get(section, {}).items():
                assert len(spec) > 1 and spec[1].get("tooltip"), f"{name}.{input_name} has no tooltip"
        assert all(info["output_tooltips"]), name


def test_outpaint_canvas_schema(comfy: ComfyClient) -> None:
    info = comfy.object_info("LLMGAOutpaintCanvas")
    required = info["input"]["required"]
    assert list(info["input_order"]["required"]) == ["image", "left", "top", "right", "bottom", "fill", "feather"]
    assert required["left"][1]["min"] == 0 and required["left"][1]["max"] == 16384
    assert required["fill"][1]["options"] == ["black", "edge", "reflect"]
    assert info["output"] == ["IMAGE", "MASK"]


def test_workflow_templates_list_the_shipped_workflows(comfy: ComfyClient) -> None:
    templates = comfy.get_json("/workflow_templates")
    shipped = sorted(p.stem for p in (REPO_ROOT / "workflows").glob("*.json"))
    assert shipped, "no workflows shipped"
    assert sorted(templates[PACK_FOLDER]) == shipped
    served = comfy.get_json(f"/api/workflow_templates/{PACK_FOLDER}/{shipped[0]}.json")
    assert served == json.loads((REPO_ROOT / "workflows" / f"{shipped[0]}.json").read_text())


def test_frontend_extension_is_served(comfy: ComfyClient) -> None:
    scripts = comfy.get_json("/extensions")
    ours = [s for s in scripts if s.startswith(f"/extensions/{PACK_FOLDER}/")]
    assert ours, scripts
    assert b"registerExtension" in comfy._request(ours[0])


def test_model_folders_are_registered(comfy: ComfyClient) -> None:
    folders = comfy.get_json("/models")
    assert "llmga_mllm" in folders and "llmga_diffrir" in folders
    assert "tiny_sd15_inpaint.safetensors" in comfy.get_json("/models/checkpoints")
    assert comfy.get_json("/models/llmga_diffrir")  # the fixture weights are listed


def test_every_node_has_node_info_help_matching_its_schema(comfy: ComfyClient) -> None:
    """The frontend's node-info panel fetches /extensions/<pack>/docs/<NodeId>.md; it must exist and be
    what scripts/make_node_docs.py renders from the live schema (so help never drifts from tooltips)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("make_node_docs", REPO_ROOT / "scripts" / "make_node_docs.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    for name, info in comfy.object_info().items():
        if name.startswith("LLMGA"):
            served = comfy._request(f"/extensions/{PACK_FOLDER}/docs/{name}.md").decode()
            assert served == module.render(name, info), f"js/docs/{name}.md is stale: run scripts/make_node_docs.py"
