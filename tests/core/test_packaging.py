"""Packaging facts that users and the Comfy Registry rely on."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import tomllib

ROOT = Path(__file__).resolve().parents[2]


def requirement_lines() -> list[str]:
    lines = (ROOT / "requirements.txt").read_text().splitlines()
    return [line.strip() for line in lines if line.strip() and not line.startswith("#")]


def test_pyproject_dependencies_equal_requirements_txt() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert project["dependencies"] == requirement_lines()
    assert project["version"] == "0.1.0"
    assert project["license"] == {"file": "LICENSE"}
    assert "Repository" in project["urls"]


def test_requirements_never_pull_torch() -> None:
    names = {re.split(r"[<>=~!\[ ]", line)[0].lower() for line in requirement_lines()}
    assert not names & {"torch", "torchvision", "torchaudio"}


def test_registry_metadata_declares_oldest_comfyui() -> None:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert config["tool"]["comfy"]["PublisherId"]
    assert config["tool"]["comfy"]["DisplayName"] == "ComfyUI-LLMGA"
    assert config["project"]["supported_comfyui_version"] == ">=0.3.64"


def test_llmga_core_never_imports_comfyui() -> None:
    forbidden = {"comfy", "comfy_api", "comfy_extras", "folder_paths", "nodes", "server", "execution"}
    for path in (ROOT / "llmga_core").rglob("*.py"):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                roots = {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                roots = {node.module.split(".")[0]}
            else:
                continue
            assert not roots & forbidden, f"{path.relative_to(ROOT)} imports {roots & forbidden}"


def test_pack_code_imports_itself_relatively() -> None:
    """ComfyUI imports the pack under a name derived from its path, so `import llmga_core` would fail there."""
    for path in [*ROOT.glob("llmga_core/**/*.py"), *ROOT.glob("nodes/**/*.py"), ROOT / "__init__.py"]:
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                assert node.module.split(".")[0] not in {"llmga_core", "nodes"}, f"{path.relative_to(ROOT)}"
            if isinstance(node, ast.Import):
                assert all(a.name.split(".")[0] != "llmga_core" for a in node.names), f"{path.relative_to(ROOT)}"


def test_no_pickle_loading_and_no_remote_code() -> None:
    for path in [*ROOT.glob("llmga_core/**/*.py"), *ROOT.glob("nodes/**/*.py")]:
        text = path.read_text()
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, ast.Call) and ast.unparse(node.func) == "torch.load":
                safe = [k for k in node.keywords if k.arg == "weights_only" and ast.unparse(k.value) == "True"]
                assert safe, f"{path.name}:{node.lineno}: {ast.unparse(node)}"
        assert "trust_remote_code=True" not in text, path.name
        assert not re.search(r"pickle\.loads?\(|Unpickler\(", text), path.name


def test_no_unsafe_loaders_and_model_text_never_becomes_html() -> None:
    """What the torch.load check above misses: ComfyUI's loader without safe_load, numpy pickles, any
    trust_remote_code value but False, and HTML sinks in the frontend extension (model text is textContent)."""
    for path in [*ROOT.glob("llmga_core/**/*.py"), *ROOT.glob("nodes/**/*.py")]:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and ast.unparse(node.func).endswith("load_torch_file"):
                assert any(k.arg == "safe_load" and ast.unparse(k.value) == "True" for k in node.keywords), path.name
            if isinstance(node, ast.keyword) and node.arg in ("allow_pickle", "trust_remote_code"):
                assert ast.unparse(node.value) == "False", f"{path.name}:{node.value.lineno}"
    for path in ROOT.glob("js/**/*.js"):
        assert not re.search(r"innerHTML|outerHTML|insertAdjacentHTML|document\.write|DOMParser", path.read_text())
