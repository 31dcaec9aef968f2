"""The README's install path, run as written, and the promise that installing the pack never touches torch.

Both tests build real Python environments with pip (no stand-ins): a copy of the host's venv that gets the
pack the way the README tells a git user, and a fresh venv holding the oldest torch the README supports.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.fixtures.cache import REPO_ROOT, cached_dir
from tests.harness.client import ComfyClient
from tests.harness.host import comfyui_dir
from tests.harness.server import PACK_FOLDER, free_port

pytestmark = [pytest.mark.host, pytest.mark.slow]

README = REPO_ROOT / "README.md"
REPO_URL = "https://github.com/comfyui-llmga/ComfyUI-LLMGA"
TESTED_BLOCK_MARK = "<!-- tested: tests/host/test_install.py runs this block as written -->"
# The oldest torch the README promises to keep, with the torchvision/torchaudio released beside it.
OLDEST_TORCH = ("torch==2.6.0", "torchvision==0.21.0", "torchaudio==2.6.0")
TORCH_FAMILY = re.compile(r"^(torch|torchvision|torchaudio)(==|\s@\s)", re.IGNORECASE)


def requirement_names(path: Path) -> set[str]:
    names = set()
    for line in path.read_text().splitlines():
        line = line.split("#")[0].strip()
        if line:
            names.add(re.split(r"[<>=~!\[; ]", line)[0].lower().replace("_", "-"))
    return names


def readme_tested_block() -> str:
    """The shell block the README marks as the one this test runs."""
    text = README.read_text()
    assert TESTED_BLOCK_MARK in text, "the README lost the marked git-install block"
    after = text.split(TESTED_BLOCK_MARK, 1)[1]
    match = re.match(r"\s*```bash\n(.*?)\n\s*```", after, re.DOTALL)
    assert match, "the marked README block is not a ```bash block"
    return "\n".join(line.strip() for line in match.group(1).splitlines())


def torch_lines(python: Path) -> list[str]:
    freeze = subprocess.run([str(python), "-m", "pip", "freeze"], check=True, capture_output=True, text=True).stdout
    return sorted(line for line in freeze.splitlines() if TORCH_FAMILY.match(line))


def pip(python: Path, *args: str, timeout: float = 900) -> subprocess.CompletedProcess[str]:
    command = [str(python), "-m", "pip", "--disable-pip-version-check", *args]
    result = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
    assert result.returncode == 0, f"{' '.join(command)}\n{result.stdout[-2000:]}\n{result.stderr[-2000:]}"
    return result


@pytest.fixture
def scratch() -> Iterator[Path]:
    """A folder on the venv's file system (hard links need one), removed afterwards."""
    path = REPO_ROOT / ".cache" / "install-tests" / uuid.uuid4().hex[:8]
    path.mkdir(parents=True)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def start_comfyui(python: Path, comfy: Path, root: Path) -> tuple[subprocess.Popen[bytes], str, Path]:
    port = free_port()
    log = root / "comfyui.log"
    with open(log, "wb") as out:
        process = subprocess.Popen(
            [
                str(python),
                "main.py",
                "--cpu",
                "--listen",
                "127.0.0.1",
                "--port",
                str(port),
                "--disable-auto-launch",
                "--disable-api-nodes",
                "--database-url",
                f"sqlite:///{root / 'comfy.db'}",
            ],
            cwd=comfy,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        assert process.poll() is None, log.read_text()[-3000:]
        try:
            with urllib.request.urlopen(f"{url}/system_stats", timeout=2):
                return process, url, log
        except OSError:
            time.sleep(0.5)
    process.kill()
    raise AssertionError(f"ComfyUI did not answer:\n{log.read_text()[-3000:]}")


def test_git_install_as_written_in_the_readme(scratch: Path, comfy: ComfyClient) -> None:
    """Copy the host (its tree, and its venv as hard links), run the README's git block with only the URL
    pointed at this repository, start that ComfyUI with its own venv: every LLMGA node is there, torch is not
    touched, and the packages only the pack needs were really installed by the README's line."""
    host_venv = Path(sys.prefix).resolve()
    if host_venv == Path(sys.base_prefix).resolve():
        pytest.skip("the tests do not run in a venv, so there is no ComfyUI venv to copy")
    comfy_tree = scratch / "ComfyUI"
    source = comfyui_dir()
    user_data = {"custom_nodes", "models", "input", "output", "temp", "user"}  # only at the top of the tree

    def ignore(folder: str, names: list[str]) -> set[str]:
        skip = {n for n in names if n == "__pycache__" or n.endswith(".db")}
        return skip | (user_data & set(names) if Path(folder) == source else set())

    shutil.copytree(source, comfy_tree, symlinks=True, ignore=ignore)
    (comfy_tree / "custom_nodes").mkdir()
    venv = comfy_tree / "venv"
    subprocess.run(["cp", "-al", str(host_venv), str(venv)], check=True)  # cheap: hard links, same inodes
    python = venv / "bin" / "python"
    # Packages the pack needs and ComfyUI does not: take them out, so the README's line must bring them.
    ours, comfyui_needs = REPO_ROOT / "requirements.txt", comfyui_dir() / "requirements.txt"
    pack_only = sorted(requirement_names(ours) - requirement_names(comfyui_needs))
    assert pack_only, "expected the pack to need something ComfyUI does not (diffusers, gguf)"
    pip(python, "uninstall", "-y", *pack_only)  # pip unlinks files: the host venv keeps its links
    torch_before = torch_lines(python)
    assert torch_before, "the copied venv holds no torch"

    block = readme_tested_block()
    assert REPO_URL in block
    # GitHub stands in for a bare clone of this repository (its HEAD commit) under the same folder name.
    origin = scratch / "origin" / PACK_FOLDER
    subprocess.run(["git", "clone", "-q", "--bare", str(REPO_ROOT), str(origin)], check=True)
    script = block.replace(REPO_URL, str(origin))
    result = subprocess.run(["bash", "-euxc", script], cwd=scratch, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]

    assert (comfy_tree / "custom_nodes" / PACK_FOLDER / "__init__.py").is_file()
    installed = {line.split("==")[0].lower().replace("_", "-") for line in pip(python, "freeze").stdout.splitlines()}
    assert set(pack_only) <= installed, f"the README's line did not install {set(pack_only) - installed}"
    assert torch_lines(python) == torch_before

    process, url, log = start_comfyui(python, comfy_tree, scratch)
    try:
        ours = ComfyClient(url)
        ours.object_info("LLMGAOutpaintCanvas")  # custom nodes have finished loading
        with urllib.request.urlopen(f"{url}/object_info", timeout=60) as response:
            served = {k for k, v in json.load(response).items() if v["python_module"] == f"custom_nodes.{PACK_FOLDER}"}
        expected = {k for k, v in comfy.object_info().items() if v["python_module"] == f"custom_nodes.{PACK_FOLDER}"}
        assert len(expected) >= 14
        assert served == expected
        text = log.read_text()
        assert "IMPORT FAILED" not in text, text[-3000:]
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()


def oldest_torch_wheels() -> Path:
    """The wheels of the oldest supported torch family, downloaded from PyPI once (≈ 780 MB)."""

    def build(out: Path) -> None:
        command = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "--dest", str(out)]
        subprocess.run([*command, *OLDEST_TORCH], check=True, timeout=1800)
        if len(list(out.glob("*.whl"))) != len(OLDEST_TORCH):
            raise RuntimeError(f"pip download left {sorted(p.name for p in out.iterdir())} in {out}")

    return cached_dir("torch-wheels-oldest", OLDEST_TORCH[0].split("==")[1], build)


def test_requirements_keep_the_oldest_supported_torch(scratch: Path) -> None:
    """A fresh environment holding torch 2.6.0 / torchvision 0.21.0 / torchaudio 2.6.0 installs the pack's
    requirements.txt, and `pip freeze | grep torch` is exactly what it was. (The torch wheels go in with
    --no-deps: their CUDA libraries play no part in what pip decides for requirements.txt.)"""
    assert f"torch {OLDEST_TORCH[0].split('==')[1].rsplit('.', 1)[0]} or newer" in README.read_text()
    wheels = oldest_torch_wheels()
    venv = scratch / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    python = venv / "bin" / "python"
    # --no-compile: byte-compiling torch's thousands of files is most of the time and tells pip nothing
    pip(python, "install", "--no-compile", "--no-deps", "--no-index", "--find-links", str(wheels), *OLDEST_TORCH)
    before = torch_lines(python)
    assert before == sorted(OLDEST_TORCH)

    report = scratch / "report.json"
    pip(python, "install", "--dry-run", "--report", str(report), "-r", str(REPO_ROOT / "requirements.txt"))
    planned = {item["metadata"]["name"].lower() for item in json.loads(report.read_text())["install"]}
    assert not planned & {"torch", "torchvision", "torchaudio"}, planned
    assert {"transformers", "diffusers", "gguf"} <= planned  # the plan really installs the pack's needs

    pip(python, "install", "--no-compile", "-r", str(REPO_ROOT / "requirements.txt"))
    assert torch_lines(python) == before


def test_setup_for_run_installs_no_test_tools(scratch: Path) -> None:
    """`make run`'s set-up (scripts/setup_host.sh run) on a fresh clone: it links the pack into the ComfyUI it
    is given and installs neither the test tools nor a browser. The clone reuses this venv (its torch stamp
    copied, so torch is not reinstalled) and a copy of the host tree (COMFYUI_PATH), so nothing shared moves."""
    host_venv = Path(sys.prefix).resolve()
    torch_stamp = REPO_ROOT / ".cache" / "stamps" / "torch"
    if host_venv == Path(sys.base_prefix).resolve() or not torch_stamp.is_file():
        pytest.skip("needs the venv that scripts/setup_host.sh made")
    clone = scratch / "clone"
    subprocess.run(["git", "clone", "-q", str(REPO_ROOT), str(clone)], check=True)
    (clone / ".venv").symlink_to(host_venv, target_is_directory=True)
    (clone / ".cache" / "stamps").mkdir(parents=True)
    shutil.copy(torch_stamp, clone / ".cache" / "stamps" / "torch")
    comfy_tree = scratch / "ComfyUI"
    ignore = shutil.ignore_patterns("custom_nodes", "__pycache__")  # comfy/ has no custom_nodes folder of its own
    shutil.copytree(comfyui_dir(), comfy_tree, symlinks=True, ignore=ignore)
    env = {**os.environ, "COMFYUI_PATH": str(comfy_tree)}
    env.pop("LLMGA_SKIP_BROWSER", None)
    result = subprocess.run(
        ["bash", "scripts/setup_host.sh", "run"], cwd=clone, env=env, capture_output=True, text=True, timeout=900
    )
    assert result.returncode == 0, result.stderr[-3000:]
    log = result.stderr
    assert "ready (run)" in log
    assert "test tools" not in log and "chromium" not in log and "npm" not in log, log
    assert not (clone / ".cache" / "stamps" / "test-requirements").exists()
    assert (comfy_tree / "custom_nodes" / PACK_FOLDER).resolve() == clone.resolve()
    assert Path((clone / ".cache" / "comfyui_path").read_text().strip()).resolve() == comfy_tree.resolve()
