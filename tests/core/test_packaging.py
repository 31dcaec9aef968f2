"""Packaging facts that users and the Comfy Registry rely on."""

from __future__ import annotations

import ast
import re
import shutil
import subprocess
import sys
import tarfile
import zipfile
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
    assert config["tool"]["comfy"]["requires-comfyui"] == ">=0.3.64"  # nodes/_compat.py's gate; test_compat
    assert "supported_comfyui_version" not in config["project"]  # not a PEP 621 field: breaks pip install


def test_registry_icon_is_a_small_square_image_shipped_in_the_repo() -> None:
    from PIL import Image

    icon = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["comfy"]["Icon"]
    prefix = "https://raw.githubusercontent.com/comfyui-llmga/ComfyUI-LLMGA/main/"
    assert icon.startswith(prefix)
    path = ROOT / icon.removeprefix(prefix)
    with Image.open(path) as image:
        assert image.size[0] == image.size[1] <= 400 and image.format == "PNG"
    assert path.stat().st_size < 100_000


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


def _source_copy(tmp: Path) -> Path:
    """The files git would ship (tracked and new, not ignored), copied: builds must not write into the checkout."""
    files = subprocess.run(
        ["git", "ls-files", "-co", "--exclude-standard"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.split()
    copy = tmp / "src"
    for name in files:
        if (ROOT / name).is_file():
            (copy / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, copy / name)
    return copy


def _expected_members() -> set[str]:
    """What an installed pack needs: every module of the pack, the frontend extension and the workflows."""
    wanted = {"__init__.py", "requirements.txt", "icon.png"}
    shipped = ("llmga_core/**/*.py", "nodes/*.py", "js/*.js", "js/docs/*.md", "workflows/*.json", "workflows/*.jpg")
    for pattern in shipped:
        wanted |= {str(p.relative_to(ROOT)) for p in ROOT.glob(pattern)}
    return wanted


def test_wheel_and_sdist_build_and_hold_the_pack_and_nothing_else(tmp_path: Path) -> None:
    copy = _source_copy(tmp_path)
    out = tmp_path / "dist"
    for kind in ("wheel", "sdist"):  # each in its own process, as a build frontend does
        build = f"from setuptools import build_meta as b; import sys; b.build_{kind}(sys.argv[1])"
        subprocess.run([sys.executable, "-c", build, str(out)], cwd=copy, check=True, capture_output=True, timeout=600)
    (wheel,) = out.glob("*.whl")
    (sdist,) = out.glob("*.tar.gz")
    in_wheel = {n.removeprefix("comfyui_llmga/") for n in zipfile.ZipFile(wheel).namelist() if ".dist-info/" not in n}
    with tarfile.open(sdist) as tar:
        in_sdist = {n.split("/", 1)[1] for n in tar.getnames() if "/" in n}
    expected = _expected_members()
    assert expected - in_wheel == set(), "missing from the wheel (add new packages to [tool.setuptools])"
    assert expected - in_sdist == set(), "missing from the sdist"
    for members in (in_wheel, in_sdist):
        unwanted = [n for n in members if n.startswith(("tests/", "bench/", ".cache", ".venv", "artifacts"))]
        unwanted += [n for n in members if n.endswith((".safetensors", ".pth", ".gguf", ".pyc", ".bin"))]
        assert not unwanted, unwanted


def test_pip_install_and_editable_install_succeed(tmp_path: Path) -> None:
    copy = _source_copy(tmp_path)
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q", "install", "--no-deps"]
    pip += ["--no-build-isolation", "--no-index"]
    for mode, args in (("plain", [str(copy)]), ("editable", ["-e", str(copy)])):
        prefix = tmp_path / mode
        subprocess.run([*pip, "--prefix", str(prefix), *args], check=True, capture_output=True, timeout=600)
        (site,) = prefix.glob("lib/python*/site-packages")
        probe = (
            "import site, sys; site.addsitedir(sys.argv[1]); import comfyui_llmga.llmga_core.lpw as m; "
            "import comfyui_llmga; print(m.__file__); print(comfyui_llmga.TOO_OLD is not None)"
        )
        shown = subprocess.run([sys.executable, "-c", probe, str(site)], capture_output=True, text=True, check=True)
        module_file, gated = shown.stdout.split()
        # outside ComfyUI the entry point loads no nodes (and says which ComfyUI it needs) instead of failing
        assert gated == "True"
        if mode == "editable":
            assert Path(module_file).resolve().is_relative_to(copy.resolve())
        else:
            assert Path(module_file).resolve().is_relative_to(site.resolve())


def test_comfy_node_validate_passes() -> None:
    """comfy-cli's registry check (scripts/setup_compat.sh installs comfy-cli 1.23.0 in a venv of its own)."""
    import os

    import pytest

    comfy = ROOT / ".cache" / "venv-comfy-cli" / "bin" / "comfy"
    if not comfy.exists():
        if os.environ.get("CI") == "true":
            raise AssertionError(f"no {comfy}: scripts/setup_compat.sh installs it")
        pytest.skip(f"no {comfy}: run scripts/setup_compat.sh")
    result = subprocess.run(
        [str(comfy), "--skip-prompt", "--no-enable-telemetry", "node", "validate"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    shown = result.stdout + result.stderr
    assert result.returncode == 0 and "All validation checks passed" in shown, shown
